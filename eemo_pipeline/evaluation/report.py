"""The benchmark report: the paper's Tables 1-3 with this run's models beside the published numbers.

``write_report`` writes ``report.md`` and ``report.html`` (same tables; a ``source`` column marks every row
"this run", "published" or "computed"), ``vad_histograms.png`` (predicted VAD score distributions against the
ground truth, as the paper's Fig. 8), ``radar.png`` (task scores per model, as Fig. 1(a)), and the per-item
``predictions.parquet``, ``metrics.parquet`` (and ``descriptions_judged.parquet``). The published numbers come
from ``published.yaml`` (Tables 1-4 of the paper); Table 1 also prints the exact random-guess ranking score
computed with this pipeline's formula beside the paper's, and a last table names the file each benchmark's
items came from (``source_file``). matplotlib is imported inside the plotting functions, with the Agg backend,
so importing this module stays cheap.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from eemo_pipeline.evaluation.readers import BENCHMARKS, EKMAN7
from eemo_pipeline.tasks.metrics import random_ranking_baseline
from eemo_pipeline.tasks.registry import report_columns
from eemo_pipeline.tasks.task import ReportColumn
from eemo_pipeline.tasks.vad import TASK as VAD

PUBLISHED_FILE = Path(__file__).with_name("published.yaml")
AESE_DIMENSIONS = ("Emotion", "Interest", "Uniqueness", "Vibe")
AESE_TYPES = ("yes-no", "what", "how", "why")

# (key, header, kind): kind "pct" is a percentage, "pair" an SRCC/PLCC pair. The GRPO tasks' columns come from
# the task registry (``Task.report_columns``).
TABLE1 = [("single_yes_no", "Single Yes-or-No", "pct"), ("single_what_how", "Single What-How", "pct"),
          ("single_overall", "Single Overall", "pct"), ("pair_yes_no", "Pair Yes-or-No", "pct"),
          ("pair_what_how", "Pair What-How", "pct"), ("pair_overall", "Pair Overall", "pct"),
          ("perception_overall", "Perception Overall", "pct"),
          *[(c.key, c.header, c.kind) for c in report_columns("table1")],
          ("description_single", "Description Single", "pct"), ("description_pair", "Description Pair", "pct"),
          ("description_overall", "Description Overall", "pct"), ("overall", "Overall", "pct")]
TABLE2 = [(c.key, c.header, c.kind) for c in report_columns("table2")]
TABLE3 = [*[(c.key, c.header, c.kind) for c in report_columns("table3")],
          ("uniaa_overall", "UNIAA Sent. Overall", "pct"),
          *[(f"aese_{d.lower()}", f"AesE {d}", "pct") for d in AESE_DIMENSIONS],
          ("aese_yes_no", "AesE Yes-No", "pct"), ("aese_what", "AesE What", "pct"), ("aese_how", "AesE How", "pct"),
          ("aese_why", "AesE Why", "pct"), ("aese_overall", "AesE Overall", "pct")]
TABLE4 = [("perception_overall", "Perception", "pct"), ("description_overall", "Description", "pct"),
          ("valence", "Valence", "pair"), ("arousal", "Arousal", "pair"), ("dominance", "Dominance", "pair"),
          ("ranking", "Ranking", "pct"), ("artphoto_f1_acc", "Artphoto F1/ACC", "pctpair"),
          ("artemis_f1_acc", "ArtEmis F1/ACC", "pctpair"), ("uniaa_overall", "UNIAA", "pct"),
          ("aese_overall", "AesE", "pct")]


RANDOM_RANKING_NOTE = (
    "Random-guess ranking: the computed row is the exact mean ranking score of a uniformly random ordered choice "
    "of 3 distinct emotions out of the 7, over all 210 choices (the same for every ground truth): 195/7 = 27.86 "
    "with this pipeline's formula (tasks.metrics.random_ranking_baseline). The paper prints 25.48 and does not say "
    "how it was obtained. Sampling noise does not explain the gap (one random guess per image over EEmo-Bench's "
    "1,960 images has a standard error of about 0.5), nor do simple variants (three draws with replacement give "
    "23.32, the weighted hit alone 21.43), so the paper's figure presumably comes from another guess model or "
    "scoring code.")


def random_guess_rows() -> list[dict[str, Any]]:
    """Table 1's computed row: the exact random-guess ranking score (only the ranking column is defined)."""
    return [{"model": "Random guess, exact (3 of 7)", "ranking": random_ranking_baseline(EKMAN7, EKMAN7[:3])}]


@cache
def load_published() -> dict[str, Any]:
    """The paper's Tables 1-4 (``published.yaml``)."""
    return yaml.safe_load(PUBLISHED_FILE.read_text(encoding="utf-8"))


def _lookup(table: pl.DataFrame, model: str, benchmark: str, task: str, breakdown: str, group: str,
            metric: str) -> float | None:
    found = table.filter((pl.col("model") == model) & (pl.col("benchmark") == benchmark) & (pl.col("task") == task)
                         & (pl.col("breakdown") == breakdown) & (pl.col("group") == group)
                         & (pl.col("metric") == metric))["value"]
    return found[0] if len(found) else None


def _column_value(table: pl.DataFrame, model: str, column: ReportColumn, breakdown: str | None = None) -> Any:
    """A registry column's cell: one value, or a (SRCC, PLCC)-style list (None when all are missing)."""
    values = [_lookup(table, model, column.benchmark, column.task, column.breakdown or breakdown or "",
                      column.group, metric) for metric in column.metrics]
    if len(values) == 1:
        return values[0]
    return values if any(v is not None for v in values) else None


def _mean(values: Sequence[float | None]) -> float | None:
    return sum(values) / len(values) if values and all(v is not None for v in values) else None  # type: ignore[misc]


def table1_rows(table: pl.DataFrame) -> list[dict[str, Any]]:
    """Table 1 (perception, ranking, description) for each model of the metrics ``table``."""
    rows = []
    for model in table["model"].unique(maintain_order=True).to_list():
        def get(task: str, breakdown: str, group: str, metric: str, model: str = model) -> float | None:
            return _lookup(table, model, "eemo_bench", task, breakdown, group, metric)

        row = {"model": model,
               "single_yes_no": get("perception", "carrier_type", "single/Yes-or-No", "accuracy"),
               "single_what_how": get("perception", "carrier_type", "single/What/How", "accuracy"),
               "single_overall": get("perception", "carrier", "single", "accuracy"),
               "pair_yes_no": get("perception", "carrier_type", "pair/Yes-or-No", "accuracy"),
               "pair_what_how": get("perception", "carrier_type", "pair/What/How", "accuracy"),
               "pair_overall": get("perception", "carrier", "pair", "accuracy"),
               "perception_overall": get("perception", "overall", "all", "accuracy"),
               **{c.key: _column_value(table, model, c) for c in report_columns("table1")},
               "description_single": get("description", "carrier", "single", "judge_score"),
               "description_pair": get("description", "carrier", "pair", "judge_score"),
               "description_overall": get("description", "overall", "all", "judge_score")}
        row["overall"] = _mean([row["perception_overall"], row["ranking"], row["description_overall"]])
        rows.append(row)
    return rows


def table2_rows(table: pl.DataFrame) -> list[dict[str, Any]]:
    """Table 2 (VAD SRCC/PLCC), one row per model and breakdown (the VAD mode: "direct", "probability")."""
    rows = []
    columns = report_columns("table2")
    tasks = list(dict.fromkeys(c.task for c in columns))
    part = table.filter(pl.col("task").is_in(tasks))
    for model, mode in part.select("model", "breakdown").unique(maintain_order=True).iter_rows():
        rows.append({"model": f"{model} ({mode})", **{c.key: _column_value(part, model, c, mode) for c in columns}})
    return rows


def table3_rows(table: pl.DataFrame) -> list[dict[str, Any]]:
    """Table 3 (cross-domain) for each model of the metrics ``table``."""
    rows = []
    for model in table["model"].unique(maintain_order=True).to_list():
        row: dict[str, Any] = {"model": model, **{c.key: _column_value(table, model, c) for c in report_columns("table3")}}
        row["uniaa_overall"] = _lookup(table, model, "uniaa", "multiple_choice", "overall", "all", "accuracy")
        for dim in AESE_DIMENSIONS:
            row[f"aese_{dim.lower()}"] = _lookup(table, model, "aesbench", "multiple_choice", "dimension", dim, "accuracy")
        for kind in AESE_TYPES:
            row[f"aese_{kind.replace('-', '_')}"] = _lookup(table, model, "aesbench", "multiple_choice",
                                                            "question_type", kind, "accuracy")
        row["aese_overall"] = _lookup(table, model, "aesbench", "multiple_choice", "overall", "all", "accuracy")
        rows.append(row)
    return rows


def _cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if kind == "pct":
        return f"{value:.2f}%"
    if kind == "pctpair":
        return f"{value[0]:.2f}%/{value[1]:.2f}%"
    return "/".join("NA" if v is None or math.isnan(v) else f"{v:.2f}" for v in value)


@dataclass
class Table:
    title: str
    columns: list[tuple[str, str, str]]
    run_rows: list[dict[str, Any]]
    published_rows: list[dict[str, Any]]
    label: str = "model"
    computed_rows: list[dict[str, Any]] = field(default_factory=list)  # reference values this code computes
    note: str = ""  # printed under the table

    def cells(self) -> list[list[str]]:
        """Header then rows: label, source ("this run", "computed" or "published"), one cell per column. Computed
        rows come just before the published ones (the random-guess baselines meet there)."""
        lines = [[self.label, "source", *(header for _, header, _ in self.columns)]]
        for source, rows in (("this run", self.run_rows), ("computed", self.computed_rows),
                             ("published", self.published_rows)):
            for row in rows:
                lines.append([str(row.get(self.label)), source,
                              *(_cell(row.get(key), kind) for key, _, kind in self.columns)])
        return lines


def build_tables(table: pl.DataFrame, published: dict[str, Any] | None = None) -> list[Table]:
    """The report's tables: Tables 1-3 with this run's rows and the published ones, Table 4 published only."""
    published = published if published is not None else load_published()
    return [
        Table("Table 1. EEmo-Bench perception (accuracy), ranking (score) and description (judge score)",
              TABLE1, table1_rows(table), published.get("table1", []), computed_rows=random_guess_rows(),
              note=RANDOM_RANKING_NOTE),
        Table("Table 2. EEmo-Bench assessment: VAD SRCC/PLCC (this run: per mode; published baselines use "
              "the probability mode)", TABLE2, table2_rows(table), published.get("table2", [])),
        Table("Table 3. Cross-domain: Artphoto and ArtEmis (macro F1, accuracy), UNIAA sentiment and AesBench "
              "AesE (accuracy)", TABLE3, table3_rows(table), published.get("table3", [])),
        Table("Table 4. Ablation of the training strategy (published only; the paper's configuration columns "
              "were lost in text extraction)", TABLE4, [], published.get("table4", []), label="row"),
    ]


def source_file_rows(predictions: pl.DataFrame) -> list[dict[str, Any]]:
    """Per benchmark and file, the number of items read from it: the file each benchmark's numbers come from."""
    order = {name: i for i, name in enumerate(BENCHMARKS)}
    counts = predictions.group_by("benchmark", "source_file").agg(pl.col("item_id").n_unique().alias("items"))
    return sorted(counts.iter_rows(named=True), key=lambda r: (order.get(r["benchmark"], len(order)),
                                                                 r["benchmark"], r["source_file"] or ""))


def _source_file_lines(predictions: pl.DataFrame) -> list[list[str]]:
    return [["benchmark", "items", "source_file"],
            *([r["benchmark"], str(r["items"]), str(r["source_file"])] for r in source_file_rows(predictions))]


SOURCE_FILES_TITLE = "Test files: the file each benchmark's items (and so its numbers) came from"


def _markdown_lines(title: str, lines: list[list[str]], note: str = "") -> str:
    out = [f"### {title}", "", "| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines[1:]]
    return "\n".join(out + (["", note] if note else []))


def _html_lines(title: str, lines: list[list[str]], row_class: Callable[[list[str]], str] | None = None,
                note: str = "") -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in lines[0])
    body = "".join(
        (f"<tr class=\"{row_class(line)}\">" if row_class else "<tr>")
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in line) + "</tr>" for line in lines[1:])
    return (f"<h3>{html.escape(title)}</h3>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + (f"<p class=\"note\">{html.escape(note)}</p>" if note else ""))


def _markdown_table(table: Table) -> str:
    return _markdown_lines(table.title, table.cells(), table.note)


def _html_table(table: Table) -> str:
    return _html_lines(table.title, table.cells(), lambda line: "run" if line[1] == "this run" else line[1], table.note)


def plot_vad_histograms(predictions: pl.DataFrame, path: Path) -> Path | None:
    """Histograms of predicted VAD scores per dimension, one series per model and mode, over the ground
    truth's; None when there are no VAD predictions."""
    vad = predictions.filter((pl.col("task") == VAD.name) & pl.col("predicted_value").is_not_null())
    if vad.is_empty():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(VAD.sub_tasks), figsize=(13, 3.6), sharey=False)
    bins = [i / 20 for i in range(21)]
    for axis, dim in zip(axes, VAD.sub_tasks):
        part = vad.filter(pl.col("sub_task") == dim)
        truth = part.unique("item_id")["truth_value"].to_list()
        axis.hist(truth, bins=bins, color="grey", alpha=0.4, label="ground truth")
        for (model, mode), series in part.group_by("model", "mode", maintain_order=True):
            values = [min(max(v, 0.0), 1.0) for v in series["predicted_value"].to_list()]
            axis.hist(values, bins=bins, histtype="step", linewidth=1.6, label=f"{model} ({mode})")
        axis.set_title(dim.capitalize())
        axis.set_xlabel("score (0-1)")
    axes[0].set_ylabel("images")
    axes[-1].legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def radar_scores(table: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per model, the task scores of the radar chart on 0-100 (VAD: the best mode's overall SRCC x 100);
    tasks without a score for any model are left out."""
    axes: dict[str, dict[str, float | None]] = {}
    t1 = {row["model"]: row for row in table1_rows(table)}
    t3 = {row["model"]: row for row in table3_rows(table)}
    for model in t1:
        vad = [v for v in (_lookup(table, model, "eemo_bench", VAD.name, mode, "overall", "srcc")
                           for mode in ("direct", "probability")) if v is not None]
        axes[model] = {"Perception": t1[model]["perception_overall"], "Ranking": t1[model]["ranking"],
                       "Description": t1[model]["description_overall"],
                       "VAD SRCC x100": 100.0 * max(vad) if vad else None,
                       "Artphoto ACC": t3[model]["artphoto_acc"], "ArtEmis ACC": t3[model]["artemis_acc"],
                       "UNIAA": t3[model]["uniaa_overall"], "AesE": t3[model]["aese_overall"]}
    present = [name for name in next(iter(axes.values()), {}) if any(a[name] is not None for a in axes.values())]
    return {model: {name: scores[name] or 0.0 for name in present} for model, scores in axes.items()}


def plot_radar(table: pl.DataFrame, path: Path) -> Path | None:
    """A radar chart of ``radar_scores``; None with fewer than three task axes."""
    scores = radar_scores(table)
    names = list(next(iter(scores.values()), {}))
    if len(names) < 3:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    angles = [2 * math.pi * i / len(names) for i in range(len(names))]
    figure = plt.figure(figsize=(5.5, 5.5))
    axis = figure.add_subplot(polar=True)
    for model, values in scores.items():
        points = [values[name] for name in names]
        axis.plot([*angles, angles[0]], [*points, points[0]], linewidth=1.6, label=model)
        axis.fill([*angles, angles[0]], [*points, points[0]], alpha=0.1)
    axis.set_xticks(angles)
    axis.set_xticklabels(names, fontsize=8)
    axis.set_ylim(0, 100)
    axis.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.3, 1.1))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    figures: list[Path]
    predictions: Path
    metrics: Path
    markdown_text: str
    notes: list[str] = field(default_factory=list)


def report_notes(table: pl.DataFrame, notes: Sequence[str] = ()) -> list[str]:
    """The caveats printed under the tables: the caller's notes plus what the metrics table shows (missing
    answer keys or reference answers, unparseable replies)."""
    found = list(dict.fromkeys(notes))
    for model, benchmark in table.filter(pl.col("group") == "no answer key").select("model", "benchmark").iter_rows():
        found.append(f"{model}: {benchmark} has no answer key (the public AesBench file has no answers), so its "
                     "accuracy is NA; pass an answer key to score it.")
    for (model,) in table.filter(pl.col("group") == "no reference").select("model").iter_rows():
        found.append(f"{model}: no EEmo-Bench open-ended question has a reference answer (the authors' released "
                     "files have none), so the description score is NA.")
    unparsed = (table.filter(pl.col("breakdown") == "overall").group_by("model", "benchmark", "task")
                .agg(pl.col("unparsed").max(), pl.col("n").max()).filter(pl.col("unparsed") > 0)
                .sort("model", "benchmark", "task"))  # a total order: the same inputs give the same report
    for model, benchmark, task, n_unparsed, n in unparsed.iter_rows():
        found.append(f"{model}: {n_unparsed} of {n} {benchmark} {task} replies could not be parsed (scored as wrong).")
    return found


def write_report(table: pl.DataFrame, predictions: pl.DataFrame, out_dir: Path, *, notes: Sequence[str] = (),
                 judged: pl.DataFrame | None = None, published: dict[str, Any] | None = None) -> ReportFiles:
    """Write the report for the metrics ``table`` (``tasks.benchmark.METRIC_SCHEMA``) and ``predictions`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = build_tables(table, published)
    figures = [f for f in (plot_vad_histograms(predictions, out_dir / "vad_histograms.png"),
                           plot_radar(table, out_dir / "radar.png")) if f is not None]
    caveats = report_notes(table, notes)
    models = ", ".join(table["model"].unique(maintain_order=True).to_list()) or "none"
    intro = (f"Models in this run: {models}. Rows marked \"published\" are the numbers printed in the EEmo-Logic "
             "paper (ICML 2026), not results of this run; \"computed\" rows are reference values this code "
             "computes (no model). Percentages are accuracy, F1, ranking score or judge score; VAD cells are "
             "SRCC/PLCC; NA = not available.")
    markdown = "\n\n".join(["# EEmo-Logic benchmark report", intro,
                            *(_markdown_table(t) for t in tables),
                            _markdown_lines(SOURCE_FILES_TITLE, _source_file_lines(predictions)),
                            "## Notes\n\n" + ("\n".join(f"- {n}" for n in caveats) or "- none"),
                            "## Figures\n\n" + "\n".join(f"![{f.stem}]({f.name})" for f in figures)]) + "\n"
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em;font-size:12px}"
             "td,th{border:1px solid #bbb;padding:3px 6px}tr.published{color:#555;background:#f4f4f4}"
             "tr.run{font-weight:bold}tr.computed{color:#555;font-style:italic}p.note{font-size:12px;max-width:70em}")
    page = "\n".join([
        f"<!doctype html><html><head><meta charset=\"utf-8\"><title>EEmo-Logic benchmark report</title>"
        f"<style>{style}</style></head><body>", "<h1>EEmo-Logic benchmark report</h1>",
        f"<p>{html.escape(intro)}</p>", *(_html_table(t) for t in tables),
        _html_lines(SOURCE_FILES_TITLE, _source_file_lines(predictions)), "<h2>Notes</h2><ul>",
        *(f"<li>{html.escape(n)}</li>" for n in caveats or ["none"]), "</ul><h2>Figures</h2>",
        *(f"<img src=\"{html.escape(f.name)}\" alt=\"{html.escape(f.stem)}\">" for f in figures), "</body></html>"])
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    predictions.write_parquet(out_dir / "predictions.parquet", compression="zstd")
    table.write_parquet(out_dir / "metrics.parquet", compression="zstd")
    if judged is not None:
        judged.write_parquet(out_dir / "descriptions_judged.parquet", compression="zstd")
    return ReportFiles(out_dir / "report.md", out_dir / "report.html", figures, out_dir / "predictions.parquet",
                       out_dir / "metrics.parquet", markdown, caveats)
