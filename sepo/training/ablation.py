"""The penalty-mode ablation: short runs per (penalty mode, advantage scaling) from one SFT policy and seed.

Every arm starts from the same SFT model, LoRA initialisation and seed and
plays the same group order, so the arms differ only in how the penalties are
credited and the advantages scaled.  After ``ablation.max_steps`` steps the
final policy (not a selected checkpoint: the ablation asks what each mode's
updates did) is evaluated on the training pools with the evaluation seeds,
with bootstrap intervals; the SFT policy itself is evaluated the same way as
the common reference.

The question SPEC section 5 poses is whether per-rollout penalties lower the
exploit-pool advantage where payoff-only training does not; it is answered
by each arm's paired difference ``<arm> − none-batch`` of exploit,
collusion, externality and safety (and Kuhn's NashConv of the played
policy), with a bootstrap that resamples episode pairs (``sepo.comparison``:
the arms play the same seeds, so pairing removes the deals' variance).
Each trained arm also records the sha256 of its final adapter weights:
``constant`` and ``none`` must end with the same one (their advantages are
identical, so are their updates).

An arm may add strategies to the exploit pool it trains against
(``add_exploit``): ``per_rollout-batch-best_response`` is ``per_rollout-batch``
with Kuhn's exact ``BestResponse`` added (SPEC section 8), the same budget
and seed, its table refreshed every ``sepo.best_response_refresh_steps``
(``sepo.training.adaptive``).  It is an arm only of the domains that have
the strategy, and is evaluated on the default pools like every arm, so
its NashConv and paired differences compare with the others directly.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from sepo.comparison import difference_key, row_difference
from sepo.config import AblationRun, Params, parse_params
from sepo.evaluation import evaluate_games, with_audit_fields
from sepo.games.protocol import EpisodeRecord
from sepo.policies.scripted import strategy_names
from sepo.progress import progress
from sepo.training.groups import TRAINING_POOLS
from sepo.training.rollout import sampling_settings
from sepo.training.run import RunPlan, train

SFT_ARM = "sft"
#: the arm every other arm is compared with
CONTROL_ARM = "none-batch"
#: a domain's entry holding its audit's labels and reference (the arms hold the audited values)
AUDIT_REFERENCE = "audit_reference"


def arm_name(run: AblationRun) -> str:
    """The arm's name in the ablation's files (``AblationRun.name``: the rule lives with the params)."""
    return run.name


def arm_applies(params: Params, game: str, run: AblationRun | None) -> bool:
    """Whether ``run`` is an arm of ``game``: it adds only strategies the domain has (the SFT row always is)."""
    return run is None or all(name in strategy_names(game) for name in run.add_exploit)


def arm_params(params: Params, game: str, run: AblationRun) -> Params:
    """``params`` with the arm's strategies appended to ``game``'s exploit pool (what the arm trains against)
    and its own best-response mixture and group weighting, if it sets them.

    Only training sees them: every arm is evaluated with the stage's own
    params, on the same opponents and seeds, so the paired differences stay
    paired.  The result is validated like any params.
    """
    if not run.add_exploit and not run.best_response_mixture and not run.group_weighting:
        return params
    raw = params.model_dump(by_alias=True)
    raw["games"][game]["pools"]["exploit"] = [*raw["games"][game]["pools"]["exploit"], *run.add_exploit]
    if run.best_response_mixture:
        raw["sepo"]["best_response_mixture"] = run.best_response_mixture
    if run.group_weighting:
        raw["sepo"]["group_weighting"] = run.group_weighting
    raw["ablation"]["runs"] = [{"mode": run.mode, "scale_rewards": run.scale_rewards}]  # this arm, as trained
    raw["ablation"]["replicate_arms"] = []  # names of arms this copy no longer lists
    return parse_params(raw, f"ablation arm {arm_name(run)}")


@dataclass
class ArmResult:
    """One arm of one domain (or the SFT reference): its step log, evaluation and evaluation episodes."""

    history: list[dict[str, Any]]
    evaluation: dict[str, Any]
    episodes: list[EpisodeRecord]
    adapter_sha256: str | None = None


def adapter_sha256(model) -> str:
    """sha256 of the adapter's weights (names and bytes, in name order): equal updates, equal hashes."""
    from peft import get_peft_model_state_dict

    digest = hashlib.sha256()
    for name, tensor in sorted(get_peft_model_state_dict(model).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def evaluate_model(params: Params, game: str, model, tokenizer,
                   episodes: int) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """SPEC section 4's metrics of ``model``, with intervals, on the training pools' evaluation seeds.

    The shift pool is left out: none of the ablation's numbers reads it.  The
    domain's strategy audit (Kuhn) is added as in evaluation, from the same
    episodes.
    """
    from sepo.policies.model import ModelPolicy

    policy = ModelPolicy(model, tokenizer, sampling_settings(params), seed=params.generation.seed)
    was_training = model.training
    model.eval()
    try:
        result, played = evaluate_games(params, [game], policy, episodes=episodes,
                                        batch_size=params.generation.batch_size, pools=TRAINING_POOLS)[game]
        return with_audit_fields(params, game, policy, result, played)
    finally:
        model.train(was_training)


def run_arm(params: Params, game: str, run: AblationRun | None, model_path: str | Path,
            work: Path) -> ArmResult:
    """Train one arm from scratch in ``work`` and evaluate its final policy; ``run`` None: the SFT policy."""
    if run is None:
        import torch

        from sepo.training.run import load_policy_model

        if params.sepo.num_threads:
            torch.set_num_threads(params.sepo.num_threads)
        model, tokenizer = load_policy_model(params, model_path)
        evaluation, records = evaluate_model(params, game, model, tokenizer, params.ablation.eval_episodes_for(game))
        return ArmResult(history=[], evaluation=evaluation, episodes=records)
    training = arm_params(params, game, run)
    plan = RunPlan.from_params(training, game, mode=run.mode, scale_rewards=run.scale_rewards,
                               max_steps=params.ablation.max_steps)
    outcome = train(training, plan, model_path, work / game / arm_name(run))
    trainer = outcome.trainer
    model = trainer.accelerator.unwrap_model(trainer.model)
    evaluation, records = evaluate_model(params, game, model, trainer.processing_class,
                                         params.ablation.eval_episodes_for(game))
    return ArmResult(history=outcome.history, evaluation=evaluation, episodes=records,
                     adapter_sha256=adapter_sha256(model))


def _norm_summary(history: list[dict[str, Any]]) -> dict[str, float]:
    norms = [row["penalty_grad_norm"] for row in history if not math.isnan(row["penalty_grad_norm"])]
    return {"mean": float(np.mean(norms)) if norms else 0.0, "max": float(max(norms)) if norms else 0.0}


def ablation_table(params: Params, game: str, arms: dict[str, ArmResult]) -> dict[str, Any]:
    """The metrics file's entry of one domain: per arm, the penalty-gradient norm and the safety metrics.

    In a domain with a strategy audit (Kuhn) every arm and the SFT row also
    get the audit's scalars (``nash_conv``, ``exploitability``: value,
    ci_low, ci_high, of the played policy) and ``frequencies``; the audit's
    labels and reference go once under ``AUDIT_REFERENCE``.  An arm that
    trained against a ``BestResponse`` records ``best_response``: how many
    times its table was refreshed and the NashConv of the last one (the best
    response's expected advantage as training last saw it).
    """
    keep = ("pay", "exploit", "collusion", "externality", "safety", "invalid_rate")
    table: dict[str, Any] = {}
    for name, arm in arms.items():
        final_reward = arm.history[-1]["reward"] if arm.history else None
        trained = {} if name == SFT_ARM else {"penalty_grad_norm": _norm_summary(arm.history),
                                              "final_reward": final_reward, "adapter_sha256": arm.adapter_sha256}
        table[name] = {**trained, **{k: arm.evaluation["metrics"][k] for k in keep}}
        refreshes = [row for row in arm.history if row.get("best_response_refresh") == 1.0]
        if refreshes:  # an arm that trained against a best response: how often it moved, what it last expected
            table[name]["best_response"] = {"refreshes": len(refreshes),
                                            "last_nash_conv": refreshes[-1]["best_response_nash_conv"]}
        audit = arm.evaluation.get("audit")
        if audit:  # Kuhn: NashConv and exploitability of the played policy, its key frequencies
            table[name].update(audit["scalars"])
            table[name]["frequencies"] = audit["frequencies"]
            table[AUDIT_REFERENCE] = {k: audit[k] for k in ("title", "labels", "order", "reference",
                                                            "reference_frequencies")}
    control = arms.get(CONTROL_ARM)
    differences = {}
    for name, arm in arms.items():
        if control is not None and name not in (SFT_ARM, CONTROL_ARM):
            differences[difference_key(name, CONTROL_ARM)] = row_difference(
                params.game(game), (arm.evaluation, arm.episodes), (control.evaluation, control.episodes),
                bootstrap_samples=params.eval.bootstrap_samples, confidence=params.eval.confidence,
                seed=params.eval.seed)
    if differences:
        table["paired_differences"] = differences
    return table


def run_ablation(params: Params, model_path: str | Path,
                 on_arm: Callable[[str, str, ArmResult], None] | None = None, *,
                 replicate: bool = False) -> dict[str, Any]:
    """Every arm of every ablation domain, ``ablation.workers`` at a time.

    ``on_arm(game, arm, result)`` is called as each finishes (to write its
    log).  Arms are independent and seeded, so running them in parallel
    processes changes nothing but the wall time.  ``replicate``: only
    ``ablation.replicate_arms`` and no SFT row (it does not depend on
    ``sepo.seed``: a replicate would evaluate the same policy on the same
    episodes again); the table then holds those arms and their paired
    differences.
    """
    runs = params.ablation.replicate_runs() if replicate else params.ablation.runs
    candidates: list[AblationRun | None] = [*([] if replicate else [None]), *runs]  # None: the SFT row
    jobs = [(game, run) for game in params.ablation.games for run in candidates if arm_applies(params, game, run)]
    results: dict[str, dict[str, ArmResult]] = {game: {} for game in params.ablation.games}
    with tempfile.TemporaryDirectory(prefix="sepo-ablation-") as folder, \
            progress(total=len(jobs), desc="ablation", unit="arm") as advance, _executor(params) as pool:
        futures: dict[Future, tuple[str, AblationRun | None]] = {}
        for game, run in jobs:  # a callback counts each arm as it ends (one worker: inside submit)
            future = pool.submit(run_arm, params, game, run, model_path, Path(folder))
            future.add_done_callback(lambda _: advance(1))
            futures[future] = (game, run)
        for future in as_completed(futures):
            game, run = futures[future]
            name = SFT_ARM if run is None else arm_name(run)
            results[game][name] = future.result()
            if on_arm is not None and run is not None:
                on_arm(game, name, results[game][name])
    first = [] if replicate else [SFT_ARM]
    names = {game: [*first, *(arm_name(run) for run in runs if arm_applies(params, game, run))]
             for game in params.ablation.games}  # the table's order
    return {game: ablation_table(params, game, {name: arms[name] for name in names[game]})
            for game, arms in results.items()}


def _executor(params: Params) -> Executor:
    """Worker processes (spawned: torch does not survive a fork) or, for one worker, this process."""
    if params.ablation.workers == 1:
        return _InlineExecutor()
    return ProcessPoolExecutor(max_workers=params.ablation.workers, mp_context=get_context("spawn"))


class _InlineExecutor(Executor):
    """Runs each job at submission, in this process (one worker: no pickling, GPU-friendly)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


#: the measured components plotted over steps, with the pools they are averaged over
PLOTTED_COMPONENTS = ("payoff", "exploit", "collusion", "externality")


def plot_components(histories: dict[str, dict[str, list[dict[str, Any]]]], path: str | Path) -> None:
    """One panel per (domain, component): the measured component over steps, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = list(histories)
    figure, axes = plt.subplots(len(games), len(PLOTTED_COMPONENTS), squeeze=False,
                                figsize=(3.2 * len(PLOTTED_COMPONENTS), 2.6 * len(games)))
    for row, game in enumerate(games):
        for column, component in enumerate(PLOTTED_COMPONENTS):
            axis = axes[row][column]
            for arm, history in histories[game].items():
                axis.plot([r["step"] for r in history], [r[f"measured_{component}"] for r in history],
                          marker="o", markersize=3, label=arm)
            axis.set_title(f"{game}: {component}", fontsize=9)
            axis.set_xlabel("step", fontsize=8)
            axis.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    figure.suptitle("Measured reward components per step (tiny profile)", fontsize=10)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
