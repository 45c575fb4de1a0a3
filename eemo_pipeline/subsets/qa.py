"""EEmoDB-QA (paper 3.3, appendix C.4): perception, ranking and description instructions over the refined labels.

``build_qa`` turns the concatenated per-source tables (``mapped_labels``, ``vad_scores``, ``image_manifest``,
``descriptive_answers``, ``emotion_reasoning``, and the content categories of ``sources/categories.py``) into the ``eemodb_qa`` table (``data_contracts/eemodb_qa.yaml``), one row per
instruction, sorted by ``row_id``.

Tasks and sub-tasks:

* ``perception``, single image:
  ``emotion_verification`` (yes/no: is an emotion evoked? yes = the dominant emotion or a ranked one with
  probability > 0, no = an emotion of probability 0; equal yes and no counts per target emotion),
  ``comparative_identification`` (four options: the dominant emotion and three distractors of strictly lower
  probability, the image's other ranked emotions first; answer = the letter of the dominant one),
  ``visual_attribution`` (open: which visual elements evoke the dominant emotion? answer = the sentences of
  the image's validated reasoning on that emotion, which tie it to the description's elements),
  ``reasoning_choice`` (multiple choice whose correct option and distractors the reasoner wrote strictly from
  the validated reasoning: descriptive_answers rows of that template; answer = the correct option's letter);
  pairs of images of one source and one content category (``sources.yaml`` ``qa.pair_category``):
  ``consistency_verification`` (yes/no: do both images evoke mainly an emotion? per source half the pairs
  share the dominant emotion (yes), half do not (no: the emotion asked is one image's dominant)),
  ``comparative_assessment`` (options "The first image" / "The second image": which one is higher on a VAD
  dimension; only pairs whose values differ by at least ``QAConfig.comparative_margin``; the higher image
  comes first in every other pair, so A and B answers are balanced).
* ``ranking``: ``emotion_ranking``, answer "a, b, c" from the ranking (open answer: options null); only sources
  declaring ``qa.rankings`` (distributions or several annotators per image; not FindingEmo's single labels).
* ``description``: one row per ``descriptive_answers`` row (sub_task = its template: narrative, causal,
  evocation, pair_ranking, pair_dimension); the answer is the generated text.

Yes/no, ranking, visual attribution and description rows have null ``options``; multiple-choice rows list their options in the
order shown, rendered into the question as lines ``A. ...`` followed by the answer instruction.

Determinism: nothing is random. Every choice (which images, which pairs, which distractors, option order,
which phrasing) is ranked by a 64-bit key: the sha256 of ``seed, source, image_id`` per image, mixed with
a salt per decision by splitmix64 in polars integer arithmetic (so the keys do not depend on the polars
version). Phrasings are assigned round-robin in that key order within each label group. Same inputs and
seed give the same rows; the output is sorted by ``row_id`` (so the Parquet bytes are identical).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from eemo_pipeline.contracts import source_declarations, table_contract
from eemo_pipeline.frames import U64, decision_key, image_keys, pair_key, seed_salt, splitmix64
from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.sources.categories import with_categories
from eemo_pipeline.subsets.provenance import source_inputs
from eemo_pipeline.subsets.qa_grounded import VAD_DIMENSIONS, attribution, descriptions, reasoning_choice
from eemo_pipeline.subsets.qa_rows import (
    ROW_COLUMNS,
    ROW_SCHEMA,
    Templates,
    choice_question,
    fill,
    instruction_rows,
    load_templates,
    rank,
    shuffled_options,
    with_templates,
    word,
)
from eemo_pipeline.vad.levels import vad_level_expr

QA_CODE_VERSION = "2"  # bump when a change of this module changes which rows or answers come out
IDENTIFICATION_OPTIONS = 4  # the dominant emotion plus three distractors (paper: multiple choice, count not given)

# Defaults the paper does not publish (it gives only the totals: ~1.2M instructions over ~122k images).
DEFAULT_VERIFICATION_YES_PER_IMAGE = 1  # yes candidates drawn per image (its ranked emotions)
DEFAULT_VERIFICATION_NO_PER_IMAGE = 1  # no candidates drawn per image (its probability-0 emotions)
DEFAULT_YES_SHARE = 0.5  # share of yes answers per target emotion (verification)
# Share of eligible images (per source, in key order) asked comparative_identification: with the other defaults
# it gives the paper's count of single-image rows at full scale (perf/subsets.py, docs/fidelity.md "Scale").
DEFAULT_IDENTIFICATION_SHARE = 0.635
DEFAULT_ATTRIBUTION_PER_IMAGE = 1  # visual_attribution questions per image with reasoning (0 or 1)
DEFAULT_CONSISTENCY_ROUNDS = 2  # pairing rounds per source (each round pairs every image at most once)
DEFAULT_SAME_SHARE = 0.5  # share of consistency pairs sharing the dominant emotion
DEFAULT_COMPARATIVE_MARGIN = 0.15  # minimum |difference| on the 0-1 scale for a comparative pair
DEFAULT_COMPARATIVE_ROUNDS = 1  # pairing rounds per source and dimension
DEFAULT_PAIRS_PER_SOURCE: int | None = None  # cap per source and pair sub_task (None: as many as the rounds give)


@dataclass(frozen=True)
class QAConfig:
    """Every tunable of ``build_qa``; the defaults are the module's ``DEFAULT_*`` constants.

    verification_yes_per_image / verification_no_per_image: candidates drawn per image before the per-emotion
    balance; yes_share: share of yes answers per emotion (0.5: equal counts); identification_share: share of
    the eligible images of each source asked comparative_identification (0-1); attribution_per_image: visual_attribution questions per image with reasoning, 0 or 1; consistency_rounds / comparative_rounds:
    pairing rounds per source; same_share: share of consistency pairs sharing the dominant emotion;
    comparative_margin: minimum difference of a comparative pair; pairs_per_source: cap of pairs per source
    and pair sub_task (per dimension for comparative); ranking / descriptions / reasoning_choice: include those
    sub-tasks.
    """

    verification_yes_per_image: int = DEFAULT_VERIFICATION_YES_PER_IMAGE
    verification_no_per_image: int = DEFAULT_VERIFICATION_NO_PER_IMAGE
    yes_share: float = DEFAULT_YES_SHARE
    identification_share: float = DEFAULT_IDENTIFICATION_SHARE
    attribution_per_image: int = DEFAULT_ATTRIBUTION_PER_IMAGE
    consistency_rounds: int = DEFAULT_CONSISTENCY_ROUNDS
    same_share: float = DEFAULT_SAME_SHARE
    comparative_margin: float = DEFAULT_COMPARATIVE_MARGIN
    comparative_rounds: int = DEFAULT_COMPARATIVE_ROUNDS
    pairs_per_source: int | None = DEFAULT_PAIRS_PER_SOURCE
    ranking: bool = True
    descriptions: bool = True
    reasoning_choice: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.yes_share < 1 or not 0 < self.same_share < 1:
            raise ValueError("yes_share and same_share must lie strictly between 0 and 1")
        if not 0 <= self.identification_share <= 1:
            raise ValueError("identification_share must lie in 0..1")
        if self.attribution_per_image not in (0, 1):
            raise ValueError("attribution_per_image must be 0 or 1")
        if self.comparative_margin < 0:
            raise ValueError("comparative_margin must be >= 0")
        counts = (self.verification_yes_per_image, self.verification_no_per_image, self.consistency_rounds,
                  self.comparative_rounds, self.pairs_per_source or 0)
        if min(counts) < 0:
            raise ValueError("counts must be >= 0")


def qa_ranking_sources() -> list[str]:
    """Sources whose ``qa.rankings`` is true in sources.yaml (distributions or several annotators per image,
    paper C.5); FindingEmo's single label per image gives no ranking."""
    return [name for name, facts in source_declarations().items() if facts.qa_rankings]


# --- perception: single image -------------------------------------------------------------------------------


def _long_probabilities(labels: pl.DataFrame) -> pl.DataFrame:
    """``source, image_id, _h, emotion, p, ranked`` (ranked: dominant or in the ranking)."""
    long = labels.unpivot(
        index=["source", "image_id", "_h", "dominant_emotion", "ranking"], on=[f"p_{t}" for t in TARGETS],
        variable_name="emotion", value_name="p",
    ).with_columns(pl.col("emotion").str.strip_prefix("p_"))
    ranked = (pl.col("emotion") == pl.col("dominant_emotion")).fill_null(False) | pl.col("ranking").list.contains(
        pl.col("emotion")
    ).fill_null(False)
    return long.with_columns(ranked.alias("ranked"))


def _verification(long: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    yes = long.filter(pl.col("ranked") & (pl.col("p") > 0))
    no = long.filter(pl.col("p") == 0)
    # A key per (image, emotion): the emotion's salt mixed into the image key.
    salts = {t: seed_salt(f"ev/{t}") for t in TARGETS}
    emotion_salt = pl.col("emotion").replace_strict(salts, return_dtype=U64)
    draw = splitmix64(pl.col("_h").xor(emotion_salt))
    yes = yes.with_columns(draw.alias("_k0")).filter(rank("_k0", "source", "image_id") < config.verification_yes_per_image)
    no = no.with_columns(draw.alias("_k0")).filter(rank("_k0", "source", "image_id") < config.verification_no_per_image)
    counts_yes = dict(yes.group_by("emotion").len().iter_rows())
    counts_no = dict(no.group_by("emotion").len().iter_rows())
    odds = config.yes_share / (1 - config.yes_share)
    keep_yes, keep_no = {}, {}
    for emotion in TARGETS:
        n_yes = min(counts_yes.get(emotion, 0), int(counts_no.get(emotion, 0) * odds + 1e-9))
        keep_yes[emotion] = n_yes
        keep_no[emotion] = min(counts_no.get(emotion, 0), int(n_yes / odds + 1e-9))
    chosen = pl.concat(
        [
            frame.with_columns(splitmix64(pl.col("_k0").xor(pl.lit(seed_salt("ev/select"), U64))).alias("_k"))
            .filter(rank("_k", "emotion") < pl.col("emotion").replace_strict(keep, return_dtype=pl.Int64))
            .with_columns(pl.lit(answer).alias("answer"))
            for frame, keep, answer in ((yes, keep_yes, "yes"), (no, keep_no, "no"))
        ]
    )
    chosen = with_templates(chosen, templates, "emotion_verification", "_k", "emotion", "answer")
    words = templates.document["emotion_words"]
    question = pl.concat_str(
        [fill(pl.col("_text"), emotion=word("emotion", words)), pl.lit("\n" + templates.document["instructions"]["yes_no"])]
    )
    return instruction_rows(chosen.with_columns(question.alias("question"), pl.col("image_id").alias("id_a")),
                 "perception", "emotion_verification")


def _identification(long: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    if not config.identification_share:
        return pl.DataFrame(schema=ROW_SCHEMA)
    with_dominant = long.filter(pl.col("dominant_emotion").is_not_null())
    top = with_dominant.filter(pl.col("emotion") == pl.col("dominant_emotion")).select(
        "source", "image_id", pl.col("p").alias("_p_top")
    )
    salts = {t: seed_salt(f"ci/{t}") for t in TARGETS}
    emotion_key = splitmix64(pl.col("_h").xor(pl.col("emotion").replace_strict(salts, return_dtype=U64)))
    candidates = with_dominant.join(top, on=["source", "image_id"]).with_columns(emotion_key.alias("_ke"))
    # Distractors: strictly less probable than the dominant emotion; the image's ranked emotions first.
    distractors = (
        candidates.filter((pl.col("emotion") != pl.col("dominant_emotion")) & (pl.col("p") < pl.col("_p_top")))
        .with_columns((~pl.col("ranked")).cast(pl.UInt64).alias("_unranked"))
        .sort("source", "image_id", "_unranked", "_ke")
        .with_columns(pl.int_range(pl.len()).over("source", "image_id").alias("_n"))
        .filter(pl.col("_n") < IDENTIFICATION_OPTIONS - 1)
    )
    enough = distractors.group_by("source", "image_id").len().filter(pl.col("len") == IDENTIFICATION_OPTIONS - 1)
    options = pl.concat(
        [
            candidates.filter(pl.col("emotion") == pl.col("dominant_emotion")).select(
                "source", "image_id", "_h", "emotion", "_ke", pl.lit(True).alias("correct")
            ),
            distractors.select("source", "image_id", "_h", "emotion", "_ke", pl.lit(False).alias("correct")),
        ]
    ).join(enough.select("source", "image_id"), on=["source", "image_id"], how="semi")
    options = options.with_columns(
        splitmix64(pl.col("_ke").xor(pl.lit(seed_salt("ci/order"), U64))).alias("_order"),
        pl.concat_str("source", pl.lit("\x1f"), "image_id").alias("_qid"),
    )
    shown = shuffled_options(options, "_qid", "emotion", "correct", "_order")
    questions = (
        options.filter("correct")
        .select("_qid", "source", "image_id", "_h", pl.col("emotion").alias("_dominant"))
        .join(shown, on="_qid")
        .with_columns(decision_key("_h", "ci/template").alias("_k"))
    )
    asked = (pl.len().over("source") * config.identification_share + 1e-9).floor().cast(pl.Int64)
    questions = questions.filter(rank("_k", "source") < asked)
    questions = with_templates(questions, templates, "comparative_identification", "_k", "_dominant")
    question = choice_question(pl.col("_text"), "options", IDENTIFICATION_OPTIONS,
                                templates.document["instructions"]["choice"])
    return instruction_rows(questions.with_columns(question.alias("question"), pl.col("image_id").alias("id_a")),
                 "perception", "comparative_identification")


def _long_vad(vad: pl.DataFrame) -> pl.DataFrame:
    """``source, image_id, _h, _category, dimension, value, level`` for every rated (non-null, non-NaN) value."""
    return (
        vad.unpivot(index=["source", "image_id", "_h", "_category"], on=list(VAD_DIMENSIONS), variable_name="dimension",
                    value_name="value")
        .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
        .with_columns(vad_level_expr("value").alias("level"))
    )


def _ranking(labels: pl.DataFrame, templates: Templates) -> pl.DataFrame:
    declared = pl.col("source").is_in(qa_ranking_sources())
    ranked = labels.filter(declared & pl.col("ranking").is_not_null() & (pl.col("ranking").list.len() > 0)).with_columns(
        decision_key("_h", "er/template").alias("_k"), pl.col("ranking").list.join(", ").alias("answer")
    )
    ranked = with_templates(ranked, templates, "emotion_ranking", "_k")
    return instruction_rows(ranked.with_columns(pl.col("_text").alias("question"), pl.col("image_id").alias("id_a")),
                 "ranking", "emotion_ranking")


# --- perception: pairs --------------------------------------------------------------------------------------


def _consecutive_pairs(images: pl.DataFrame, key: str, *groups: str) -> pl.DataFrame:
    """Images ordered by ``key`` within ``groups`` paired 1st-2nd, 3rd-4th, ...; columns get ``_a`` / ``_b``."""
    ordered = images.with_columns(rank(key, *groups).alias("_r"))
    ordered = ordered.with_columns((pl.col("_r") // 2).alias("_pair"), (pl.col("_r") % 2).alias("_slot"))
    keys = [*groups, "_pair"]
    first = ordered.filter(pl.col("_slot") == 0).drop("_slot", "_r")
    second = ordered.filter(pl.col("_slot") == 1).drop("_slot", "_r")
    other = [c for c in first.columns if c not in keys]
    return first.rename({c: f"{c}_a" for c in other}).join(
        second.rename({c: f"{c}_b" for c in other}), on=keys, how="inner"
    )


def _unique_pairs(pairs: pl.DataFrame, *groups: str) -> pl.DataFrame:
    """Drop pairs repeated across rounds (either order), keeping the first round's."""
    low = pl.min_horizontal("image_id_a", "image_id_b")
    high = pl.max_horizontal("image_id_a", "image_id_b")
    return (
        pairs.with_columns(low.alias("_lo"), high.alias("_hi"))
        .sort("_round", "source", "image_id_a", "image_id_b")
        .unique(subset=[*groups, "source", "_lo", "_hi"], keep="first", maintain_order=True)
        .drop("_lo", "_hi")
    )


def _cap_per_source(pairs: pl.DataFrame, key: str, cap: pl.Expr | int | None, *groups: str) -> pl.DataFrame:
    if cap is None:
        return pairs
    return pairs.filter(rank(key, "source", *groups) < cap)


def _consistency(labels: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    images = labels.filter(pl.col("dominant_emotion").is_not_null()).select("source", "image_id", "_h", "_category",
                                                                          "dominant_emotion")
    if not config.consistency_rounds or images.is_empty():
        return pl.DataFrame(schema=ROW_SCHEMA)
    same, different = [], []
    for round_ in range(config.consistency_rounds):
        keyed = images.with_columns(decision_key("_h", f"cv/same/{round_}").alias("_ks"), decision_key("_h", f"cv/diff/{round_}").alias("_kd"))
        # Pairs never cross a content category (paper 3.3: content and label constraints).
        s = _consecutive_pairs(keyed.drop("_kd"), "_ks", "source", "_category", "dominant_emotion").with_columns(
            pl.col("dominant_emotion").alias("dominant_emotion_a"), pl.col("dominant_emotion").alias("dominant_emotion_b")
        )
        d = _consecutive_pairs(keyed.drop("_ks"), "_kd", "source", "_category").filter(
            pl.col("dominant_emotion_a") != pl.col("dominant_emotion_b")
        )
        cols = ["source", "image_id_a", "image_id_b", "_h_a", "_h_b", "dominant_emotion_a", "dominant_emotion_b"]
        same.append(s.select(cols).with_columns(pl.lit(round_).alias("_round")))
        different.append(d.select(cols).with_columns(pl.lit(round_).alias("_round")))
    same_pairs = _unique_pairs(pl.concat(same)).with_columns(pair_key("_h_a", "_h_b", "cv/pick").alias("_k"))
    diff_pairs = _unique_pairs(pl.concat(different)).with_columns(pair_key("_h_a", "_h_b", "cv/pick").alias("_k"))
    # Per source: same_share of the pairs share the dominant emotion (as many as both kinds allow).
    n_same = same_pairs.group_by("source").len().rename({"len": "_ns"})
    n_diff = diff_pairs.group_by("source").len().rename({"len": "_nd"})
    odds = config.same_share / (1 - config.same_share)
    quota = n_same.join(n_diff, on="source", how="inner").with_columns(
        pl.min_horizontal(pl.col("_ns"), (pl.col("_nd") * odds + 1e-9).floor().cast(pl.Int64)).alias("_qs")
    ).with_columns(pl.min_horizontal(pl.col("_nd"), (pl.col("_qs") / odds + 1e-9).floor().cast(pl.Int64)).alias("_qd"))
    if config.pairs_per_source is not None:
        total = pl.col("_qs") + pl.col("_qd")
        scale = pl.when(total > config.pairs_per_source).then(config.pairs_per_source / total).otherwise(1.0)
        quota = quota.with_columns((pl.col("_qs") * scale).floor().cast(pl.Int64).alias("_qs"),
                                   (pl.col("_qd") * scale).floor().cast(pl.Int64).alias("_qd"))
    same_pairs = same_pairs.join(quota, on="source").filter(rank("_k", "source") < pl.col("_qs")).with_columns(
        pl.col("dominant_emotion_a").alias("_emotion"), pl.lit("yes").alias("answer")
    )
    # A "no" pair asks about the dominant emotion of one of its images (alternately the first or the second).
    diff_pairs = diff_pairs.join(quota, on="source").filter(rank("_k", "source") < pl.col("_qd")).with_columns(
        pl.when(rank("_k", "source") % 2 == 0).then(pl.col("dominant_emotion_a")).otherwise(pl.col("dominant_emotion_b"))
        .alias("_emotion"),
        pl.lit("no").alias("answer"),
    )
    chosen = pl.concat([same_pairs, diff_pairs], how="diagonal_relaxed")
    chosen = with_templates(chosen, templates, "consistency_verification", "_k", "answer")
    question = pl.concat_str([
        fill(pl.col("_text"), emotion=word("_emotion", templates.document["emotion_words"])),
        pl.lit("\n" + templates.document["instructions"]["yes_no"]),
    ])
    return instruction_rows(chosen.with_columns(question.alias("question"), pl.col("image_id_a").alias("id_a"),
                                     pl.col("image_id_b").alias("id_b")),
                 "perception", "consistency_verification")


def _comparative(long_vad: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    if not config.comparative_rounds or long_vad.is_empty():
        return pl.DataFrame(schema=ROW_SCHEMA)
    frames = []
    for round_ in range(config.comparative_rounds):
        salts = {d: seed_salt(f"ca/{d}/{round_}") for d in VAD_DIMENSIONS}
        keyed = long_vad.select("source", "image_id", "_h", "_category", "dimension", "value").with_columns(
            splitmix64(pl.col("_h").xor(pl.col("dimension").replace_strict(salts, return_dtype=U64))).alias("_kp")
        )
        pairs = _consecutive_pairs(keyed, "_kp", "source", "_category", "dimension")
        frames.append(pairs.with_columns(pl.lit(round_).alias("_round")))
    pairs = _unique_pairs(pl.concat(frames), "dimension").filter(
        (pl.col("value_a") - pl.col("value_b")).abs() >= config.comparative_margin
    )
    pairs = pairs.with_columns(pair_key("_h_a", "_h_b", "ca/pick").alias("_k"))
    pairs = _cap_per_source(pairs, "_k", config.pairs_per_source, "dimension")
    # Show the higher image first in every other pair (by key order per dimension): balanced A/B answers.
    higher_first = rank("_k", "dimension") % 2 == 0
    a_higher = pl.col("value_a") > pl.col("value_b")
    swap = higher_first != a_higher
    pairs = pairs.with_columns(
        pl.when(swap).then(pl.col("image_id_b")).otherwise(pl.col("image_id_a")).alias("id_a"),
        pl.when(swap).then(pl.col("image_id_a")).otherwise(pl.col("image_id_b")).alias("id_b"),
        pl.when(higher_first).then(pl.lit("A")).otherwise(pl.lit("B")).alias("answer"),
        pl.lit(templates.document["pair_options"]).alias("options"),
    )
    pairs = with_templates(pairs, templates, "comparative_assessment", "_k", "dimension", "answer")
    text = fill(pl.col("_text"), quality=word("dimension", templates.document["comparative_qualities"]))
    question = choice_question(text, "options", len(templates.document["pair_options"]),
                                templates.document["instructions"]["choice"])
    return instruction_rows(pairs.with_columns(question.alias("question")), "perception", "comparative_assessment")


# --- assembly -------------------------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _sha16(texts: pl.Series) -> pl.Series:
    return pl.Series([hashlib.sha256(t.encode("utf-8")).hexdigest()[:16] for t in texts], dtype=pl.String)


def build_qa(
    mapped_labels: pl.DataFrame,
    vad_scores: pl.DataFrame,
    manifest: pl.DataFrame,
    descriptive_answers: pl.DataFrame,
    inputs: Mapping[str, str],
    seed: int = 0,
    config: QAConfig | None = None,
    reasoning: pl.DataFrame | None = None,
    categories: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The ``eemodb_qa`` rows of the given tables (see the module docstring), sorted by ``row_id``.

    ``reasoning`` is the emotion_reasoning table (visual_attribution answers; None: no such rows);
    ``categories`` is ``sources.categories.content_categories`` of raw_annotations (None: every image of a source is
    compatible with every other).

    Only images whose manifest row is decodable (with a path) are used. ``inputs`` maps upstream
    ``asset[partition]`` (or an unpartitioned ``asset``) to its data version; each row's provenance keeps
    the entries of its own source.
    """
    config = config or QAConfig()
    templates = load_templates()
    contract = table_contract("eemodb_qa")
    usable = (
        manifest.filter(pl.col("decodable") & pl.col("image_path").is_not_null())
        .select("source", "image_id", "image_path")
        .unique(subset=["source", "image_id"], keep="first")
        .sort("source", "image_id")
    )
    if usable.is_empty():
        return contract.empty()
    keys = image_keys(usable, seed)
    on = ["source", "image_id"]
    labels = with_categories(mapped_labels.join(keys, on=on, how="inner"), categories).sort(on)
    vad = with_categories(vad_scores.select(*on, *VAD_DIMENSIONS).join(keys, on=on, how="inner"), categories).sort(on)
    long = _long_probabilities(labels)
    long_vad = _long_vad(vad)

    parts = [
        _verification(long, templates, config),
        _identification(long, templates, config),
        attribution(labels, reasoning.join(usable.select(on), on=on, how="semi") if reasoning is not None
                    else pl.DataFrame(), templates, config.attribution_per_image),
        _consistency(labels, templates, config),
        _comparative(long_vad, templates, config),
    ]
    if config.ranking:
        parts.append(_ranking(labels, templates))
    if config.reasoning_choice and descriptive_answers.height:
        parts.append(reasoning_choice(descriptive_answers, keys, templates))
    if config.descriptions and descriptive_answers.height:
        parts.append(descriptions(descriptive_answers, usable.select(on), keys, templates))
    rows = pl.concat([p.select(ROW_COLUMNS) for p in parts])
    if rows.is_empty():
        return contract.empty()

    paths = usable.select("source", "image_id", (pl.col("source") + "/" + pl.col("image_path")).alias("_path"))
    rows = rows.join(paths.rename({"image_id": "id_a", "_path": "_path_a"}), on=["source", "id_a"], how="left")
    rows = rows.join(paths.rename({"image_id": "id_b", "_path": "_path_b"}), on=["source", "id_b"], how="left")
    ids = pl.concat_list("id_a", "id_b").list.drop_nulls()
    rows = rows.with_columns(
        pl.concat_list("_path_a", "_path_b").list.drop_nulls().alias("image_paths"),
        ids.alias("source_image_ids"),
        pl.when(pl.col("id_b").is_null()).then(pl.concat_list("source")).otherwise(pl.concat_list("source", "source"))
        .alias("sources"),
    )
    # row_id: sha256 of task, sub_task, template_id, the images ("<source>/<image_id>") and question, answer.
    images = pl.concat_str(
        [pl.col("source"), pl.lit("/"), pl.col("id_a"),
         pl.when(pl.col("id_b").is_not_null()).then(pl.concat_str([pl.lit("\x1e"), pl.col("source"), pl.lit("/"),
                                                                    pl.col("id_b")])).otherwise(pl.lit(""))]
    )
    material = pl.concat_str([pl.col("task"), pl.col("sub_task"), pl.col("template_id"), images, pl.col("question"),
                              pl.col("answer")], separator="\x1f")
    rows = rows.with_columns(material.alias("_material"))
    rows = rows.with_columns(_sha16(rows["_material"]).alias("row_id")).drop("_material")

    code = f"eemodb_qa@{QA_CODE_VERSION}"
    plain = pl.DataFrame(
        {"source": sorted(rows["source"].unique().to_list())}, schema={"source": pl.String}
    ).with_columns(
        pl.col("source").map_elements(lambda s: _dumps({"code": code, "inputs": source_inputs(inputs, s)}),
                                      return_dtype=pl.String).alias("_plain")
    )
    rows = rows.join(plain, on="source", how="left").with_row_index("_i")
    generated = rows.filter(pl.col("gen_key").is_not_null())
    if generated.height:
        texts = [
            _dumps({"code": code, "inputs": source_inputs(inputs, s),
                    "generated": [{"key": k, "model": m, "template_version": v}]})
            for s, k, m, v in generated.select("source", "gen_key", "gen_model", "gen_version").iter_rows()
        ]
        generated = generated.select("_i").with_columns(pl.Series("_generated", texts, dtype=pl.String))
        rows = rows.join(generated, on="_i", how="left")
    else:
        rows = rows.with_columns(pl.lit(None, pl.String).alias("_generated"))
    rows = rows.with_columns(pl.coalesce("_generated", "_plain").alias("provenance"))
    rows = rows.unique(subset="row_id", keep="first").sort("row_id")
    return contract.conform(rows)
