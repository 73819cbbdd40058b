"""DVC stage `report`: paper-style tables, figures and `dvc plots` data from the evaluation results.

    python stages/report.py --params params.yaml --eval metrics/eval --sepo-metrics metrics/sepo \
        --sepo-plots plots/sepo --ablation metrics/ablation.json --out reports --plots plots/eval

Writes ``results.md`` and ``results.html`` (self-contained) with their SVG
figures under ``figures/`` into ``--out``, and the CSV files ``dvc plots``
draws into ``--plots``.  Every domain must have its base, SFT, SEPO and
reference rows; a missing one is one line naming it, exit 2, nothing written.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sepo.config import load_params
from sepo.errors import ConfigError
from sepo.io import write_text_atomic
from sepo.stage import Stage


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("report", __doc__)
    parser = stage.parser
    parser.add_argument("--eval", default="metrics/eval", help="evaluation results folder")
    parser.add_argument("--sepo-metrics", default="metrics/sepo", help="SEPO training summaries")
    parser.add_argument("--sepo-plots", default="plots/sepo", help="SEPO step logs (<run>/, DVCLive folders)")
    parser.add_argument("--ablation", default="metrics/ablation.json", help="ablation metrics")
    parser.add_argument("--comparisons", default="metrics/comparisons.json",
                        help="paired comparisons (stage compare)")
    parser.add_argument("--out", default="reports", help="folder of results.md, results.html and figures/")
    parser.add_argument("--plots", default="plots/eval", help="folder of the dvc plots CSV files")
    args = stage.parse(argv)
    from sepo import report

    try:
        params = load_params(args.params)
        inputs = report.ReportInputs.load(args.eval, args.sepo_metrics, args.sepo_plots, args.ablation,
                                          args.comparisons)
        expected = report.expected_rows(params.eval.references, list(params.games))
        missing = [f"{game}/{row}" for game, rows in expected.items() for row in rows
                   if row not in inputs.evaluations.get(game, {})]
        if missing:
            raise ConfigError(f"{args.eval}: no evaluation result for {', '.join(missing)}; run the evaluate stages")
        if inputs.profile != params.profile:
            raise ConfigError(f"{args.eval}: results are of profile {inputs.profile!r}, params of "
                              f"{params.profile!r}; run the evaluate stages")
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        return stage.input_error(exc)
    out = Path(args.out)
    figures = report.figures(inputs)
    for name, svg in figures.items():
        write_text_atomic(out / "figures" / name, svg)
    write_text_atomic(Path(args.plots) / "comparison.csv", report.comparison_csv(inputs))
    for game in inputs.audited_games():
        write_text_atomic(Path(args.plots) / f"{game}_frequencies.csv", report.audit_frequencies_csv(inputs, game))
    write_text_atomic(out / "results.html", report.render_html(inputs, figures))
    write_text_atomic(out / "results.md", report.render_markdown(inputs, "figures"))
    print(f"report: {out / 'results.md'}, {out / 'results.html'} ({len(figures)} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
