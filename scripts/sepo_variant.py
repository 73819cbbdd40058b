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


def train_and_evaluate(work: Path, model: str, game: str, seed: int) -> Path:
    """The variant's evaluation file of (game, seed), training and evaluating it first if it is missing."""
    run, out = f"{game}-seed{seed}", work / "eval" / row_name(seed) / f"{game}.json"
    if out.is_file():
        return out
    params = str(work / "params.yaml")
    for command in (
        ["stages/sepo_train.py", "--params", params, "--game", game, "--seed", str(seed), "--model", model,
         "--checkpoints", str(work / "checkpoints" / run), "--out", str(work / "models" / run),
         "--metrics", str(work / "metrics" / f"{run}.json"), "--plots", str(work / "plots" / run)],
        ["stages/evaluate.py", "--params", params, "--game", game, "--policy", row_name(seed),
         "--model", str(work / "models" / run), "--out", str(out),
         "--episodes", str(out.with_suffix(".episodes.jsonl.gz"))]):
        with open(work / f"{run}.log", "a") as log:
            done = subprocess.run([sys.executable, *command], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            raise RuntimeError(f"{run}: {command[0]} failed (exit {done.returncode}); see {work / f'{run}.log'}")
    return out


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run", action="append", required=True, metavar="GAME:SEEDS", help="e.g. kuhn:0,1,2")
    parser.add_argument("--work", type=Path, required=True, help="folder of the variant's runs")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--model", default="data/models/sft", help="the SFT model the runs start from")
    parser.add_argument("--committed", type=Path, default=ROOT / "metrics" / "eval", help="the committed rows")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one core each)")
    args = parser.parse_args(argv)
    try:
        raw = overridden(args.params, args.overrides)
        runs = []
        for item in args.run:
            game, _, seeds = item.partition(":")
            if game not in raw["games"] or not seeds:
                raise ConfigError(f"--run {item!r}: expected GAME:SEEDS with GAME one of {', '.join(raw['games'])}")
            runs += [(game, int(seed)) for seed in seeds.split(",")]
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
        print(f"{name}: " + "; ".join(f"{k} {d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
                                      for k, d in difference.items() if k in SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
