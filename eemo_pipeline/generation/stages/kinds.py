"""The template kinds of the generation stages and what the stages share: earlier answers, rankings and VAD
levels read from frames, and a rendered template as a ``WorkItem``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from eemo_pipeline.generation.templates import VAD_DIMENSIONS, Template, quoted
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline.vad.levels import vad_level_expr

Key = tuple[str, str]
DESCRIBE = "describe"
REASON = "reason"
SINGLE_KINDS: tuple[str, ...] = ("narrative", "causal", "evocation")
PAIR_KINDS: tuple[str, ...] = ("pair_ranking", "pair_dimension")
DESCRIPTIVE_KINDS: tuple[str, ...] = SINGLE_KINDS + PAIR_KINDS
# The reasoning-grounded multiple choice: one correct option and CHOICE_DISTRACTORS distractors, written from the
# image's validated reasoning (validators.validate_reasoning_choice); only images with reasoning get one.
REASONING_CHOICE = "reasoning_choice"
CHOICE_DISTRACTORS = 3
ANSWER_KINDS: tuple[str, ...] = (*SINGLE_KINDS, REASONING_CHOICE, *PAIR_KINDS)  # what descriptive_answers holds
# Kinds whose prompt states VAD levels: skipped where the image (or pair) has no rated dimension.
LEVEL_KINDS: tuple[str, ...] = ("narrative", "pair_ranking", "pair_dimension")
# Kinds whose answer must state a verdict (validators.EVOCATION_VERDICT).
VERDICT_KINDS: tuple[str, ...] = ("evocation",)
NOT_RATED = "not rated"  # the Facts value of a dimension without a score
NO_REASONING = "none available"  # the notes placeholder when an image's reasoning is missing (quarantined)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def ranking_text(ranking: Iterable[str]) -> str:
    return ", ".join(ranking)


def texts_of(frame: pl.DataFrame | None, template: str) -> dict[Key, str]:
    """``(source, image_id) -> text`` of a generated_text-like frame (rows of ``template`` when the frame has
    a ``template`` column; single-image rows only when it has ``image_id_b``)."""
    if frame is None or frame.is_empty():
        return {}
    rows = frame
    if "template" in rows.columns:
        rows = rows.filter(pl.col("template") == template)
    if "image_id_b" in rows.columns:
        rows = rows.filter(pl.col("image_id_b").is_null())
    rows = rows.filter(pl.col("text").is_not_null())
    return {(s, i): t for s, i, t in rows.select("source", "image_id", "text").iter_rows()}


def quoted_text(texts: Mapping[Key, str], key: Key, missing: str | None = None) -> str:
    """An earlier stage's answer for a later prompt, on one line and fenced as quoted data (``missing`` when
    there is none: a placeholder of ours, not model output, so it is not fenced)."""
    if key not in texts and missing is not None:
        return missing
    return quoted(one_line(texts[key]))


def rankings_of(mapped_labels: pl.DataFrame) -> dict[Key, list[str]]:
    rows = mapped_labels.filter(pl.col("ranking").is_not_null() & (pl.col("ranking").list.len() > 0))
    return {(s, i): list(r) for s, i, r in rows.select("source", "image_id", "ranking").iter_rows()}


def levels_of(vad: pl.DataFrame | None) -> dict[Key, dict[str, str | None]]:
    """``(source, image_id) -> {dimension: level or None}``."""
    if vad is None or vad.is_empty():
        return {}
    rows = vad.select("source", "image_id", *(vad_level_expr(d).alias(d) for d in VAD_DIMENSIONS))
    return {(r["source"], r["image_id"]): {d: r[d] for d in VAD_DIMENSIONS} for r in rows.iter_rows(named=True)}


def rated_only(levels: Mapping[str, str | None] | None) -> dict[str, str]:
    return {d: v for d, v in (levels or {}).items() if v is not None}


def work_item(template: Template, key: str, fields: dict[str, Any], context: dict[str, Any]) -> WorkItem:
    messages = template.render(**fields)
    return WorkItem(
        key=key,
        messages=messages,
        template=template.name,
        template_version=template.version,
        cache_payload={"template": template.id, "messages": messages},
        context={"word_limit": template.word_limit, **context},
    )
