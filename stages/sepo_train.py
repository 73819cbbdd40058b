"""DVC stage `sepo@<game>`: SEPO-GRPO training of the SFT policy on one domain (SPEC section 5).

    python stages/sepo_train.py --game ipd --model data/models/sft \
        --checkpoints data/checkpoints/sepo/ipd --out data/models/sepo/ipd \
        --metrics metrics/sepo/ipd.json --plots plots/sepo/ipd

Trains a LoRA adapter with TRL's GRPOTrainer (params ``sepo``, ``penalty``,
``grpo``, ``generation``), checkpointing every ``sepo.save_steps`` into
``--checkpoints`` (kept across runs: a rerun after a crash resumes from the
last complete checkpoint of the same run), scores every checkpoint on the
training pools and writes the best one's adapter and tokenizer to ``--out``
(``from_pretrained`` loads it on the SFT model) with its model card
(``README.md``: ``sepo.cards``), a summary to ``--metrics`` and the per-step
log to ``--plots`` (a DVCLive folder, ``sepo.step_log``).  Params are validated
before anything is written: a bad key or value is one line, exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sepo.config import Params, load_params, with_sepo_seed
from sepo.distributed import is_main_process
from sepo.errors import ConfigError, unknown_name
from sepo.io import write_json_atomic
from sepo.stage import Stage
from sepo.step_log import write_step_log


def write_adapter_card(params: Params, args: argparse.Namespace, summary: dict[str, Any]) -> Path:
    """The adapter's Hub model card, ``<out>/README.md`` (in place of PEFT's empty template)."""
    from sepo.cards import sepo_adapter_card, write_model_card

    row = "sepo" if args.seed is None else f"sepo-seed{params.sepo.seed}"  # the evaluate stage's row
    card = sepo_adapter_card(
        args.game, summary, parent=args.model, seed=params.sepo.seed,
        lora=params.sepo.lora.model_dump(), base_model=None if params.model.base == "tiny" else params.model.base,
        model_name=f"sepo-{Path(args.out).name}", evaluation_file=f"metrics/eval/{row}/{args.game}.json")
    return write_model_card(args.out, card)


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("sepo", __doc__)
    parser = stage.parser
    parser.add_argument("--game", required=True, help="domain to train on")
    parser.add_argument("--model", default="data/models/sft",
                        help="SFT model folder (default: data/models/sft)")
    parser.add_argument("--checkpoints", required=True, help="persistent checkpoint folder of this run")
    parser.add_argument("--out", required=True, help="folder of the selected adapter")
    parser.add_argument("--metrics", required=True, help="summary JSON")
    parser.add_argument("--plots", required=True, help="DVCLive folder of the step log (sepo.step_log)")
    parser.add_argument("--seed", type=int, help="this run's sepo.seed (a replicate run from the same SFT model; "
                        "default: params' sepo.seed)")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        if args.seed is not None:
            params = with_sepo_seed(params, args.seed)
        if args.game not in params.games:
            raise unknown_name("game", args.game, params.games)
        from sepo.models.loading import resolve_model_source
        from sepo.training.run import RunPlan, train_and_select

        resolve_model_source(args.model, params.model.trust_remote_code)
        plan = RunPlan.from_params(params, args.game)
    except ConfigError as exc:
        return stage.input_error(exc)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; we know
    result = train_and_select(params, plan, args.model, args.checkpoints, args.out)
    if not is_main_process():  # under accelerate launch: rank 0 writes the shared outputs
        return 0
    write_json_atomic(args.metrics, {"game": args.game, "seed": params.sepo.seed, **result.summary,
                                     "wall_time_s": stage.wall_time_s()})
    write_step_log(args.plots, result.history)
    write_adapter_card(params, args, result.summary)
    selection = result.summary["selection"]
    print(f"sepo {args.game}: {result.summary['steps']} steps ({plan.mode}, {plan.scale_rewards} scaling); "
          f"best checkpoint step {selection['best_step']} "
          f"(training-pool J {selection['training_pool_safety'][str(selection['best_step'])]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
