"""EEmoDB-QA rows built from generated text: visual attribution (from the reasoning), the reasoning-grounded
multiple choice (``reasoning_choice`` answers) and the description rows (``descriptive_answers``).

All of it exists only for images with a description and validated reasoning: by default Affection's images
with comments (generation/stages/describe.py ``DESCRIPTION_SELECTIONS``).
"""

from __future__ import annotations

import re

import polars as pl

from eemo_pipeline.frames import U64, decision_key, seed_salt, splitmix64
from eemo_pipeline.labels.vocabulary import choice_options, missing_emotions
from eemo_pipeline.subsets.qa_rows import (
    ROW_SCHEMA,
    Templates,
    choice_question,
    fill,
    instruction_rows,
    shuffled_options,
    with_templates,
    word,
)

VAD_DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")
DESCRIPTION_KINDS: tuple[str, ...] = ("narrative", "causal", "evocation", "pair_ranking", "pair_dimension")
PAIR_DESCRIPTION_KINDS: tuple[str, ...] = ("pair_ranking", "pair_dimension")
REASONING_CHOICE = "reasoning_choice"
ATTRIBUTION_SENTENCES = 2  # reasoning sentences that make a visual_attribution answer
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A causal link (the reasoner is told to connect cues and feelings this way): such sentences name the causes.
CAUSAL_LINK = re.compile(r"\b(?:because|since|so|which is why|as a result|drawn by|thanks to|due to)\b", re.IGNORECASE)


def _attribution_answer(reasoning: str, emotion: str) -> str | None:
    """Up to ``ATTRIBUTION_SENTENCES`` sentences of the reasoning that name ``emotion``, those with a
    ``CAUSAL_LINK`` first (where the reasoner ties the description's visual elements to it), in text order;
    None when no sentence names it."""
    sentences = [s for s in _SENTENCE_END.split(" ".join(reasoning.split())) if not missing_emotions(s, [emotion])]
    causal = [s for s in sentences if CAUSAL_LINK.search(s)]
    chosen = set((causal + [s for s in sentences if s not in causal])[:ATTRIBUTION_SENTENCES])
    return " ".join(s for s in sentences if s in chosen) or None


def attribution(labels: pl.DataFrame, reasoning: pl.DataFrame, templates: Templates, per_image: int) -> pl.DataFrame:
    """``visual_attribution``: which visual elements evoke the image's dominant emotion; the open answer is the
    reasoning's sentences on that emotion (the reasoning links the description's elements to each emotion)."""
    if not per_image or reasoning.is_empty():
        return pl.DataFrame(schema=ROW_SCHEMA)
    texts = reasoning.filter(pl.col("template") == "reason").select("source", "image_id", "text", "key", "model",
                                                                    "template_version")
    images = labels.filter(pl.col("dominant_emotion").is_not_null()).select("source", "image_id", "_h",
                                                                          "dominant_emotion")
    rows = images.join(texts, on=["source", "image_id"], how="inner")
    if rows.is_empty():
        return pl.DataFrame(schema=ROW_SCHEMA)
    answers = [_attribution_answer(t, e) for t, e in rows.select("text", "dominant_emotion").iter_rows()]
    rows = rows.with_columns(pl.Series("answer", answers, dtype=pl.String)).filter(pl.col("answer").is_not_null())
    rows = with_templates(rows.with_columns(decision_key("_h", "va/template").alias("_k")), templates,
                          "visual_attribution", "_k", "dominant_emotion")
    question = fill(pl.col("_text"), emotion=word("dominant_emotion", templates.document["emotion_words"]))
    return instruction_rows(rows.with_columns(question.alias("question"), pl.col("image_id").alias("id_a"),
                                              pl.col("key").alias("gen_key"), pl.col("model").alias("gen_model"),
                                              pl.col("template_version").alias("gen_version")),
                            "perception", "visual_attribution")


def reasoning_choice(answers: pl.DataFrame, keys: pl.DataFrame, templates: Templates) -> pl.DataFrame:
    """``reasoning_choice``: the validated candidates (one correct option, distractors) of each answer, shown
    in a deterministic order; the answer is the correct option's letter. Answers that do not parse into exactly
    one correct option and at least one distractor are skipped (the validator already quarantined them)."""
    part = answers.filter((pl.col("template") == REASONING_CHOICE) & pl.col("image_id_b").is_null())
    part = part.join(keys, on=["source", "image_id"], how="inner")
    if part.is_empty():
        return pl.DataFrame(schema=ROW_SCHEMA)
    long = []
    for key, text in part.select("key", "text").iter_rows():
        correct, distractors, other = choice_options(text)
        if len(correct) != 1 or not distractors or other:
            continue
        long += [(key, option, index == 0, seed_salt(f"rc/order/{option}"))
                 for index, option in enumerate(correct + distractors)]
    if not long:
        return pl.DataFrame(schema=ROW_SCHEMA)
    schema = {"key": pl.String, "_option": pl.String, "correct": pl.Boolean, "_salt": U64}
    options = pl.DataFrame(long, schema=schema, orient="row").join(part.select("key", "_h"), on="key")
    options = options.with_columns(splitmix64(pl.col("_h").xor(pl.col("_salt"))).alias("_order"))
    shown = shuffled_options(options, "key", "_option", "correct", "_order")
    count = shown.with_columns(pl.col("options").list.len().alias("_n")).select("key", "_n")
    rows = part.join(shown, on="key").join(count, on="key").with_columns(decision_key("_h", "rc/template").alias("_k"))
    rows = with_templates(rows, templates, REASONING_CHOICE, "_k", "answer")
    frames = []
    for n in sorted(set(rows["_n"].to_list())):
        group = rows.filter(pl.col("_n") == n)
        question = choice_question(pl.col("_text"), "options", n, templates.document["instructions"]["choice"])
        frames.append(instruction_rows(
            group.with_columns(question.alias("question"), pl.col("image_id").alias("id_a"),
                               pl.col("key").alias("gen_key"), pl.col("model").alias("gen_model"),
                               pl.col("template_version").alias("gen_version")),
            "perception", REASONING_CHOICE))
    return pl.concat(frames)


def descriptions(answers: pl.DataFrame, usable: pl.DataFrame, keys: pl.DataFrame, templates: Templates) -> pl.DataFrame:
    """One ``description`` row per descriptive answer of ``DESCRIPTION_KINDS`` whose images are usable."""
    answers = answers.filter(pl.col("template").is_in(DESCRIPTION_KINDS))
    is_pair = pl.col("template").is_in(PAIR_DESCRIPTION_KINDS)
    answers = answers.filter(is_pair == pl.col("image_id_b").is_not_null())
    answers = answers.filter((pl.col("template") == "pair_dimension") == pl.col("dimension").is_in(VAD_DIMENSIONS).fill_null(False))
    answers = answers.join(usable, on=["source", "image_id"], how="semi")
    pairs = answers.filter(pl.col("image_id_b").is_not_null()).join(
        usable.rename({"image_id": "image_id_b"}), on=["source", "image_id_b"], how="semi"
    )
    answers = pl.concat([answers.filter(pl.col("image_id_b").is_null()), pairs])
    answers = answers.join(keys, on=["source", "image_id"], how="left")
    frames = []
    for kind in DESCRIPTION_KINDS:
        part = answers.filter(pl.col("template") == kind)
        if part.is_empty():
            continue
        # Order by the image key, then the generation key (several pairs may share image A).
        part = part.sort("_h", "key").with_columns(pl.int_range(pl.len()).cast(U64).alias("_k"))
        part = with_templates(part, templates, kind, "_k", *(["dimension"] if kind == "pair_dimension" else []))
        text = fill(pl.col("_text"), dimension=word("dimension", templates.document["dimension_words"])) \
            if kind == "pair_dimension" else pl.col("_text")
        frames.append(
            instruction_rows(part.with_columns(text.alias("question"), pl.col("text").alias("answer"),
                                               pl.col("image_id").alias("id_a"), pl.col("image_id_b").alias("id_b"),
                                               pl.col("key").alias("gen_key"), pl.col("model").alias("gen_model"),
                                               pl.col("template_version").alias("gen_version")),
                             "description", kind)
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema=ROW_SCHEMA)
