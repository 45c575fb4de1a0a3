"""The generation stages as plain functions over polars frames: which images and pairs to send, the work
items (rendered prompts, cache payloads, the context ``validators.py`` checks answers against), and the
answers table.

No Dagster and no network here: a client sends the ``WorkItem`` lists and returns ``ChatAnswer`` objects,
which ``answers_frame`` turns into the ``generated_text`` table (``data_contracts/generated_text.yaml``).

Stages (paper 3.2, appendix C.3 and C.6):

1. ``describe`` (describer, vision model): a short description of each selected image
   (``DESCRIPTION_SELECTIONS``; by default the paper's rule: images with human comments, i.e. Affection's,
   whose ranking has distinct intensities) whose file decodes;
2. ``reason`` (reasoner, text model): one paragraph linking the description to the ranked emotions, with the
   image's human comments summarised (``none`` only under a selection that admits images without comments);
3. descriptive answers (reasoner): ``narrative``, ``causal``, ``evocation`` and ``reasoning_choice`` (multiple
   choice written strictly from the validated reasoning, paper 3.3) per image, ``pair_ranking`` and
   ``pair_dimension`` per pair of images of one source.

Every default the paper does not publish is a named constant below.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.generation.templates import VAD_DIMENSIONS, Template, load_template, quoted
from eemo_pipeline.generation.work import ChatAnswer, WorkItem
from eemo_pipeline.labels.taxonomy import TARGETS, mapping_table, taxonomy_of
from eemo_pipeline.sources.files import resolve_inside
from eemo_pipeline.vad.levels import vad_level_expr

# --- shared helpers -----------------------------------------------------------------------------------------

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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _ranking_text(ranking: Iterable[str]) -> str:
    return ", ".join(ranking)


def _texts(frame: pl.DataFrame | None, template: str) -> dict[Key, str]:
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


def _quoted_text(texts: Mapping[Key, str], key: Key, missing: str | None = None) -> str:
    """An earlier stage's answer for a later prompt, on one line and fenced as quoted data (``missing`` when
    there is none: a placeholder of ours, not model output, so it is not fenced)."""
    if key not in texts and missing is not None:
        return missing
    return quoted(_one_line(texts[key]))


def _rankings(mapped_labels: pl.DataFrame) -> dict[Key, list[str]]:
    rows = mapped_labels.filter(pl.col("ranking").is_not_null() & (pl.col("ranking").list.len() > 0))
    return {(s, i): list(r) for s, i, r in rows.select("source", "image_id", "ranking").iter_rows()}


def _levels(vad: pl.DataFrame | None) -> dict[Key, dict[str, str | None]]:
    """``(source, image_id) -> {dimension: level or None}``."""
    if vad is None or vad.is_empty():
        return {}
    rows = vad.select("source", "image_id", *(vad_level_expr(d).alias(d) for d in VAD_DIMENSIONS))
    return {(r["source"], r["image_id"]): {d: r[d] for d in VAD_DIMENSIONS} for r in rows.iter_rows(named=True)}


def _rated(levels: Mapping[str, str | None] | None) -> dict[str, str]:
    return {d: v for d, v in (levels or {}).items() if v is not None}


def _item(template: Template, key: str, fields: dict[str, Any], context: dict[str, Any]) -> WorkItem:
    messages = template.render(**fields)
    return WorkItem(
        key=key,
        messages=messages,
        template=template.name,
        template_version=template.version,
        cache_payload={"template": template.id, "messages": messages},
        context={"word_limit": template.word_limit, **context},
    )


# --- stage 1: descriptions ----------------------------------------------------------------------------------


def _sample_rank(seed: int, source: str, image_id: str) -> str:
    # A content hash rather than polars' hash: the sample must not change with the library version.
    return hashlib.sha256(f"{seed}\x1f{source}\x1f{image_id}".encode()).hexdigest()


# Which images get a description (and so reasoning and descriptive answers). The paper (3.2) describes only
# "samples with distinct emotion intensities" of Affection, whose expert comments ground every reason:
#   commented: a ranking with distinct intensities and at least one human comment (the paper's rule; only
#              Affection ships comments);
#   ranked:    every image with a ranking of distinct intensities, comments or not (reasoning then rests on
#              the description alone).
DESCRIPTION_SELECTIONS: tuple[str, ...] = ("commented", "ranked")
DEFAULT_DESCRIPTION_SELECTION = "commented"


def select_for_description(
    mapped_labels: pl.DataFrame,
    manifest: pl.DataFrame,
    limit: int | None = None,
    seed: int = 0,
    annotations: pl.DataFrame | None = None,
    selection: str = DEFAULT_DESCRIPTION_SELECTION,
) -> pl.DataFrame:
    """Images to describe: a non-null ranking (distinct intensities, paper 3.2), a decodable manifest row and,
    under ``selection`` ``commented`` (``DESCRIPTION_SELECTIONS``), at least one comment in ``annotations``
    (raw_annotations rows; None counts as no comments).

    Sorted by ``source, image_id``. With ``limit``, keeps the ``limit`` images whose sha256 of
    ``seed, source, image_id`` sorts first (a deterministic uniform sample over all sources, stable when
    rows are added or the polars version changes), still sorted by ``source, image_id``.
    Columns: ``source, image_id, image_path, sha256, ranking``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if selection not in DESCRIPTION_SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; one of {list(DESCRIPTION_SELECTIONS)}")
    ranked = mapped_labels.filter(pl.col("ranking").is_not_null() & (pl.col("ranking").list.len() > 0)).select(
        "source", "image_id", "ranking"
    )
    usable = manifest.filter(pl.col("decodable") & pl.col("image_path").is_not_null()).select(
        "source", "image_id", "image_path", "sha256"
    )
    selected = ranked.join(usable, on=["source", "image_id"], how="inner").select(
        "source", "image_id", "image_path", "sha256", "ranking"
    )
    if selection == "commented":
        commented = image_comments(annotations) if annotations is not None else None
        if commented is None or commented.is_empty():
            selected = selected.clear()
        else:
            selected = selected.join(commented.select("source", "image_id").unique(), on=["source", "image_id"],
                                     how="semi")
    if limit is not None and selected.height > limit:
        order = [_sample_rank(seed, s, i) for s, i in selected.select("source", "image_id").iter_rows()]
        selected = selected.with_columns(pl.Series("_order", order)).sort("_order").head(limit).drop("_order")
    return selected.sort("source", "image_id")


ImageLoader = Callable[[Path], tuple[str, str]]


def _root_of(root: Path | Mapping[str, Path], source: str, sources: set[str]) -> Path:
    if isinstance(root, Mapping):
        if source not in root:
            raise KeyError(f"no image root given for source {source!r} (roots for {sorted(root)})")
        return Path(root[source])
    if len(sources) > 1:
        raise ValueError(
            f"one root given for images of several sources {sorted(sources)}: pass a mapping source -> root"
        )
    return Path(root)


def description_items(
    selected: pl.DataFrame, root: Path | Mapping[str, Path], image_loader: ImageLoader
) -> list[WorkItem]:
    """One ``describe`` item per row of ``select_for_description``.

    ``root`` is the source root of the images (a single Path when ``selected`` holds one source, else a
    mapping source -> root); ``image_path`` is relative to it. ``image_loader(path)`` returns
    ``(data_url, content_sha256)`` of what is sent (``eemo_pipeline.generation.images.image_data_url``).
    The messages carry the data URL; the cache payload carries the same messages with the URL replaced by
    ``sha256:<content_sha256>`` (small, and stable for equal image content). Errors of the loader propagate.
    Key: ``<source>/<image_id>/describe``.
    """
    template = load_template(DESCRIBE)
    sources = set(selected["source"].unique().to_list()) if selected.height else set()
    items = []
    for row in selected.sort("source", "image_id").iter_rows(named=True):
        source, image_id = row["source"], row["image_id"]
        data_url, content_sha256 = image_loader(resolve_inside(_root_of(root, source, sources), row["image_path"], f"{source}/{image_id}"))
        fields = {"word_limit": template.word_limit}
        items.append(
            WorkItem(
                key=f"{source}/{image_id}/{DESCRIBE}",
                messages=template.render(image_data_url=data_url, **fields),
                template=template.name,
                template_version=template.version,
                cache_payload={
                    "template": template.id,
                    "messages": template.render(image_data_url=f"sha256:{content_sha256}", **fields),
                    "image_sha256": content_sha256,
                },
                context={
                    "source": source,
                    "image_id": image_id,
                    "image_path": row["image_path"],
                    "file_sha256": row["sha256"],
                    "image_sha256": content_sha256,
                    "ranking": list(row["ranking"] or []),
                    "word_limit": template.word_limit,
                },
            )
        )
    return items


# --- stage 2: reasoning -------------------------------------------------------------------------------------

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
    described = _texts(descriptions, DESCRIBE)
    rankings = _rankings(mapped_labels)
    levels = _levels(vad)
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
            "ranking": _ranking_text(ranking),
            "dominant": ranking[0],
            "description": _quoted_text(described, key),
            "comments": rendered,
            "word_limit": template.word_limit,
        }
        context = {
            "source": source,
            "image_id": image_id,
            "ranking": ranking,
            "comments": [text for _, text in image_comment_list],
            "comments_used": used,
            "vad_levels": _rated(levels.get(key)),
        }
        items.append(_item(template, f"{source}/{image_id}/{REASON}", fields, context))
    return items


# --- stage 3: descriptive answers ---------------------------------------------------------------------------


def deterministic_pairs(
    images: Mapping[str, str],
    count: int,
    seed: int,
    salt: str = "",
    compatible: Callable[[str, str], bool] | None = None,
) -> list[tuple[str, str]]:
    """Up to ``count`` disjoint pairs of images whose dominant emotions differ.

    ``images`` maps image id -> dominant emotion. Images are bucketed by dominant emotion and each bucket is
    shuffled with ``random.Random(f"{seed}/{salt}")`` (after sorting, so input order does not matter); each
    pair takes the next image of the two fullest buckets (ties broken by emotion name), which pairs as many
    images as possible; which one becomes image A is drawn from the same generator. A pair rejected by
    ``compatible(a, b)`` is dropped (its images are not reused). An image appears in at most one pair.
    """
    rng = random.Random(f"{seed}/{salt}")
    buckets: dict[str, list[str]] = {}
    for image_id in sorted(images):
        buckets.setdefault(images[image_id], []).append(image_id)
    for emotion in sorted(buckets):
        rng.shuffle(buckets[emotion])
    pairs: list[tuple[str, str]] = []
    while len(pairs) < count:
        fullest = sorted((e for e in buckets if buckets[e]), key=lambda e: (-len(buckets[e]), e))
        if len(fullest) < 2:
            break
        a, b = buckets[fullest[0]].pop(), buckets[fullest[1]].pop()
        if rng.random() < 0.5:
            a, b = b, a
        if compatible is None or compatible(a, b):
            pairs.append((a, b))
    return pairs


def pair_dimension_for(index: int, levels_a: Mapping[str, str], levels_b: Mapping[str, str]) -> str | None:
    """The dimension of the ``index``-th pair of a source: valence, arousal, dominance in turn (index mod 3),
    moving on in that cycle past a dimension either image lacks; None when they share none."""
    for step in range(len(VAD_DIMENSIONS)):
        dimension = VAD_DIMENSIONS[(index + step) % len(VAD_DIMENSIONS)]
        if dimension in levels_a and dimension in levels_b:
            return dimension
    return None


# Pairs per pair kind and source (not published; chosen with the QA defaults so that EEmoDB-QA at full scale has
# the paper's share of pair rows, see perf/subsets.py and docs/fidelity.md "Scale").
DEFAULT_PAIRS_PER_SOURCE = 15_020


def pair_key(source: str, image_a: str, image_b: str, kind: str) -> str:
    """Item key of a pair answer: ``<source>/<image A>|<image B>/<kind>``."""
    return f"{source}/{image_a}|{image_b}/{kind}"


def descriptive_items(
    descriptions: pl.DataFrame,
    reasoning: pl.DataFrame | None,
    mapped_labels: pl.DataFrame,
    vad: pl.DataFrame | None,
    pairs_per_source: int,
    seed: int,
    kinds: Iterable[str] = ANSWER_KINDS,
    categories: Mapping[Key, str] | None = None,
) -> list[WorkItem]:
    """Descriptive-answer items (paper C.6), singles first then pairs, each sorted by source and ids.

    Single kinds (``narrative``, ``causal``, ``evocation``): every image with a description and a ranking;
    ``narrative`` also needs at least one rated VAD dimension (unrated ones read ``not rated``). The image's
    reasoning answer, when there is one, is given as background notes (else ``none available``).

    ``reasoning_choice`` (paper 3.3, "candidate answers strictly grounded in validated reasoning texts"): every
    image with a description, a ranking and a reasoning answer (the reasoning frame holds only validated text;
    quarantined ones have no row); the context carries the reasoning for ``validate_reasoning_choice``.

    Pair kinds: per source and kind, ``deterministic_pairs(..., pairs_per_source, seed, salt=f"{source}/{kind}")``
    over the images with a description, a ranking and at least one rated dimension. Constraint: both images
    come from the same source (same annotation protocol and VAD scale) and their dominant emotions (ranking
    heads) differ, so a comparison has something to explain; the two images must share a rated dimension and
    their content category (``categories``: ``(source, image_id) -> category`` of
    ``sources.categories.content_categories``; an image missing from it has the empty category).
    ``pair_dimension`` takes the dimension of ``pair_dimension_for`` (valence, arousal, dominance in turn).
    Keys: ``<source>/<image_id>/<kind>`` and ``pair_key``.
    """
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(ANSWER_KINDS))
    if unknown:
        raise ValueError(f"unknown descriptive kinds {unknown}; known: {list(ANSWER_KINDS)}")
    if pairs_per_source < 0:
        raise ValueError(f"pairs_per_source must be >= 0, got {pairs_per_source}")
    described = _texts(descriptions, DESCRIBE)
    reasoned = _texts(reasoning, REASON)
    rankings = _rankings(mapped_labels)
    levels = {key: _rated(value) for key, value in _levels(vad).items()}
    eligible = sorted(set(described) & set(rankings))
    items: list[WorkItem] = []

    for kind in (k for k in SINGLE_KINDS if k in kinds):
        template = load_template(kind)
        for key in eligible:
            source, image_id = key
            rated = levels.get(key, {})
            if kind in LEVEL_KINDS and not rated:
                continue
            ranking = rankings[key]
            fields: dict[str, Any] = {
                "reasoning": _quoted_text(reasoned, key, NO_REASONING),
                "ranking": _ranking_text(ranking),
                "dominant": ranking[0],
                "description": _quoted_text(described, key),
                "word_limit": template.word_limit,
            }
            if kind in LEVEL_KINDS:
                fields |= {f"{d}_level": rated.get(d, NOT_RATED) for d in VAD_DIMENSIONS}
            context = {
                "source": source,
                "image_id": image_id,
                "ranking": ranking,
                "emotions": ranking,
                "levels": sorted(rated.items()) if kind in LEVEL_KINDS else [],
                "verdict_required": kind in VERDICT_KINDS,
            }
            items.append(_item(template, f"{source}/{image_id}/{kind}", fields, context))
    if REASONING_CHOICE in kinds:
        items += _choice_items([key for key in eligible if key in reasoned], reasoned, rankings)

    by_source: dict[str, dict[str, str]] = {}
    for source, image_id in eligible:
        if levels.get((source, image_id)):
            by_source.setdefault(source, {})[image_id] = rankings[(source, image_id)][0]
    for kind in (k for k in PAIR_KINDS if k in kinds):
        template = load_template(kind)
        for source in sorted(by_source):

            def shares_dimension(a: str, b: str, source: str = source) -> bool:
                return bool(set(levels[(source, a)]) & set(levels[(source, b)]))

            # Pairs within each content category, taken from the categories in turn (sorted by name).
            by_category: dict[str, dict[str, str]] = {}
            for image_id, dominant in by_source[source].items():
                by_category.setdefault((categories or {}).get((source, image_id), ""), {})[image_id] = dominant
            per_category = [
                deterministic_pairs(images, pairs_per_source, seed, salt=f"{source}/{category + '/' if category else ''}"
                                    f"{kind}", compatible=shares_dimension)
                for category, images in sorted(by_category.items())
            ]
            pairs = [p for turn in itertools.zip_longest(*per_category) for p in turn if p][:pairs_per_source]
            for index, (a, b) in enumerate(pairs):
                items.append(_pair_item(template, kind, index, source, a, b, described, reasoned, rankings, levels))
    return items


def _choice_items(keys: list[Key], reasoned: dict[Key, str], rankings: dict[Key, list[str]]) -> list[WorkItem]:
    template = load_template(REASONING_CHOICE)
    items = []
    for source, image_id in keys:
        ranking = rankings[(source, image_id)]
        reasoning = _one_line(reasoned[(source, image_id)])
        fields = {"reasoning": quoted(reasoning), "ranking": _ranking_text(ranking), "dominant": ranking[0],
                  "distractors": CHOICE_DISTRACTORS, "word_limit": template.word_limit}
        context = {"source": source, "image_id": image_id, "ranking": ranking, "reasoning": reasoning,
                   "verdict_required": False}
        items.append(_item(template, f"{source}/{image_id}/{REASONING_CHOICE}", fields, context))
    return items


def _pair_item(
    template: Template,
    kind: str,
    index: int,
    source: str,
    a: str,
    b: str,
    described: dict[Key, str],
    reasoned: dict[Key, str],
    rankings: dict[Key, list[str]],
    levels: dict[Key, dict[str, str]],
) -> WorkItem:
    ka, kb = (source, a), (source, b)
    la, lb = levels[ka], levels[kb]
    fields: dict[str, Any] = {
        "reasoning_a": _quoted_text(reasoned, ka, NO_REASONING),
        "reasoning_b": _quoted_text(reasoned, kb, NO_REASONING),
        "ranking_a": _ranking_text(rankings[ka]),
        "ranking_b": _ranking_text(rankings[kb]),
        "description_a": _quoted_text(described, ka),
        "description_b": _quoted_text(described, kb),
        "word_limit": template.word_limit,
    }
    context: dict[str, Any] = {
        "source": source,
        "image_id": a,
        "image_id_b": b,
        "ranking": rankings[ka],
        "ranking_b": rankings[kb],
        "verdict_required": False,
    }
    if kind == "pair_ranking":
        for dimension in VAD_DIMENSIONS:
            fields[f"{dimension}_level_a"] = la.get(dimension, NOT_RATED)
            fields[f"{dimension}_level_b"] = lb.get(dimension, NOT_RATED)
        shared = [d for d in VAD_DIMENSIONS if d in la and d in lb]
        context["emotions"] = list(dict.fromkeys([*rankings[ka], *rankings[kb]]))
        context["levels"] = sorted({(d, la[d]) for d in shared} | {(d, lb[d]) for d in shared})
    else:
        dimension = pair_dimension_for(index, la, lb)
        if dimension is None:  # deterministic_pairs only keeps pairs sharing a dimension
            raise ValueError(f"pair {a!r} / {b!r} of {source!r} shares no rated dimension")
        fields |= {"dimension": dimension, "level_a": la[dimension], "level_b": lb[dimension]}
        context["dimension"] = dimension
        context["emotions"] = []
        context["levels"] = sorted({(dimension, la[dimension]), (dimension, lb[dimension])})
    return _item(template, pair_key(source, a, b, kind), fields, context)


# --- output ---------------------------------------------------------------------------------------------------


def answers_frame(
    items: list[WorkItem], answers: Mapping[str, ChatAnswer], quarantined_keys: Iterable[str] = ()
) -> pl.DataFrame:
    """The ``generated_text`` rows (``data_contracts/generated_text.yaml``) of one stage, in item order.

    Quarantined items get no row. Every other item must have an answer: a missing one raises ValueError
    (a stage that lost answers should fail, not shrink silently). Answers for keys outside ``items`` are
    ignored.
    """
    quarantined = set(quarantined_keys)
    missing = [item.key for item in items if item.key not in quarantined and item.key not in answers]
    if missing:
        raise ValueError(f"{len(missing)} items have neither an answer nor a quarantine record, e.g. {missing[:3]}")
    rows = []
    for item in items:
        if item.key in quarantined:
            continue
        answer = answers[item.key]
        rows.append(
            {
                "key": item.key,
                "source": item.context.get("source"),
                "image_id": item.context.get("image_id"),
                "image_id_b": item.context.get("image_id_b"),
                "template": item.template,
                "template_version": item.template_version,
                "dimension": item.context.get("dimension"),
                "text": answer.text,
                "model": answer.model,
                "cached": answer.cached,
                "attempts": answer.attempts,
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            }
        )
    contract = table_contract("generated_text")
    if not rows:
        return contract.empty()
    return contract.conform(pl.DataFrame(rows, schema=contract.schema))


def generated_text_violations(frame: pl.DataFrame) -> list[str]:
    """Contract problems of a generated_text frame: schema, nulls, duplicate keys, pair columns consistent."""
    contract = table_contract("generated_text")
    problems = contract.violations(frame)
    if problems or frame.is_empty():
        return problems
    is_pair = pl.col("template").is_in(list(PAIR_KINDS))
    bad_b = frame.filter(is_pair != pl.col("image_id_b").is_not_null()).height
    bad_dimension = frame.filter((pl.col("template") == "pair_dimension") != pl.col("dimension").is_not_null()).height
    if bad_b:
        problems.append(f"{bad_b} rows have image_id_b set for a single-image template or missing for a pair")
    if bad_dimension:
        problems.append(f"{bad_dimension} rows have dimension set outside pair_dimension or missing in it")
    return problems
