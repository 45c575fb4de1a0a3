"""Stage 3: the descriptive-answer items (paper C.6) per image and per pair of images of one source, and the
reasoning-grounded multiple choice (paper 3.3)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import polars as pl

from eemo_pipeline.generation.stages.kinds import (
    ANSWER_KINDS,
    CHOICE_DISTRACTORS,
    DESCRIBE,
    LEVEL_KINDS,
    NO_REASONING,
    NOT_RATED,
    PAIR_KINDS,
    REASON,
    REASONING_CHOICE,
    SINGLE_KINDS,
    VERDICT_KINDS,
    Key,
    levels_of,
    one_line,
    quoted_text,
    ranking_text,
    rankings_of,
    rated_only,
    texts_of,
    work_item,
)
from eemo_pipeline.generation.templates import VAD_DIMENSIONS, Template, load_template, quoted
from eemo_pipeline.generation.work import WorkItem


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
    described = texts_of(descriptions, DESCRIBE)
    reasoned = texts_of(reasoning, REASON)
    rankings = rankings_of(mapped_labels)
    levels = {key: rated_only(value) for key, value in levels_of(vad).items()}
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
                "reasoning": quoted_text(reasoned, key, NO_REASONING),
                "ranking": ranking_text(ranking),
                "dominant": ranking[0],
                "description": quoted_text(described, key),
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
            items.append(work_item(template, f"{source}/{image_id}/{kind}", fields, context))
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
        reasoning = one_line(reasoned[(source, image_id)])
        fields = {"reasoning": quoted(reasoning), "ranking": ranking_text(ranking), "dominant": ranking[0],
                  "distractors": CHOICE_DISTRACTORS, "word_limit": template.word_limit}
        context = {"source": source, "image_id": image_id, "ranking": ranking, "reasoning": reasoning,
                   "verdict_required": False}
        items.append(work_item(template, f"{source}/{image_id}/{REASONING_CHOICE}", fields, context))
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
        "reasoning_a": quoted_text(reasoned, ka, NO_REASONING),
        "reasoning_b": quoted_text(reasoned, kb, NO_REASONING),
        "ranking_a": ranking_text(rankings[ka]),
        "ranking_b": ranking_text(rankings[kb]),
        "description_a": quoted_text(described, ka),
        "description_b": quoted_text(described, kb),
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
    return work_item(template, pair_key(source, a, b, kind), fields, context)
