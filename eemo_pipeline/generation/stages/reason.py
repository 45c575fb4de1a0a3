"""Stage 2: the ``reason`` items, with each image's human comments as the Comments fact."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from eemo_pipeline.generation.stages.kinds import (
    DESCRIBE,
    REASON,
    Key,
    levels_of,
    quoted_text,
    ranking_text,
    rankings_of,
    rated_only,
    texts_of,
    work_item,
)
from eemo_pipeline.generation.templates import load_template
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline.labels.taxonomy import TARGETS, mapping_table, taxonomy_of

# Characters of the rendered Comments fact (not published; Affection has about six comments of one or two
# sentences per image, so 1,500 characters keeps nearly all of them while bounding the prompt).
COMMENT_BUDGET_CHARS = 1500
# A comment that does not fit is cut at a word boundary (ending in "...") only when at least this many
# characters of room are left; otherwise the comments stop there.
MIN_CUT_COMMENT_CHARS = 40
MIN_COMMENT_BUDGET = 80  # smaller budgets could leave an image with comments showing "none"
NO_COMMENTS = "none"
OTHER_GROUP = "other"  # comments whose native label maps to no target (Affection's "something else")


def image_comments(annotations: pl.DataFrame) -> pl.DataFrame:
    """``source, image_id, emotion, text`` of every non-empty comment (raw_annotations ``text``), in file order.

    ``emotion`` is the target the comment's native label maps to (label_taxonomy), ``other`` when it maps to
    none; the text has its whitespace collapsed onto one line.
    """
    empty = pl.DataFrame(schema={"source": pl.String, "image_id": pl.String, "emotion": pl.String, "text": pl.String})
    if annotations.is_empty() or "text" not in annotations.columns:
        return empty
    rows = annotations.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    if rows.is_empty():
        return empty
    order = [c for c in ("source", "source_file", "source_line") if c in rows.columns]
    rows = rows.sort(order, maintain_order=True) if order else rows
    taxonomies = {s: taxonomy_of(s) for s in rows["source"].unique().to_list()}
    table = mapping_table().select("taxonomy", "label", "target")
    return (
        rows.with_columns(pl.col("source").replace_strict(taxonomies, default=None).alias("taxonomy"))
        .join(table, on=["taxonomy", "label"], how="left", maintain_order="left")
        .select(
            "source",
            "image_id",
            pl.col("target").fill_null(OTHER_GROUP).alias("emotion"),
            pl.col("text").str.replace_all(r"\s+", " ").str.strip_chars().alias("text"),
        )
    )


def _cut(text: str, room: int) -> str:
    """``text`` shortened at a word boundary to at most ``room`` characters, ending in ``...``."""
    if len(text) <= room:
        return text
    head = text[: max(room - 3, 0)]
    if " " in head:
        head = head[: head.rindex(" ")]
    return head.rstrip(" ,;:") + "..."


def _render_comments(groups: list[tuple[str, list[str]]]) -> str:
    return "; ".join(f"{emotion} [{' | '.join(texts)}]" for emotion, texts in groups if texts)


def format_comments(
    comments: Iterable[tuple[str, str]], ranking: list[str], budget: int = COMMENT_BUDGET_CHARS
) -> tuple[str, int]:
    """The Comments fact and how many comments it holds.

    ``comments`` are ``(emotion, text)`` pairs. Groups are ordered as the ranking, then the other targets,
    then ``other``; within a group the input order is kept. Comments are taken round-robin over the groups
    (each emotion's first comment before any second one), so every ranked emotion keeps evidence when the
    ``budget`` (characters of the rendered fact) cuts the list. Rendered as ``joy [c1 | c2]; surprise [c3]``;
    ``none`` when there are no comments. ``budget`` must be at least ``MIN_COMMENT_BUDGET``.
    """
    if budget < MIN_COMMENT_BUDGET:
        raise ValueError(f"comment budget {budget} is below the minimum of {MIN_COMMENT_BUDGET} characters")
    by_emotion: dict[str, list[str]] = {}
    for emotion, text in comments:
        by_emotion.setdefault(emotion, []).append(text)
    order = [e for e in ranking if e in by_emotion]
    order += [e for e in (*TARGETS, OTHER_GROUP) if e in by_emotion and e not in order]
    order += sorted(e for e in by_emotion if e not in order)
    queue = [(emotion, position) for position in range(max((len(v) for v in by_emotion.values()), default=0))
             for emotion in order if position < len(by_emotion[emotion])]
    groups: list[tuple[str, list[str]]] = [(emotion, []) for emotion in order]
    chosen = dict(groups)  # the same lists, by emotion
    used = 0
    for emotion, position in queue:
        text = by_emotion[emotion][position]
        chosen[emotion].append(text)
        if len(_render_comments(groups)) <= budget:
            used += 1
            continue
        chosen[emotion][-1] = ""  # what the comment costs besides its own characters (brackets, separators)
        room = budget - len(_render_comments(groups))
        chosen[emotion].pop()
        if room >= MIN_CUT_COMMENT_CHARS:
            chosen[emotion].append(_cut(text, room))
            used += 1
        break
    rendered = _render_comments(groups)
    return (rendered or NO_COMMENTS), used


def reasoning_items(
    descriptions: pl.DataFrame,
    mapped_labels: pl.DataFrame,
    annotations: pl.DataFrame,
    vad: pl.DataFrame | None = None,
    comment_budget: int = COMMENT_BUDGET_CHARS,
) -> list[WorkItem]:
    """One ``reason`` item per image with a description and a ranking, sorted by ``source, image_id``.

    ``descriptions`` is a generated_text frame (its ``describe`` rows are used; any frame with ``source,
    image_id, text`` works). ``annotations`` are raw_annotations rows (any sources): their comments become the
    Comments fact (``format_comments`` within ``comment_budget``); images without comments get ``none``.
    ``vad`` is optional: the reasoner prompt leaves VAD out (paper C.3), its levels are only recorded in the
    item context (``vad_levels``) for audit. Context for ``validate_reasoning``: ``ranking`` and every
    comment of the image (``comments``, uncut). Key: ``<source>/<image_id>/reason``.
    """
    template = load_template(REASON)
    described = texts_of(descriptions, DESCRIBE)
    rankings = rankings_of(mapped_labels)
    levels = levels_of(vad)
    comments: dict[Key, list[tuple[str, str]]] = {}
    for source, image_id, emotion, text in image_comments(annotations).iter_rows():
        comments.setdefault((source, image_id), []).append((emotion, text))
    items = []
    for key in sorted(set(described) & set(rankings)):
        source, image_id = key
        ranking = rankings[key]
        image_comment_list = comments.get(key, [])
        rendered, used = format_comments(image_comment_list, ranking, comment_budget)
        fields = {
            "ranking": ranking_text(ranking),
            "dominant": ranking[0],
            "description": quoted_text(described, key),
            "comments": rendered,
            "word_limit": template.word_limit,
        }
        context = {
            "source": source,
            "image_id": image_id,
            "ranking": ranking,
            "comments": [text for _, text in image_comment_list],
            "comments_used": used,
            "vad_levels": rated_only(levels.get(key)),
        }
        items.append(work_item(template, f"{source}/{image_id}/{REASON}", fields, context))
    return items
