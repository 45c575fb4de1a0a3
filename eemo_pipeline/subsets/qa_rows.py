"""Rows of EEmoDB-QA in the making: the versioned question templates (``qa_templates.yaml``), the
deterministic rank within a group, question rendering and the common row layout every builder returns."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

TEMPLATES_PATH = Path(__file__).with_name("qa_templates.yaml")
LETTERS = "ABCDEFGH"
# Every sub_task the template file must phrase (build_qa's builders and the description kinds).
SUB_TASKS: tuple[str, ...] = (
    "emotion_verification", "comparative_identification", "visual_attribution", "reasoning_choice",
    "consistency_verification", "comparative_assessment", "emotion_ranking",
    "narrative", "causal", "evocation", "pair_ranking", "pair_dimension",
)


@dataclass(frozen=True)
class Templates:
    version: str
    document: dict[str, Any]

    def of(self, sub_task: str) -> pl.DataFrame:
        """``_t`` (index), ``template_id``, ``_text`` of a sub_task's phrasings, in file order."""
        entries = self.document["sub_tasks"][sub_task]
        return pl.DataFrame(
            {"_t": list(range(len(entries))), "template_id": [f"{e['name']}@{self.version}" for e in entries],
             "_text": [e["text"] for e in entries]},
            schema={"_t": pl.Int64, "template_id": pl.String, "_text": pl.String},
        )


@functools.cache
def load_templates(path: Path = TEMPLATES_PATH) -> Templates:
    """The versioned template file; checks that names are unique and every sub_task has a phrasing."""
    with Path(path).open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    names = [e["name"] for entries in document["sub_tasks"].values() for e in entries]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: template names must be unique")
    missing = set(SUB_TASKS) - {k for k, v in document["sub_tasks"].items() if v}
    if missing:
        raise ValueError(f"{path}: no phrasing for {sorted(missing)}")
    return Templates(str(document["version"]), document)


# --- deterministic keys -------------------------------------------------------------------------------------

def rank(key: str, *groups: str) -> pl.Expr:
    """0-based position of a row in its group when ordered by ``key``."""
    ranked = pl.col(key).rank("ordinal")
    return (ranked.over(list(groups)) if groups else ranked).cast(pl.Int64) - 1


# --- rendering ----------------------------------------------------------------------------------------------


def with_templates(frame: pl.DataFrame, templates: Templates, sub_task: str, key: str, *groups: str) -> pl.DataFrame:
    """Add ``template_id`` and ``_text``: phrasings round-robin in ``key`` order within each group."""
    phrasings = templates.of(sub_task)
    return (
        frame.with_columns((rank(key, *groups) % phrasings.height).alias("_t"))
        .join(phrasings, on="_t", how="left")
        .drop("_t")
    )


def fill(text: pl.Expr, **values: pl.Expr) -> pl.Expr:
    for name, value in values.items():
        text = text.str.replace_all("{" + name + "}", value, literal=True)
    return text


def word(column: str, words: Mapping[str, str]) -> pl.Expr:
    return pl.col(column).replace_strict(dict(words), return_dtype=pl.String)


def choice_question(text: pl.Expr, options: str, count: int, instruction: str) -> pl.Expr:
    parts: list[pl.Expr] = [text]
    for index in range(count):
        parts += [pl.lit(f"\n{LETTERS[index]}. "), pl.col(options).list.get(index)]
    parts.append(pl.lit("\n" + instruction))
    return pl.concat_str(parts)


def shuffled_options(long: pl.DataFrame, qid: str, option: str, correct: str, order: str) -> pl.DataFrame:
    """``qid, options, answer`` from one row per (question, option): options ordered by ``order``."""
    return (
        long.sort(qid, order)
        .group_by(qid, maintain_order=True)
        .agg(
            pl.col(option).alias("options"),
            pl.int_range(pl.len()).filter(pl.col(correct)).first().alias("_pos"),
        )
        .with_columns(pl.col("_pos").replace_strict(dict(enumerate(LETTERS)), return_dtype=pl.String).alias("answer"))
        .drop("_pos")
    )


ROW_COLUMNS = ["task", "sub_task", "template_id", "question", "options", "answer", "source", "id_a", "id_b",
                "gen_key", "gen_model", "gen_version"]
ROW_SCHEMA = {"task": pl.String, "sub_task": pl.String, "template_id": pl.String, "question": pl.String,
               "options": pl.List(pl.String), "answer": pl.String, "source": pl.String, "id_a": pl.String,
               "id_b": pl.String, "gen_key": pl.String, "gen_model": pl.String, "gen_version": pl.String}


def instruction_rows(frame: pl.DataFrame, task: str, sub_task: str) -> pl.DataFrame:
    """The common row layout of every builder."""
    present = set(frame.columns)
    return frame.select(
        [pl.lit(task).alias("task"), pl.lit(sub_task).alias("sub_task")]
        + [
            pl.col(c).cast(ROW_SCHEMA[c]) if c in present else pl.lit(None, ROW_SCHEMA[c]).alias(c)
            for c in ROW_COLUMNS[2:]
        ]
    )
