"""DVC stage `sft`: supervised fine-tuning of the base model with TRL (SPEC section 6).

    python stages/sft.py --params params.yaml --data data/sft --base data/models/base \
        --checkpoints data/checkpoints/sft --out data/models/sft --metrics metrics/sft.json --plots plots/sft

Writes the fine-tuned model (or LoRA adapter) and its tokenizer to ``--out``
(``from_pretrained`` loads it) with its model card (``sepo.cards.sft_model_card``), a summary to
``--metrics`` and the training log, a DVCLive folder, to ``--plots``.  Training
checkpoints go to ``--checkpoints``, never released: a run killed midway
resumes from them when nothing that defines it changed (``sepo.sft.sft_identity``),
and they are removed once the model is saved.

With ``sft.cpu_processes`` above 1 on a machine without a GPU, the stage
runs itself again as that many data-parallel CPU processes (gloo DDP under
``accelerate launch``, ``sepo.distributed``): each trains
``per_device_train_batch_size`` examples a step.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from sepo.config import load_params
from sepo.distributed import is_main_process, launched, run_on_cpu_processes
from sepo.errors import ConfigError
from sepo.io import partial_folder, replace_folder, write_json_atomic
from sepo.stage import Stage
from sepo.step_log import trainer_rows, write_step_log


def refuse_unvalidated(report_path: str | Path) -> None:
    """ConfigError unless the validate stage's report exists and passed.

    Under ``dvc repro`` a failed validation already stops the pipeline; this
    holds the same line when the stage is launched directly (``accelerate launch``).
    """
    path = Path(report_path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--validation {path}: no validation report; run the validate stage first") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--validation {path}: unreadable ({exc})") from None
    if not isinstance(report, dict) or report.get("success") is not True:
        failed = [f"{name}: {', '.join(d.get('failed', []))}" for name, d in
                  (report.get("datasets", {}) if isinstance(report, dict) else {}).items() if d.get("failed")]
        raise ConfigError(f"--validation {path}: the SFT data failed validation"
                          + (f" ({'; '.join(failed)})" if failed else "") + "; fix the data or rerun validate")


def train_on_cpu_processes(stage: Stage, args, processes: int, threads: int, argv: list[str]) -> int:
    """This stage again as ``processes`` gloo-DDP ranks (``sft.cpu_processes``); the launch's exit status.

    Rank 0 writes every output as a single-process run would; its metrics'
    ``wall_time_s`` is then replaced by this process's clock, so the stage's
    time includes the launch.
    """
    status = run_on_cpu_processes(Path(__file__).resolve(), argv, processes, threads)
    metrics = Path(args.metrics)
    if status == 0 and metrics.is_file():
        write_json_atomic(metrics, {**json.loads(metrics.read_text()), "wall_time_s": stage.wall_time_s()})
    return status


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("sft", __doc__)
    parser = stage.parser
    parser.add_argument("--data", default="data/sft", help="SFT datasets folder (default: data/sft)")
    parser.add_argument("--base", default="data/models/base", help="base model folder (default: data/models/base)")
    parser.add_argument("--checkpoints", default="data/checkpoints/sft",
                        help="training checkpoints, resumed after a crash (default: data/checkpoints/sft)")
    parser.add_argument("--out", default="data/models/sft", help="output model folder (default: data/models/sft)")
    parser.add_argument("--metrics", default="metrics/sft.json", help="summary JSON (default: metrics/sft.json)")
    parser.add_argument("--plots", default="plots/sft", help="DVCLive folder of the training log (default: plots/sft)")
    parser.add_argument("--validation", default="reports/sft_validation.json",
                        help="the validate stage's report; training refuses data it failed "
                             "(default: reports/sft_validation.json)")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        refuse_unvalidated(args.validation)
        import torch

        from sepo.cards import sft_model_card, write_model_card
        from sepo.models.loading import load_model_and_tokenizer
        from sepo.sft import sft_examples, sft_identity, train_sft

        if params.sft.num_threads:
            torch.set_num_threads(params.sft.num_threads)
        train = sft_examples(args.data, params, "train")
        valid = sft_examples(args.data, params, "valid")
        model, tokenizer = load_model_and_tokenizer(
            args.base, trust_remote_code=params.model.trust_remote_code,
            dtype=torch.bfloat16 if params.sft.bf16 else None)
    except ConfigError as exc:
        return stage.input_error(exc)
    if params.sft.cpu_processes > 1 and not launched() and not torch.cuda.is_available():
        # inputs checked here, once: a bad one is one line, not one per rank
        return train_on_cpu_processes(stage, args, params.sft.cpu_processes, params.sft.num_threads,
                                      sys.argv[1:] if argv is None else list(argv))
    main_process = is_main_process()
    # trained beside the output and moved into place at the end: a failed run keeps the old model
    building = partial_folder(args.out)
    if main_process:  # under accelerate launch, one rank clears; the trainer saves from rank 0 alone
        shutil.rmtree(building, ignore_errors=True)
    summary, history, _ = train_sft(model, tokenizer, params.sft, train, valid, building, args.checkpoints,
                                    identity=sft_identity(params.sft, args.base, train, valid))
    if not main_process:
        return 0
    write_model_card(building, sft_model_card(summary, params.sft.model_dump(), parent=args.base,
                                              base_model=None if params.model.base == "tiny" else params.model.base))
    replace_folder(building, args.out)
    write_json_atomic(args.metrics, {**summary, "wall_time_s": stage.wall_time_s()})
    write_step_log(args.plots, trainer_rows(history))
    print(f"sft: {summary['steps']} steps in {summary['train_runtime_s']} s, "
          f"train loss {summary['train_loss']}, eval loss {summary['eval_loss']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
