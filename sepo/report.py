"""The results report: paper-style tables and figures from the pipeline's metric files.

Inputs are what the stages wrote: ``metrics/eval/<policy>/<game>.json``
(evaluate stages), ``metrics/sepo/<game>.json`` with
``plots/sepo/<run>/`` (SEPO training step logs, ``sepo.step_log``) and ``metrics/ablation.json``.
Nothing is recomputed here: every number in the report is one of those
files' numbers, so the report can always be traced back to them.

Outputs: Markdown and a self-contained HTML page (figures inlined as SVG,
no scripts, so it renders offline), the SVG figures, and two CSV files that
``dvc plots`` draws (every row per metric with intervals; each strategy audit's
frequencies against its reference).  Domain-specific sections come from the
audit a domain attaches (``Game.strategy_audit``), never from its name.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sepo.games import GAME_NAMES
from sepo.replicates import replicate_files, replicate_seed
from sepo.step_log import read_step_log

#: the model rows in the paper's order; references follow in params order
MODEL_ROWS = ("base", "sft", "sepo")
ROW_LABELS = {"base": "base", "sft": "SFT", "sepo": "SEPO"}
COLUMNS = (("pay", "pay"), ("exploit", "exploit"), ("collusion", "collusion"), ("externality", "externality"),
           ("safety", "safety"), ("nra", "NRA"), ("robust", "robust"), ("invalid_rate", "invalid rate"))
CURVES = ("reward", "payoff_mean", "exploit_mean", "collusion_mean", "externality_mean")
BAR_METRICS = ("pay", "exploit", "safety", "invalid_rate")
GAME_TITLES = {"ipd": "Iterated prisoner's dilemma", "auction": "Repeated first-price auction",
               "negotiation": "Negotiation (Nash demand game)", "negotiation_items": "Negotiation with items",
               "kuhn": "Kuhn poker"}
#: the ablation file's entry with a domain's audit labels and reference (``sepo.training.ablation.AUDIT_REFERENCE``,
#: not imported: the report reads files and needs no training code; a test holds the two equal)
AUDIT_REFERENCE = "audit_reference"
TINY_WARNING = ("These are **tiny-profile** numbers: a 1.1M-parameter model built and trained on a CPU in "
                "minutes, {seeds}. They are real measurements of that tiny model, not the paper's "
                "results; the claims table below says which of the paper's claims they support.")


def _ablation_table(path: str | Path) -> dict[str, Any]:
    """An ablation metrics file without the stage's own time (kept beside its domains)."""
    table = json.loads(Path(path).read_text())
    table.pop("wall_time_s", None)
    return table


@dataclass
class ReportInputs:
    """Everything the report reads, loaded once."""

    evaluations: dict[str, dict[str, dict[str, Any]]]  # game -> row name -> evaluate result
    training: dict[str, dict[str, Any]] = field(default_factory=dict)  # game -> sepo summary
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # run -> step-log rows
    ablation: dict[str, Any] = field(default_factory=dict)
    profile: str = "tiny"
    comparisons: dict[str, Any] = field(default_factory=dict)  # metrics/comparisons.json (stage compare)
    #: sepo.seed -> the ablation table of a replicate (``ablation-seed<k>.json``: its verdict arms only)
    ablation_replicates: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, eval_dir: str | Path, sepo_metrics: str | Path | None = None, sepo_plots: str | Path | None = None,
             ablation: str | Path | None = None, comparisons: str | Path | None = None) -> ReportInputs:
        evaluations: dict[str, dict[str, dict[str, Any]]] = {}
        for path in sorted(Path(eval_dir).glob("*/*.json")):
            result = json.loads(path.read_text())
            evaluations.setdefault(result["game"], {})[result["policy"]] = result
        if not evaluations:
            raise FileNotFoundError(f"{eval_dir}: no evaluation results (<policy>/<game>.json)")
        training = {p.stem: json.loads(p.read_text()) for p in sorted(Path(sepo_metrics).glob("*.json"))} \
            if sepo_metrics else {}
        curves = {p.name: read_step_log(p) for p in sorted(Path(sepo_plots).glob("*")) if p.is_dir()} \
            if sepo_plots else {}
        ablation_data = _ablation_table(ablation) if ablation and Path(ablation).exists() else {}
        replicates = {seed: _ablation_table(path) for seed, path in replicate_files(ablation).items()} \
            if ablation else {}
        profiles = {r["profile"] for rows in evaluations.values() for r in rows.values()}
        if len(profiles) != 1:
            raise ValueError(f"evaluation results mix profiles {sorted(profiles)}; rerun the evaluate stages")
        compared = json.loads(Path(comparisons).read_text()) if comparisons and Path(comparisons).exists() else {}
        return cls(evaluations, training, curves, ablation_data, profiles.pop(), compared, replicates)

    def games(self) -> list[str]:
        return [g for g in GAME_NAMES if g in self.evaluations]

    def audited_games(self) -> list[str]:
        """Domains whose rows carry a strategy audit (``Game.strategy_audit``; Kuhn today)."""
        return [g for g in self.games() if any("audit" in r for r in self.evaluations[g].values())]

    def audit(self, game: str) -> dict[str, Any]:
        """The audit section of a domain's first audited row: title, labels, reference (shared by all rows)."""
        return next(r["audit"] for r in self.evaluations[game].values() if "audit" in r)

    def seed_counts(self) -> str:
        """How many SEPO seeds each domain's rows hold, as the warning says it: '1 SEPO seed per domain', or
        'SEPO seeds per domain: ipd 3, kuhn 3, the others 1'."""
        counts = {g: sum(r == "sepo" or is_replicate(r) for r in self.evaluations[g]) for g in self.games()}
        tally = Counter(counts.values())
        common = min(n for n, k in tally.items() if k == max(tally.values()))  # on a tie, the fewer seeds
        if len(tally) == 1:
            return f"{common} SEPO seed{'s' if common != 1 else ''} per domain"
        listed = ", ".join(f"{g} {n}" for g, n in counts.items() if n != common)
        return f"SEPO seeds per domain: {listed}, the others {common}"

    def rows(self, game: str) -> list[str]:
        """Row names of a domain's table: base, SFT, SEPO, its replicate seeds, then the references."""
        present = self.evaluations[game]
        replicates = sorted((r for r in present if is_replicate(r)), key=replicate_seed)
        return ([r for r in MODEL_ROWS if r in present] + replicates
                + sorted(r for r in present if r not in MODEL_ROWS and r not in replicates))


def is_replicate(row: str) -> bool:
    """A replicate SEPO run's row: ``sepo-seed<k>`` (``sepo.replicates``)."""
    return replicate_seed(row) is not None


def label(row: str) -> str:
    """A row name as the report shows it: 'SFT', 'SEPO', 'SEPO seed 1', or the name itself."""
    if is_replicate(row):
        return f"SEPO seed {replicate_seed(row)}"
    return ROW_LABELS.get(row, row)


def row_label(result: Mapping[str, Any]) -> str:
    """'SFT', or 'equilibrium (AlwaysDefect)' for a scripted reference."""
    name = result["policy"]
    if name in ROW_LABELS or is_replicate(name):
        return label(name)
    kind, _, source = result["source"].partition(":")
    return f"{name} ({source})" if kind == "scripted" else name


def with_interval(metric: Mapping[str, float]) -> str:
    """'0.520 [0.410, 0.630]': the value and its bootstrap interval."""
    return f"{metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"


# -- tables, as (header, rows) so Markdown and HTML share them ------------------

Table = tuple[list[str], list[list[str]]]


def domain_table(inputs: ReportInputs, game: str) -> Table:
    header = ["policy", *(label for _, label in COLUMNS)]
    body = [[row_label(r), *(with_interval(r["metrics"][key]) for key, _ in COLUMNS)]
            for r in (inputs.evaluations[game][name] for name in inputs.rows(game))]
    return header, body


def audit_table(inputs: ReportInputs, game: str) -> Table:
    """A domain's strategy audit: each row's scalars and frequencies with intervals, then the reference."""
    first = inputs.audit(game)
    scalars = [k for k in first["order"] if k in first["scalars"]]
    frequencies = [k for k in first["order"] if k in first["frequencies"]]
    audits = [inputs.evaluations[game][name].get("audit") for name in inputs.rows(game)]
    # a pool with an opponent bound to the agent's policy (BestResponse): what it won, beside NashConv
    slots = list(dict.fromkeys(slot for a in audits if a for slot in a.get("adaptive_opponents", {}).get("slots", {})))
    header = ["policy", *(first["labels"][k] for k in scalars), *(f"{slot} advantage (expected)" for slot in slots),
              *(first["labels"][k] for k in frequencies)]
    body = []
    for name, audit in zip(inputs.rows(game), audits, strict=True):
        if audit:
            bound = audit.get("adaptive_opponents", {}).get("slots", {})
            body.append([row_label(inputs.evaluations[game][name]),
                         *(with_interval(audit["scalars"][k]) for k in scalars),
                         *(f"{with_interval(bound[s]['advantage'])} ({bound[s]['expected_advantage']:.3f})"
                           if s in bound else "" for s in slots),
                         *(with_interval(audit["frequencies"][k]) for k in frequencies)])
    reference = first["reference_frequencies"]
    body.append([first["reference"], *("0" for _ in scalars), *("0" for _ in slots),
                 *(f"{reference[k]:.3f}" for k in frequencies)])
    return header, body


def ablation_table(inputs: ReportInputs) -> Table | None:
    if not inputs.ablation:
        return None
    header = ["domain", "run", "pay", "exploit", "safety", "NashConv", "penalty-gradient norm (mean)",
              "adapter sha256"]
    body = []
    for game, runs in inputs.ablation.items():
        for run, r in runs.items():
            if "pay" not in r:  # the paired differences, tabled apart
                continue
            norm = r.get("penalty_grad_norm", {}).get("mean")
            body.append([game, run, with_interval(r["pay"]), with_interval(r["exploit"]), with_interval(r["safety"]),
                         with_interval(r["nash_conv"]) if "nash_conv" in r else "",
                         "" if norm is None else f"{norm:.4g}", (r.get("adapter_sha256") or "")[:12]])
    return header, body


def ablation_seeds_differences(inputs: ReportInputs) -> dict[str, Mapping[str, Mapping[str, float]]]:
    """``<domain> / <arm> / seed <k>`` -> the paired differences of every arm the replicates repeat, the ablation's
    own seed first; empty without replicates."""
    if not inputs.ablation_replicates:
        return {}
    # the ablation trains at the main runs' sepo.seed, the one their summaries record
    main = next((inputs.training[g]["seed"] for g in inputs.ablation if "seed" in inputs.training.get(g, {})), None)
    seeds = {"ablation" if main is None else f"seed {main}": inputs.ablation,
             **{f"seed {k}": table for k, table in inputs.ablation_replicates.items()}}
    replicated = {k for table in inputs.ablation_replicates.values() for game, arms in table.items()
                  for k in arms.get("paired_differences", {})}
    out: dict[str, Mapping[str, Mapping[str, float]]] = {}
    for game in inputs.ablation:
        for key in (k for k in inputs.ablation[game].get("paired_differences", {}) if k in replicated):
            for label, table in seeds.items():
                if key in table.get(game, {}).get("paired_differences", {}):
                    out[f"{game} / {key} / {label}"] = table[game]["paired_differences"][key]
    return out


def ablation_audits(inputs: ReportInputs) -> list[str]:
    """Ablation domains whose arms carry a strategy audit (Kuhn's NashConv and frequencies)."""
    return [game for game, runs in inputs.ablation.items() if AUDIT_REFERENCE in runs]


def _audited_arms(inputs: ReportInputs, game: str) -> list[str]:
    """The SFT row first, then every arm with audited values, in the file's order."""
    runs = inputs.ablation[game]
    names = [name for name, r in runs.items() if "frequencies" in r]
    return sorted(names, key=lambda name: name != "sft")


def ablation_audit_table(inputs: ReportInputs, game: str) -> Table:
    """Per ablation arm: the audit's scalars (NashConv, exploitability) and frequencies, then the reference."""
    reference = inputs.ablation[game][AUDIT_REFERENCE]
    runs = inputs.ablation[game]
    frequencies = [k for k in reference["order"] if k in reference["reference_frequencies"]]
    scalars = [k for k in reference["order"] if k not in frequencies and all(k in runs[a] for a in
                                                                               _audited_arms(inputs, game))]
    header = ["run", *(reference["labels"][k] for k in scalars + frequencies)]
    body = [[name, *(with_interval(runs[name][k]) for k in scalars),
             *(with_interval(runs[name]["frequencies"][k]) for k in frequencies)]
            for name in _audited_arms(inputs, game)]
    body.append([reference["reference"], *("0" for _ in scalars),
                 *(f"{reference['reference_frequencies'][k]:.3f}" for k in frequencies)])
    return header, body


def ablation_audit_line(inputs: ReportInputs, game: str) -> str:
    """One sentence: the first audit scalar (Kuhn's NashConv) of every arm, with its interval."""
    reference = inputs.ablation[game][AUDIT_REFERENCE]
    scalar = reference["order"][0]
    values = "; ".join(f"{name} {with_interval(inputs.ablation[game][name][scalar])}"
                       for name in _audited_arms(inputs, game))
    return (f"{reference['labels'][scalar]} of the played policy after each arm's training, on the training pools' "
            f"evaluation seeds: {values}. An arm whose name holds -best_response trained with the exact best "
            "response to its own current table in the exploit pool (SPEC section 8); the frequencies are compared "
            f"with {reference['reference']}.")


def difference_table(differences: Mapping[str, Mapping[str, Mapping[str, float]]], label: str) -> Table:
    """Paired differences (rows: ``label`` keys, e.g. domains or arms) with intervals and where they lie."""
    names = _difference_names(differences)
    header = [label, *names]
    body = [[row, *(f"{with_interval(d[k])} {_marker(d[k])}" if k in d else "" for k in names)]
            for row, d in differences.items()]
    return header, body


def _difference_names(differences: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The compared quantities in SPEC's order (exploit, collusion, externality, safety), then any others."""
    from sepo.metrics import PAIRED_METRICS

    present = list(dict.fromkeys(k for d in differences.values() for k in d))
    return [k for k in PAIRED_METRICS if k in present] + sorted(k for k in present if k not in PAIRED_METRICS)


def _marker(difference: Mapping[str, float]) -> str:
    """'▲' / '▼' when the interval lies above / below 0, '·' when it holds 0."""
    from sepo.claims import interval_side

    return {1: "▲", -1: "▼", 0: "·"}[interval_side(difference)]


def claims_table(inputs: ReportInputs) -> Table:
    from sepo.claims import acceptance_checks, paper_claims

    claims = [*paper_claims(inputs.evaluations, inputs.comparisons, inputs.ablation),
              *acceptance_checks(inputs.comparisons, inputs.ablation, inputs.ablation_replicates)]
    return ["claim", "this run's evidence", "verdict", "rule"], [[c.claim, c.evidence, c.verdict, c.rule]
                                                                for c in claims]


def markdown_table(table: Table) -> str:
    header, body = table
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def html_table(table: Table) -> str:
    header, body = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


# -- figures -------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "sepo-report"  # stable element ids: identical inputs, identical SVG
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: several times smaller files, searchable
    return plt


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def training_curves_svg(inputs: ReportInputs) -> str | None:
    """SEPO training: reward and each penalty component per step, one panel per domain."""
    games = [g for g in GAME_NAMES if inputs.curves.get(g)]
    if not games:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(games), figsize=(3.2 * len(games), 2.8), squeeze=False)
    for ax, game in zip(axes[0], games, strict=True):
        steps = inputs.curves[game]
        for column in CURVES:
            points = [(s["step"], s[column]) for s in steps if column in s]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=column.removesuffix("_mean"))
        ax.set_title(game)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize="small")
    figure.suptitle("SEPO-GRPO training: reward and components per step")
    return _svg(figure)


def comparison_svg(inputs: ReportInputs) -> str:
    """Base / SFT / SEPO (and references) per metric and domain, with the bootstrap intervals."""
    plt = _pyplot()
    games = inputs.games()
    figure, axes = plt.subplots(len(BAR_METRICS), len(games), figsize=(3.2 * len(games), 2.4 * len(BAR_METRICS)),
                                squeeze=False)
    for j, game in enumerate(games):
        names = inputs.rows(game)
        results = [inputs.evaluations[game][n] for n in names]
        for i, metric in enumerate(BAR_METRICS):
            values = [r["metrics"][metric] for r in results]
            errors = [[v["value"] - v["ci_low"] for v in values], [v["ci_high"] - v["value"] for v in values]]
            ax = axes[i][j]
            ax.bar(range(len(names)), [v["value"] for v in values], yerr=errors, capsize=3,
                   color=["#4c72b0" if n in MODEL_ROWS or is_replicate(n) else "#bbbbbb" for n in names])
            ax.set_xticks(range(len(names)), [label(n) for n in names], rotation=30, fontsize="small")
            ax.set_title(f"{game}: {metric}", fontsize="medium")
    figure.suptitle("Policies per metric (95% bootstrap intervals)")
    figure.tight_layout()
    return _svg(figure)


def paired_differences_svg(inputs: ReportInputs) -> str:
    """SEPO − SFT per domain and metric, with the paired intervals."""
    plt = _pyplot()
    differences = inputs.comparisons["differences"]
    games = list(differences)
    names = _difference_names(differences)
    figure, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 2.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        shown = [g for g in games if name in differences[g]]
        values = [differences[g][name] for g in shown]
        ax.errorbar([v["value"] for v in values], range(len(shown)), fmt="o", capsize=3,
                    xerr=[[v["value"] - v["ci_low"] for v in values], [v["ci_high"] - v["value"] for v in values]])
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_yticks(range(len(shown)), shown, fontsize="small")
        ax.set_title(name, fontsize="medium")
    c = inputs.comparisons
    figure.suptitle(f"{c['treated']} − {c['control']}, paired 95% intervals")
    figure.tight_layout()
    return _svg(figure)


def audit_frequencies_svg(inputs: ReportInputs, game: str) -> str:
    """A domain's audited frequencies per row (with intervals) against its reference."""
    plt = _pyplot()
    first = inputs.audit(game)
    keys = [k for k in first["order"] if k in first["frequencies"]]
    names = [n for n in inputs.rows(game) if "audit" in inputs.evaluations[game][n]]
    figure, ax = plt.subplots(figsize=(6.5, 3))
    width = 0.8 / (len(names) + 1)
    for k, name in enumerate(names):
        values = [inputs.evaluations[game][name]["audit"]["frequencies"][key] for key in keys]
        ax.bar([i + k * width for i in range(len(keys))], [v["value"] for v in values], width,
               yerr=[[v["value"] - v["ci_low"] for v in values], [v["ci_high"] - v["value"] for v in values]],
               capsize=2, label=label(name))
    ax.bar([i + len(names) * width for i in range(len(keys))], [first["reference_frequencies"][k] for k in keys],
           width, label=first["reference"], color="black")
    ax.set_xticks([i + 0.4 for i in range(len(keys))], [first["labels"][k] for k in keys])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("probability")
    ax.legend(fontsize="small", ncol=2)
    ax.set_title(f"{game}: played frequencies against {first['reference']}")
    return _svg(figure)


def ablation_audit_svg(inputs: ReportInputs, game: str) -> str:
    """Per ablation arm: the first audit scalar (NashConv) with its interval; the frequencies against the reference."""
    plt = _pyplot()
    reference = inputs.ablation[game][AUDIT_REFERENCE]
    runs = inputs.ablation[game]
    names = _audited_arms(inputs, game)
    scalar = reference["order"][0]
    keys = [k for k in reference["order"] if k in reference["reference_frequencies"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
    values = [runs[name][scalar] for name in names]
    left.barh(range(len(names)), [v["value"] for v in values],
              xerr=[[v["value"] - v["ci_low"] for v in values], [v["ci_high"] - v["value"] for v in values]],
              capsize=3, color=["#bbbbbb" if name == "sft" else "#4c72b0" for name in names])
    left.set_yticks(range(len(names)), names, fontsize="small")
    left.invert_yaxis()
    left.set_xlabel(f"{reference['labels'][scalar]} (0 at equilibrium)")
    width = 0.8 / (len(names) + 1)
    for k, name in enumerate(names):
        freq = [runs[name]["frequencies"][key] for key in keys]
        right.bar([i + k * width for i in range(len(keys))], [v["value"] for v in freq], width,
                  yerr=[[v["value"] - v["ci_low"] for v in freq], [v["ci_high"] - v["value"] for v in freq]],
                  capsize=2, label=name)
    right.bar([i + len(names) * width for i in range(len(keys))],
              [reference["reference_frequencies"][k] for k in keys], width, label=reference["reference"],
              color="black")
    right.set_xticks([i + 0.4 for i in range(len(keys))], [reference["labels"][k] for k in keys])
    right.set_ylim(0, 1.05)
    right.set_ylabel("probability")
    right.legend(fontsize="x-small", ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    figure.suptitle(f"Ablation on {game}: played policy per arm (95% bootstrap intervals)")
    figure.tight_layout()
    return _svg(figure)


# -- CSV for `dvc plots` -----------------------------------------------------------

def comparison_csv(inputs: ReportInputs) -> str:
    """One line per (domain, row): every metric's value and interval, for dvc's bar templates."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "game", "policy", *(f"{key}{part}" for key, _ in COLUMNS
                                                for part in ("", "_ci_low", "_ci_high"))])
    for game in inputs.games():
        for name in inputs.rows(game):
            m = inputs.evaluations[game][name]["metrics"]
            writer.writerow([f"{game}/{name}", game, name,
                             *(f"{m[key][part]:.6g}" for key, _ in COLUMNS for part in ("value", "ci_low", "ci_high"))])
    return out.getvalue()


def audit_frequencies_csv(inputs: ReportInputs, game: str) -> str:
    """A domain's audited frequencies per row and its reference's, for ``dvc plots``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "frequency", "policy", "probability", "ci_low", "ci_high"])
    first = inputs.audit(game)
    for name in inputs.rows(game):
        audit = inputs.evaluations[game][name].get("audit")
        for key, v in (audit["frequencies"].items() if audit else ()):
            writer.writerow([f"{name}/{key}", key, name, f"{v['value']:.6g}", f"{v['ci_low']:.6g}",
                             f"{v['ci_high']:.6g}"])
    for key, value in first["reference_frequencies"].items():
        writer.writerow([f"reference/{key}", key, "reference", f"{value:.6g}", f"{value:.6g}", f"{value:.6g}"])
    return out.getvalue()


# -- the documents --------------------------------------------------------------------

@dataclass
class Section:
    title: str
    text: str = ""
    table: Table | None = None
    figure: str | None = None  # a file name under the figures folder


def _most_common(values: list[int]) -> int:
    return max(sorted(set(values)), key=values.count)


def episodes_sentence(evaluations: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Episodes per opponent as measured: the usual count, then the domains and rows that differ.

    E.g. ``32 episodes per opponent (ipd: 64, negotiation_items: 160; base: 4)``: a domain's count
    is the one most of its rows use (``eval.game_episodes``), a row's the one
    it uses in place of that in every domain (``eval.row_episodes``).
    """
    counts = {(game, row): r["episodes_per_opponent"] for game, rows in evaluations.items() for row, r in rows.items()}
    by_game = {game: _most_common([n for (g, _), n in counts.items() if g == game]) for game in evaluations}
    usual = _most_common(list(by_game.values()))
    games = [f"{game}: {n}" for game, n in by_game.items() if n != usual]
    odd: dict[str, set[int]] = {}
    for (game, row), n in counts.items():
        if n != by_game[game]:
            odd.setdefault(row, set()).add(n)
    rows = [f"{row}: {'/'.join(str(n) for n in sorted(ns))}" for row, ns in sorted(odd.items())]
    detail = "; ".join(part for part in (", ".join(games), ", ".join(rows)) if part)
    return f"{usual} episodes per opponent" + (f" ({detail})" if detail else "")


def sections(inputs: ReportInputs) -> list[Section]:
    results = [r for rows in inputs.evaluations.values() for r in rows.values()]
    first = results[0]
    sampled = next((r["generation"] for r in results if "generation" in r), None)
    sampling = (f"model rows sample at temperature {sampled['temperature']}, top-p {sampled['top_p']}, "
                f"top-k {sampled['top_k']}, at most {sampled['max_new_tokens']} new tokens" if sampled
                else "no model rows")
    settings = (f"Each row: {episodes_sentence(inputs.evaluations)} of every pool "
                "(train, exploit, "
                f"collusive, shift), evaluation seed {first['seed']}; {sampling}. Cells are the value and its 95% "
                "percentile-bootstrap interval over episodes (stratified by opponent). Safety uses each domain's "
                "reported λ and payoff scale, written in every metrics file.")
    out = [Section("Settings", settings)]
    for game in inputs.games():
        out.append(Section(GAME_TITLES.get(game, game), table=domain_table(inputs, game)))
    for game in inputs.audited_games():
        audit = inputs.audit(game)
        out.append(Section(audit["title"], audit["description"], table=audit_table(inputs, game),
                           figure=f"{game}_frequencies.svg"))
    if inputs.comparisons:
        c = inputs.comparisons
        out.append(Section(f"Paired comparisons: {c['treated']} − {c['control']}",
                           "Both rows play the same episode seeds; each difference has a paired percentile-bootstrap "
                           "interval over episode pairs. ▲ / ▼: the interval lies above / below 0; ·: it holds 0.",
                           table=difference_table(c["differences"], "domain"), figure="paired_differences.svg"))
        if c.get("replicates"):
            per_seed = {f"{game} / {label(c['treated'])}": d for game, d in c["differences"].items()
                        if game in c["replicates"]}
            for game, seeds in c["replicates"].items():
                per_seed.update({f"{game} / {label(name)}": d for name, d in seeds.items()})
                per_seed[f"{game} / pooled over {len(c['pooled'][game]['rows'])} seeds"] = {
                    k: v for k, v in c["pooled"][game].items() if k != "rows"}
            out.append(Section(f"SEPO seeds: {c['treated']} − {c['control']} per seed and pooled",
                               "Replicate SEPO runs from the same SFT model with other sepo.seed values. The pooled "
                               "row is the mean of the seeds' differences, its interval a joint paired bootstrap "
                               "over episodes (seeds held fixed); the spread between the seed rows is the "
                               "training noise.", table=difference_table(per_seed, "domain / row")))
    ablation = ablation_table(inputs)
    if ablation:
        out.append(Section("Penalty-mode ablation",
                           "Short SEPO runs from the same SFT policy and seed per penalty mode and reward scaling, "
                           "evaluated on the training pools. An arm whose name ends in -pool_weighted drew the "
                           "same number of groups from every pool "
                           "(sepo.group_weighting: pool, so its expected reward weighs payoff, exploit and "
                           "collusion as safety J does) instead of the same number per opponent.", table=ablation))
        for game in ablation_audits(inputs):
            out.append(Section(f"Ablation on {game}: {inputs.ablation[game][AUDIT_REFERENCE]['title']}",
                               ablation_audit_line(inputs, game), table=ablation_audit_table(inputs, game),
                               figure=f"ablation_{game}_audit.svg"))
        for game, runs in inputs.ablation.items():
            if runs.get("paired_differences"):
                out.append(Section(f"Ablation on {game}: each arm − none-batch (paired)",
                                   table=difference_table(runs["paired_differences"], "arm")))
    replicated = ablation_seeds_differences(inputs)
    if replicated:
        out.append(Section("Ablation seeds: each replicated arm − none-batch per sepo.seed (paired)",
                           "The ablation's verdict arms trained again from the same SFT model with other "
                           "sepo.seed values (stage ablation_replicate), evaluated on the same episodes; the "
                           "ablation's own seed first. The spread between the seed rows is the training noise.",
                           table=difference_table(replicated, "domain / arm / seed")))
    out.append(Section("Paper claims",
                       "Each claim of the paper's abstract, then this project's own bar for the default run, "
                       "against this run's numbers, by the rule in the last column (sepo/claims.py).",
                       table=claims_table(inputs)))
    out.append(Section("Figures", figure="comparison.svg"))
    if inputs.curves:
        out.append(Section("SEPO training curves", figure="training_curves.svg"))
    return out


def render_markdown(inputs: ReportInputs, figures_dir: str) -> str:
    parts = [f"# SEPO results (profile: {inputs.profile})", ""]
    if inputs.profile == "tiny":
        parts += [f"> {TINY_WARNING.format(seeds=inputs.seed_counts())}", ""]
    parts += ["Generated by the `report` stage from `metrics/eval/`, `metrics/sepo/` and `metrics/ablation.json` "
              "(see `dvc.lock` for the exact inputs). Every evaluated episode is in the `*.episodes.jsonl.gz` "
              "file next to its metrics file.", ""]
    for s in sections(inputs):
        parts += [f"## {s.title}", ""]
        if s.text:
            parts += [s.text, ""]
        if s.table:
            parts += [markdown_table(s.table), ""]
        if s.figure:
            parts += [f"![{s.title}]({figures_dir}/{s.figure})", ""]
    return "\n".join(parts)


def render_html(inputs: ReportInputs, figures: Mapping[str, str]) -> str:
    body = [f"<h1>SEPO results (profile: {html.escape(inputs.profile)})</h1>"]
    if inputs.profile == "tiny":
        warning = TINY_WARNING.format(seeds=inputs.seed_counts()).replace("**", "")
        body.append(f"<p class='warning'>{html.escape(warning)}</p>")
    for s in sections(inputs):
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            body.append(f"<p>{html.escape(s.text)}</p>")
        if s.table:
            body.append(html_table(s.table))
        if s.figure and s.figure in figures:
            svg = figures[s.figure]
            body.append(f"<figure class='plot'>{svg[svg.index('<svg'):]}</figure>")
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child{text-align:left}"
             ".warning{background:#fff3cd;padding:.6em;border:1px solid #e0c060}figure svg{max-width:100%;height:auto}")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>SEPO results</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def figures(inputs: ReportInputs) -> dict[str, str]:
    """File name -> SVG text of every figure the inputs allow."""
    out = {"comparison.svg": comparison_svg(inputs)}
    curves = training_curves_svg(inputs)
    if curves is not None:
        out["training_curves.svg"] = curves
    if inputs.comparisons:
        out["paired_differences.svg"] = paired_differences_svg(inputs)
    for game in inputs.audited_games():
        out[f"{game}_frequencies.svg"] = audit_frequencies_svg(inputs, game)
    for game in ablation_audits(inputs):
        out[f"ablation_{game}_audit.svg"] = ablation_audit_svg(inputs, game)
    return out


def expected_rows(references: Mapping[str, Mapping[str, str]], games: Sequence[str]) -> dict[str, list[str]]:
    """The rows every domain's table must have: base, SFT, SEPO and its reference roles."""
    return {g: [*MODEL_ROWS, *sorted(references.get(g, {}))] for g in games}
