"""DVC stages `evaluate_*`: one policy on one domain against every pool, for the report.

    python stages/evaluate.py --game ipd --policy sft --model data/models/sft \
        --out metrics/eval/sft/ipd.json --episodes metrics/eval/sft/ipd.episodes.jsonl.gz
    python stages/evaluate.py --game ipd --policy equilibrium \
        --out metrics/eval/equilibrium/ipd.json --episodes metrics/eval/equilibrium/ipd.episodes.jsonl.gz

With ``--model`` the policy is that model (base, SFT or a SEPO adapter)
sampling with ``generation``; without it ``--policy`` names a reference
role of ``eval.references`` and its scripted strategy plays.  Episodes:
``eval.episodes_for(row, game)`` per opponent of every pool (``eval.episodes``;
``eval.game_episodes`` may set a domain's, ``eval.row_episodes`` a row's own
count), fixed seeds.  Writes every
metric of SPEC section 4 with its CI to ``--out`` and every episode to
``--episodes`` (gzip JSON Lines, enough to recompute each number).  Inputs
are validated before anything is written: a bad one is one line, exit 2.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from sepo.config import load_params
from sepo.errors import ConfigError, unknown_name
from sepo.io import write_json_atomic
from sepo.stage import Stage


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("evaluate", __doc__)
    parser = stage.parser
    parser.add_argument("--game", required=True, help="domain to evaluate on")
    parser.add_argument("--policy", required=True,
                        help="the row's name: base, sft, sepo (with --model) or a role of eval.references")
    parser.add_argument("--model", help="model folder or Hub id; omit for a scripted reference")
    parser.add_argument("--out", required=True, help="metrics JSON")
    parser.add_argument("--episodes", required=True, help="episode log (gzip JSON Lines)")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        if args.game not in params.games:
            raise unknown_name("game", args.game, params.games)
        if args.model:
            import torch

            from sepo.policies.model import load_model_policy

            if params.eval.num_threads:
                torch.set_num_threads(params.eval.num_threads)
            policy, source = load_model_policy(args.model, params), f"model:{args.model}"
        else:
            from sepo.rollout import ScriptedAgent

            roles = params.eval.references.get(args.game, {})
            if args.policy not in roles:
                raise unknown_name(f"{args.game} reference role (eval.references.{args.game})", args.policy, roles)
            policy = ScriptedAgent(params.strategy(args.game, roles[args.policy]))
            source = f"scripted:{roles[args.policy]}"
    except ConfigError as exc:
        return stage.input_error(exc)
    from sepo.episode_log import write_episodes
    from sepo.evaluation import policy_evaluation

    start = time.perf_counter()
    with tqdm(desc=f"{args.policy} on {args.game}", unit="decision", disable=None) as bar:
        result, records = policy_evaluation(params, args.game, policy, name=args.policy, source=source,
                                            batch_size=params.generation.batch_size, on_step=bar.update)
    result["episodes_file"] = os.path.basename(args.episodes)
    result["wall_time_s"] = stage.wall_time_s()
    write_episodes(args.episodes, records)
    write_json_atomic(args.out, result)
    m = result["metrics"]
    print(f"{args.policy} on {args.game} ({time.perf_counter() - start:.1f} s): "
          + "  ".join(f"{k}={m[k]['value']:.3f}" for k in ("pay", "exploit", "collusion", "externality",
                                                             "safety", "invalid_rate")))
    audit = result.get("audit", {})
    for slot, bound in audit.get("adaptive_opponents", {}).get("slots", {}).items():
        print(f"  {slot}: advantage {bound['advantage']['value']:.3f} (exact expectation "
              f"{bound['expected_advantage']:.3f}); NashConv {audit['scalars']['nash_conv']['value']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
