"""DVC stages `ablation` and `ablation_replicate@seed<k>`: short SEPO runs per penalty mode from one SFT policy.

    python stages/ablation.py --model data/models/sft --metrics metrics/ablation.json \
        --plots plots/ablation
    python stages/ablation.py --seed 1 --metrics metrics/ablation-seed1.json --plots plots/ablation-seed1

For each domain in ``ablation.games`` and each arm in ``ablation.runs``
(penalty mode × advantage scaling, some with strategies added to the exploit
pool they train against: ``per_rollout-batch-best_response``), trains
``ablation.max_steps`` steps and evaluates the final policy on the training
pools; writes the table (penalty-gradient norm, exploit-pool advantage,
collusion, externality, safety, Kuhn's NashConv and key frequencies, with
intervals, and each arm's paired difference to none-batch) to
``--metrics`` (keyed by domain, and the stage's ``wall_time_s``), each arm's
step log to ``--plots/<game>/<arm>/`` (DVCLive) and the measured reward
components over steps to ``--plots/components.png``.

With ``--seed k`` it is a replicate (issue 16: the ablation's verdict must
hold for 2 of 3 seeds): ``sepo.seed`` k, only ``ablation.replicate_arms``
(the arms whose paired difference to none-batch is the verdict), no SFT row.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

from sepo.config import load_params, with_sepo_seed
from sepo.errors import ConfigError
from sepo.io import partial_folder, replace_folder, write_json_atomic
from sepo.stage import Stage
from sepo.step_log import write_step_log


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("ablation", __doc__)
    parser = stage.parser
    parser.add_argument("--model", default="data/models/sft",
                        help="SFT model folder (default: data/models/sft)")
    parser.add_argument("--metrics", default="metrics/ablation.json",
                        help="the table (default: metrics/ablation.json)")
    parser.add_argument("--plots", default="plots/ablation", help="plots folder (default: plots/ablation)")
    parser.add_argument("--seed", type=int, help="a replicate: this sepo.seed, only ablation.replicate_arms, no "
                        "SFT row (default: the full ablation at params' sepo.seed)")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        if args.seed is not None:
            params = with_sepo_seed(params, args.seed)
            if not params.ablation.replicate_arms:
                raise ConfigError("ablation.replicate_arms is empty: a replicate (--seed) would train no arm")
        from sepo.models.loading import resolve_model_source

        resolve_model_source(args.model, params.model.trust_remote_code)
    except ConfigError as exc:
        return stage.input_error(exc)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; we know
    from sepo.training.ablation import plot_components, run_ablation

    histories: dict[str, dict] = {}
    plots = partial_folder(args.plots)  # built beside the old folder and swapped in whole: no stale arm lingers
    shutil.rmtree(plots, ignore_errors=True)
    plots.mkdir(parents=True)

    def write_arm(game: str, arm: str, result) -> None:
        histories.setdefault(game, {})[arm] = result.history
        write_step_log(plots / game / arm, result.history)
        norm = result.history[-1]["penalty_grad_norm"] if result.history else float("nan")
        audit = result.evaluation.get("audit", {}).get("scalars", {})
        nash_conv = f", NashConv {audit['nash_conv']['value']:.3f}" if "nash_conv" in audit else ""
        print(f"ablation {game} {arm}: exploit {result.evaluation['metrics']['exploit']['value']:.3f}{nash_conv}, "
              f"last penalty-gradient norm {norm:.3g}", flush=True)

    table = run_ablation(params, args.model, on_arm=write_arm, replicate=args.seed is not None)
    plot_components(histories, plots / "components.png")
    replace_folder(plots, args.plots)
    write_json_atomic(args.metrics, {**table, "wall_time_s": stage.wall_time_s()})  # beside the domains
    return 0


if __name__ == "__main__":
    sys.exit(main())
