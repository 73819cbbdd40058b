"""Try a SEPO variant against the committed rows: train and evaluate it, then pair it with SFT and the committed SEPO.

A quicker question than ``dvc exp run -S KEY=VALUE``: what does a change of
SEPO's settings do on a few domains and seeds, from the committed SFT model,
without touching the workspace's pipeline outputs?  Each ``--run GAME:SEEDS``
trains ``stages/sepo_train.py`` with the overridden params (``--seed``, as
``sepo_replicate`` does) and evaluates the selected checkpoint with
``stages/evaluate.py``, all under ``--work``.  The evaluation settings must
stay the committed ones, so every variant episode pairs with the committed
rows' (same seeds): it then prints, per domain and seed, variant − SFT and
variant − the committed SEPO run of the same seed, and for several seeds the
pooled variant − SFT (``sepo.comparison``), and writes them to
``<work>/comparison.json``.  A finished run is not trained again.

Example (the trial of sepo.group_weighting, README "SEPO-GRPO training"):

    python scripts/sepo_variant.py -S sepo.group_weighting=pool --work /tmp/pool \\
        --run kuhn:0,1,2 --run ipd:0,1,2 --run auction:0 --run negotiation:0 --run negotiation_items:0

``--every-checkpoint`` also evaluates every checkpoint of each run, not only
the selected one, and prints each one's difference to SFT beside the
training-pool J that model selection gave it (selected one starred), and
per step the pooled difference over the seeds; ``<work>/checkpoint_curve.json``.
Model selection scores checkpoints on ``sepo.selection_episodes`` episodes
per opponent; this shows what it chose against the report's own episodes.
Without ``-S`` the runs are the committed ones: SEPO training is
bit-reproducible, so their checkpoints (never released) are the pipeline's.
Issue 16: the Kuhn runs of seeds 1 and 2 fell below SFT at their selected
checkpoints (steps 30 and 10), while their final ones were not:

    python scripts/sepo_variant.py --work /tmp/kuhn_curve --run kuhn:0,1,2 --every-checkpoint
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from sepo.comparison import pooled_difference, row_difference
from sepo.config import load_params, parse_params, read_yaml_mapping
from sepo.episode_log import read_episodes
from sepo.errors import ConfigError
from sepo.profiles import merged

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ("safety", "exploit", "collusion", "externality", "nash_conv")


def overridden(params_path: Path, overrides: list[str]) -> dict:
    """The params file with ``KEY=VALUE`` overrides (dotted keys, YAML values), validated; eval.* is refused."""
    raw = read_yaml_mapping(params_path)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-S {item!r}: expected KEY=VALUE")
        if key.split(".")[0] == "eval":
            raise ConfigError(f"-S {item!r}: the variant must be evaluated as the committed rows were")
        nested = yaml_value(value)
        for part in reversed(key.split(".")):
            nested = {part: nested}
        raw = merged(raw, nested)  # a key the schema lacks is then one line from parse_params
    parse_params(raw, f"{params_path} with {' '.join(overrides)}")
    return raw


def yaml_value(text: str):
    """``text`` as YAML, with ``1e-3`` a number (YAML 1.1 wants ``1.0e-3``; ``dvc exp run -S`` takes both)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def row_name(seed: int, base: str = "variant") -> str:
    return base if seed == 0 else f"{base}-seed{seed}"


def run_name(game: str, seed: int) -> str:
    return f"{game}-seed{seed}"


def _stage(work: Path, run: str, command: list[str]) -> None:
    """Run a stage script, its output appended to ``<work>/<run>.log``."""
    with open(work / f"{run}.log", "a") as log:
        done = subprocess.run([sys.executable, *command], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"{run}: {command[0]} failed (exit {done.returncode}); see {work / f'{run}.log'}")


def evaluate(work: Path, game: str, seed: int, model: Path, out: Path) -> Path:
    """``out`` (an evaluation file of ``model``), evaluated first if it is missing."""
    if not out.is_file():
        _stage(work, run_name(game, seed),
               ["stages/evaluate.py", "--params", str(work / "params.yaml"), "--game", game,
                "--policy", row_name(seed), "--model", str(model), "--out", str(out),
                "--episodes", str(out.with_suffix(".episodes.jsonl.gz"))])
    return out


def train_and_evaluate(work: Path, model: str, game: str, seed: int) -> Path:
    """The variant's evaluation file of (game, seed), training and evaluating it first if it is missing."""
    run, out = run_name(game, seed), work / "eval" / row_name(seed) / f"{game}.json"
    if out.is_file():
        return out
    _stage(work, run, ["stages/sepo_train.py", "--params", str(work / "params.yaml"), "--game", game,
                       "--seed", str(seed), "--model", model, "--checkpoints", str(work / "checkpoints" / run),
                       "--out", str(work / "models" / run), "--metrics", str(work / "metrics" / f"{run}.json"),
                       "--plots", str(work / "plots" / run)])
    return evaluate(work, game, seed, work / "models" / run, out)


def evaluate_checkpoints(work: Path, model: str, game: str, seed: int,
                         steps: list[int] | None = None) -> dict[int, Path]:
    """Per step, the evaluation file of each checkpoint of a trained run within ``sepo.max_steps`` (or of
    those of ``steps``)."""
    from sepo.checkpoints import complete_checkpoints, within_budget
    from sepo.training.selection import export_policy

    run = run_name(game, seed)
    found = within_budget(complete_checkpoints(work / "checkpoints" / run),
                          load_params(work / "params.yaml").sepo.max_steps)
    files = {}
    for step, checkpoint in found:
        if steps and step not in steps:
            continue
        out = work / "eval" / row_name(seed) / f"step-{step}" / f"{game}.json"
        if not out.is_file():
            exported = work / "checkpoint_models" / run / f"step-{step}"
            export_policy(checkpoint, exported, base=ROOT / model)
            evaluate(work, game, seed, exported, out)
        files[step] = out
    return files


def rescored_selection(work: Path, model: str, game: str, seed: int,
                       episodes: list[int]) -> dict[int, dict[int, float]]:
    """Per ``sepo.selection_episodes`` value in ``episodes``, per step: the training-pool J model selection
    would give each exported checkpoint with that many episodes per opponent (at the run's own count it is
    the stage's score, bit for bit: same episodes, same sampling seed)."""
    import torch

    from sepo.checkpoints import complete_checkpoints, within_budget
    from sepo.models.loading import ADAPTER_CONFIG, load_model_and_tokenizer
    from sepo.training.selection import export_policy, training_pool_safety

    params = load_params(work / "params.yaml")
    torch.set_num_threads(params.sepo.num_threads or torch.get_num_threads())
    run = run_name(game, seed)
    exported = {}
    for step, checkpoint in within_budget(complete_checkpoints(work / "checkpoints" / run), params.sepo.max_steps):
        exported[step] = work / "checkpoint_models" / run / f"step-{step}"
        if not (exported[step] / ADAPTER_CONFIG).is_file():
            export_policy(checkpoint, exported[step], base=ROOT / model)
    scores: dict[int, dict[int, float]] = {}
    for count in episodes:
        rescored = params.model_copy(update={"sepo": params.sepo.model_copy(
            update={"selection_episodes": count, "seed": seed})})
        scores[count] = {}
        for step, folder in exported.items():
            policy_model, tokenizer = load_model_and_tokenizer(folder, trust_remote_code=params.model.trust_remote_code)
            scores[count][step] = training_pool_safety(rescored, game, policy_model, tokenizer)
    return scores


def row(path: Path):
    return json.loads(path.read_text()), read_episodes(path.with_suffix(".episodes.jsonl.gz"))


def compare(params_path: Path, evaluated: dict[str, dict[int, Path]], committed: Path) -> dict[str, dict]:
    params = load_params(params_path)
    settings = {"bootstrap_samples": params.eval.bootstrap_samples, "confidence": params.eval.confidence,
                "seed": params.eval.seed}
    out: dict[str, dict] = {}
    for game, seeds in evaluated.items():
        domain = params.game(game)
        sft = row(committed / "sft" / f"{game}.json")
        variants = {seed: row(path) for seed, path in sorted(seeds.items())}
        for seed, variant in variants.items():
            out[f"{game} seed {seed}: variant - sft"] = row_difference(domain, variant, sft, **settings)
            same_seed = committed / row_name(seed, "sepo") / f"{game}.json"
            if same_seed.is_file():
                out[f"{game} seed {seed}: variant - committed sepo"] = row_difference(
                    domain, variant, row(same_seed), **settings)
        if len(variants) > 1:
            out[f"{game} pooled over {len(variants)} seeds: variant - sft"] = pooled_difference(
                domain, list(variants.values()), sft, **settings)
    return out


def checkpoint_curve(params_path: Path, work: Path, evaluated: dict[str, dict[int, dict[int, Path]]],
                     committed: Path, rescored: dict[tuple[str, int], dict[int, dict[int, float]]] | None = None
                     ) -> dict[str, dict]:
    """Per domain: per seed, each checkpoint's variant − SFT and its selection score (and the scores of
    ``rescored[game, seed]``: selection episodes -> step -> J); per step, the pooled difference."""
    params = load_params(params_path)
    settings = {"bootstrap_samples": params.eval.bootstrap_samples, "confidence": params.eval.confidence,
                "seed": params.eval.seed}
    out: dict[str, dict] = {}
    for game, seeds in evaluated.items():
        domain, sft = params.game(game), row(committed / "sft" / f"{game}.json")
        rows = {seed: {step: row(path) for step, path in steps.items()} for seed, steps in seeds.items()}
        per_seed = {}
        for seed, steps in sorted(rows.items()):
            selection = json.loads((work / "metrics" / f"{run_name(game, seed)}.json").read_text())["selection"]
            per_seed[str(seed)] = {
                "selected_step": selection["best_step"],
                "checkpoints": {str(step): {"selection_safety": selection["training_pool_safety"][str(step)],
                                            "variant - sft": row_difference(domain, steps[step], sft, **settings)}
                                for step in sorted(steps)}}
            for count, scores in (rescored or {}).get((game, seed), {}).items():
                per_seed[str(seed)][f"selected_step at {count} episodes"] = max(scores, key=lambda s: (scores[s], -s))
                for step, score in scores.items():  # a step outside --steps gets its scores only
                    point = per_seed[str(seed)]["checkpoints"].setdefault(
                        str(step), {"selection_safety": selection["training_pool_safety"][str(step)]})
                    point[f"selection_safety at {count} episodes"] = score
        common = sorted(set.intersection(*(set(steps) for steps in rows.values())))
        pooled = {str(step): pooled_difference(domain, [rows[seed][step] for seed in sorted(rows)], sft, **settings)
                  for step in common} if len(rows) > 1 else {}
        out[game] = {"seeds": per_seed, "pooled variant - sft": pooled}
    return out


def _interval(d: dict) -> str:
    return f"{d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"


def print_curve(curve: dict[str, dict]) -> None:
    for game, result in curve.items():
        for seed, runs in result["seeds"].items():
            for step, point in sorted(runs["checkpoints"].items(), key=lambda item: int(item[0])):
                star = "*" if int(step) == runs["selected_step"] else " "
                more = "".join(f", {key.removeprefix('selection_safety ')} {value:+.3f}"
                               for key, value in point.items() if key.startswith("selection_safety at"))
                print(f"{game} seed {seed} step {step:>4}{star} selection J {point['selection_safety']:+.3f}{more}: "
                      + ("; ".join(f"{k} {_interval(d)}" for k, d in point["variant - sft"].items() if k in SHOWN)
                         if "variant - sft" in point else "not evaluated (--steps)"))
        for step, pooled in result["pooled variant - sft"].items():
            print(f"{game} pooled over {len(result['seeds'])} seeds, step {step:>4}: "
                  f"safety {_interval(pooled['safety'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run", action="append", required=True, metavar="GAME:SEEDS", help="e.g. kuhn:0,1,2")
    parser.add_argument("--work", type=Path, required=True, help="folder of the variant's runs")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--model", default="data/models/sft", help="the SFT model the runs start from")
    parser.add_argument("--committed", type=Path, default=ROOT / "metrics" / "eval", help="the committed rows")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one core each)")
    parser.add_argument("--every-checkpoint", action="store_true",
                        help="also evaluate every checkpoint of each run against SFT (see above)")
    parser.add_argument("--rescore-selection", type=int, nargs="+", default=[], metavar="EPISODES",
                        help="with --every-checkpoint: also score each checkpoint as model selection would with "
                             "this many episodes per opponent, and say which it would pick")
    parser.add_argument("--steps", type=int, nargs="+", default=[], metavar="STEP",
                        help="with --every-checkpoint: only these checkpoints (e.g. the last one)")
    args = parser.parse_args(argv)
    try:
        raw = overridden(args.params, args.overrides)
        runs = []
        for item in args.run:
            game, _, seeds = item.partition(":")
            if game not in raw["games"] or not seeds:
                raise ConfigError(f"--run {item!r}: expected GAME:SEEDS with GAME one of {', '.join(raw['games'])}")
            runs += [(game, int(seed)) for seed in seeds.split(",")]
        if args.rescore_selection and (not args.every_checkpoint or min(args.rescore_selection) < 1):
            raise ConfigError("--rescore-selection takes episode counts of at least 1, with --every-checkpoint")
        if args.steps and not args.every_checkpoint:
            raise ConfigError("--steps chooses among the checkpoints of --every-checkpoint")
    except (ConfigError, ValueError) as exc:
        print(f"sepo_variant: {exc}", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with ThreadPoolExecutor(args.jobs) as pool:
        paths = list(pool.map(lambda r: train_and_evaluate(args.work, args.model, *r), runs))
    evaluated: dict[str, dict[int, Path]] = {}
    for (game, seed), path in zip(runs, paths, strict=True):
        evaluated.setdefault(game, {})[seed] = path
    result = compare(args.work / "params.yaml", evaluated, args.committed)
    (args.work / "comparison.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    for name, difference in result.items():
        print(f"{name}: " + "; ".join(f"{k} {_interval(d)}" for k, d in difference.items() if k in SHOWN))
    if args.every_checkpoint:
        with ThreadPoolExecutor(args.jobs) as pool:
            steps = list(pool.map(lambda r: evaluate_checkpoints(args.work, args.model, *r, args.steps), runs))
        by_game: dict[str, dict[int, dict[int, Path]]] = {}
        for (game, seed), files in zip(runs, steps, strict=True):
            by_game.setdefault(game, {})[seed] = files
        rescored = {run: rescored_selection(args.work, args.model, *run, args.rescore_selection)
                    for run in runs} if args.rescore_selection else None
        curve = checkpoint_curve(args.work / "params.yaml", args.work, by_game, args.committed, rescored)
        (args.work / "checkpoint_curve.json").write_text(json.dumps(curve, indent=1, sort_keys=True))
        print_curve(curve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
