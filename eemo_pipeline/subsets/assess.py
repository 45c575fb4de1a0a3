"""EEmoDB-Assess (paper section 3.4): the GRPO subset of precise, balanced assessment instructions.

One instruction per row (contract ``data_contracts/eemodb_assess.yaml``), from every registered task
(``eemo_pipeline.tasks.registry.TASKS``): each task's row builder (``Task.assess_rows``, its selection rule in
its module: ``tasks/ranking.py``, ``tasks/vad.py``, ``tasks/dominant_emotion.py``) gets the same inputs
(``tasks.assess_rows.AssessInputs``) and this module adds what every row shares.

Only images whose manifest row is decodable are used. Every question states the answer format the GRPO
rewards parse (``<think>...</think><answer>Valence: x.xxxx</answer>`` and so on); the ``answer`` column holds
only the value. ``row_id`` is the first 16 hex of sha256 over task, sub_task, template_id, the
``<source>/<image_id>`` of each image and the answer. The same inputs and seed give the same rows in the same
order (sorted by ``row_id``), so byte-identical Parquet. Seeded draws use ``eemo_pipeline.frames.with_draw_key``
(sha256 image keys mixed by splitmix64), the same on every polars version.
"""

from __future__ import annotations

import hashlib
import json

import polars as pl

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.subsets.provenance import source_inputs
from eemo_pipeline.tasks.assess_rows import AssessConfig, AssessInputs
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.tasks.task import Task

ASSESS_VERSION = 2
CODE_ID = f"eemodb_assess@{ASSESS_VERSION}"


def _decodable(manifest: pl.DataFrame) -> pl.DataFrame:
    return manifest.filter(pl.col("decodable") & pl.col("image_path").is_not_null()).select(
        "source", "image_id", "image_path"
    ).unique(["source", "image_id"], keep="first").sort("source", "image_id")


def task_rows(task: Task, inputs: AssessInputs) -> pl.DataFrame:
    """``task``'s Assess rows; ValueError naming the task and a row whose ``task``, ``template_id`` or (for a task
    with fixed sub_tasks) ``sub_task`` is not the task's own."""
    rows = task.assess_rows(inputs)
    foreign = rows.filter((pl.col("task") != task.name) | ~pl.col("template_id").is_in(list(task.template_ids))
                          | (~pl.col("sub_task").is_in(list(task.sub_tasks)) if task.sub_tasks else pl.lit(False)))
    if not foreign.is_empty():
        raise ValueError(f"task {task.name!r} built an Assess row that is not its own (task, template_id or "
                         f"sub_task): {foreign.select('task', 'sub_task', 'template_id').row(0)}")
    return rows


def row_id(task: str, sub_task: str, template_id: str, image_keys: list[str], answer: str) -> str:
    """First 16 hex of sha256 over the row's identity (image keys are ``<source>/<image_id>``)."""
    text = "\x1f".join([task, sub_task, template_id, "\x1e".join(image_keys), answer])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def build_assess(
    mapped_labels: pl.DataFrame,
    vad_scores: pl.DataFrame,
    manifest: pl.DataFrame,
    raw_annotations: pl.DataFrame,
    inputs: dict[str, str],
    seed: int = 0,
    config: AssessConfig | None = None,
) -> pl.DataFrame:
    """The eemodb_assess table from per-source tables concatenated (each with its ``source`` column).

    ``inputs`` maps input keys such as ``"vad_scores[oasis]"`` to their data versions; each row's provenance
    keeps those of its own source (plus unpartitioned ones).
    """
    config = config or AssessConfig()
    contract = table_contract("eemodb_assess")
    inputs_of_tasks = AssessInputs(mapped_labels, vad_scores, raw_annotations, _decodable(manifest), seed, config)
    work = pl.concat([task_rows(task, inputs_of_tasks) for task in TASKS.values()], how="vertical")
    per_source = {s: source_inputs(inputs, s) for s in work["source"].unique().to_list()}
    ids, provenance = [], []
    for task, sub_task, template_id, source, image_id, answer, facts in work.select(
        "task", "sub_task", "template_id", "source", "image_id", "answer", "provenance_facts"
    ).iter_rows():
        ids.append(row_id(task, sub_task, template_id, [f"{source}/{image_id}"], answer))
        record = {"code": CODE_ID, "inputs": per_source[source], "seed": seed}
        if facts is not None:  # what the task says of this row (a VAD row: where its score comes from)
            extra = json.loads(facts)
            if extra.keys() & record.keys():
                raise ValueError(f"{task} row {source}/{image_id}: provenance_facts may not set {sorted(record)}")
            record |= extra
        provenance.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
    frame = work.with_columns(
        pl.Series("row_id", ids, pl.String),
        pl.Series("provenance", provenance, pl.String),
        pl.concat_list(pl.concat_str([pl.col("source"), pl.col("image_path")], separator="/")).alias("image_paths"),
        pl.concat_list(pl.col("source")).alias("sources"),
        pl.concat_list(pl.col("image_id")).alias("source_image_ids"),
    )
    frame = contract.conform(frame).sort("row_id")
    problems = contract.violations(frame)
    if problems:
        raise ValueError(f"eemodb_assess violates its contract: {problems}")
    return frame


def assess_stats(assess: pl.DataFrame) -> dict[str, int]:
    """Row counts per task and sub_task, for asset metadata and the benchmark."""
    counts = assess.group_by("task", "sub_task").len().sort("task", "sub_task")
    return {"rows": assess.height, **{f"{t}/{s}": n for t, s, n in counts.iter_rows()}}
