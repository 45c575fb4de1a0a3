"""EEmoDB-QA (paper 3.3, appendix C.4): perception, ranking and description instructions over the refined labels.

``build_qa`` turns the concatenated per-source tables (``mapped_labels``, ``vad_scores``, ``image_manifest``,
``descriptive_answers``) into the ``eemodb_qa`` table (``data_contracts/eemodb_qa.yaml``), one row per
instruction, sorted by ``row_id``.

Tasks and sub-tasks:

* ``perception``, single image:
  ``emotion_verification`` (yes/no: is an emotion evoked? yes = the dominant emotion or a ranked one with
  probability > 0, no = an emotion of probability 0; equal yes and no counts per target emotion),
  ``comparative_identification`` (four options: the dominant emotion and three distractors of strictly lower
  probability, the image's other ranked emotions first; answer = the letter of the dominant one),
  ``visual_attribution`` (three options low/medium/high for one VAD dimension; answer from ``vad_level``);
  pairs of images of one source:
  ``consistency_verification`` (yes/no: do both images evoke mainly an emotion? per source half the pairs
  share the dominant emotion (yes), half do not (no: the emotion asked is one image's dominant)),
  ``comparative_assessment`` (options "The first image" / "The second image": which one is higher on a VAD
  dimension; only pairs whose values differ by at least ``QAConfig.comparative_margin``; the higher image
  comes first in every other pair, so A and B answers are balanced).
* ``ranking``: ``emotion_ranking``, answer "a, b, c" from the ranking (open answer: options null).
* ``description``: one row per ``descriptive_answers`` row (sub_task = its template: narrative, causal,
  evocation, pair_ranking, pair_dimension); the answer is the generated text.

Yes/no, ranking and description rows have null ``options``; multiple-choice rows list their options in the
order shown, rendered into the question as lines ``A. ...`` followed by the answer instruction.

Determinism: nothing is random. Every choice (which images, which pairs, which distractors, option order,
which phrasing) is ranked by a 64-bit key: the sha256 of ``seed, source, image_id`` per image, mixed with
a salt per decision by splitmix64 in polars integer arithmetic (so the keys do not depend on the polars
version). Phrasings are assigned round-robin in that key order within each label group. Same inputs and
seed give the same rows; the output is sorted by ``row_id`` (so the Parquet bytes are identical).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.subsets.provenance import source_inputs
from eemo_pipeline.subsets.seeding import U64, decision_key, image_keys, pair_key, seed_salt, splitmix64
from eemo_pipeline.vad.levels import vad_level_expr

QA_CODE_VERSION = "1"  # bump when a change of this module changes which rows or answers come out
TEMPLATES_PATH = Path(__file__).with_name("qa_templates.yaml")

VAD_DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")
DESCRIPTION_KINDS: tuple[str, ...] = ("narrative", "causal", "evocation", "pair_ranking", "pair_dimension")
PAIR_DESCRIPTION_KINDS: tuple[str, ...] = ("pair_ranking", "pair_dimension")
LETTERS = "ABCDEFGH"
IDENTIFICATION_OPTIONS = 4  # the dominant emotion plus three distractors (paper: multiple choice, count not given)

# Defaults the paper does not publish (it gives only the totals: ~1.2M instructions over ~122k images).
DEFAULT_VERIFICATION_YES_PER_IMAGE = 2  # yes candidates drawn per image (its ranked emotions)
DEFAULT_VERIFICATION_NO_PER_IMAGE = 2  # no candidates drawn per image (its probability-0 emotions)
DEFAULT_YES_SHARE = 0.5  # share of yes answers per target emotion (verification)
DEFAULT_IDENTIFICATION_PER_IMAGE = 1  # 0 or 1
DEFAULT_ATTRIBUTION_DIMENSIONS = 3  # VAD dimensions asked per image (1-3)
DEFAULT_ATTRIBUTION_LEVEL_RATIO = 3.0  # per dimension, no level exceeds this multiple of the rarest level
DEFAULT_CONSISTENCY_ROUNDS = 2  # pairing rounds per source (each round pairs every image at most once)
DEFAULT_SAME_SHARE = 0.5  # share of consistency pairs sharing the dominant emotion
DEFAULT_COMPARATIVE_MARGIN = 0.15  # minimum |difference| on the 0-1 scale for a comparative pair
DEFAULT_COMPARATIVE_ROUNDS = 1  # pairing rounds per source and dimension
DEFAULT_PAIRS_PER_SOURCE: int | None = None  # cap per source and pair sub_task (None: as many as the rounds give)


@dataclass(frozen=True)
class QAConfig:
    """Every tunable of ``build_qa``; the defaults are the module's ``DEFAULT_*`` constants.

    verification_yes_per_image / verification_no_per_image: candidates drawn per image before the per-emotion
    balance; yes_share: share of yes answers per emotion (0.5: equal counts); identification_per_image: 0 or
    1; attribution_dimensions: dimensions asked per image; attribution_level_ratio: cap of each level at this
    multiple of the rarest level of the dimension (None: no cap); consistency_rounds / comparative_rounds:
    pairing rounds per source; same_share: share of consistency pairs sharing the dominant emotion;
    comparative_margin: minimum difference of a comparative pair; pairs_per_source: cap of pairs per source
    and pair sub_task (per dimension for comparative); ranking / descriptions: include those tasks.
    """

    verification_yes_per_image: int = DEFAULT_VERIFICATION_YES_PER_IMAGE
    verification_no_per_image: int = DEFAULT_VERIFICATION_NO_PER_IMAGE
    yes_share: float = DEFAULT_YES_SHARE
    identification_per_image: int = DEFAULT_IDENTIFICATION_PER_IMAGE
    attribution_dimensions: int = DEFAULT_ATTRIBUTION_DIMENSIONS
    attribution_level_ratio: float | None = DEFAULT_ATTRIBUTION_LEVEL_RATIO
    consistency_rounds: int = DEFAULT_CONSISTENCY_ROUNDS
    same_share: float = DEFAULT_SAME_SHARE
    comparative_margin: float = DEFAULT_COMPARATIVE_MARGIN
    comparative_rounds: int = DEFAULT_COMPARATIVE_ROUNDS
    pairs_per_source: int | None = DEFAULT_PAIRS_PER_SOURCE
    ranking: bool = True
    descriptions: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.yes_share < 1 or not 0 < self.same_share < 1:
            raise ValueError("yes_share and same_share must lie strictly between 0 and 1")
        if self.identification_per_image not in (0, 1):
            raise ValueError("identification_per_image must be 0 or 1")
        if not 0 <= self.attribution_dimensions <= len(VAD_DIMENSIONS):
            raise ValueError("attribution_dimensions must be 0-3")
        if self.comparative_margin < 0:
            raise ValueError("comparative_margin must be >= 0")
        counts = (self.verification_yes_per_image, self.verification_no_per_image, self.consistency_rounds,
                  self.comparative_rounds, self.pairs_per_source or 0)
        if min(counts) < 0:
            raise ValueError("counts must be >= 0")


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
    needed = {"emotion_verification", "comparative_identification", "visual_attribution", "consistency_verification",
              "comparative_assessment", "emotion_ranking", *DESCRIPTION_KINDS}
    missing = needed - {k for k, v in document["sub_tasks"].items() if v}
    if missing:
        raise ValueError(f"{path}: no phrasing for {sorted(missing)}")
    return Templates(str(document["version"]), document)


# --- deterministic keys -------------------------------------------------------------------------------------

def _rank(key: str, *groups: str) -> pl.Expr:
    """0-based position of a row in its group when ordered by ``key``."""
    ranked = pl.col(key).rank("ordinal")
    return (ranked.over(list(groups)) if groups else ranked).cast(pl.Int64) - 1


# --- rendering ----------------------------------------------------------------------------------------------


def _with_templates(frame: pl.DataFrame, templates: Templates, sub_task: str, key: str, *groups: str) -> pl.DataFrame:
    """Add ``template_id`` and ``_text``: phrasings round-robin in ``key`` order within each group."""
    phrasings = templates.of(sub_task)
    return (
        frame.with_columns((_rank(key, *groups) % phrasings.height).alias("_t"))
        .join(phrasings, on="_t", how="left")
        .drop("_t")
    )


def _fill(text: pl.Expr, **values: pl.Expr) -> pl.Expr:
    for name, value in values.items():
        text = text.str.replace_all("{" + name + "}", value, literal=True)
    return text


def _word(column: str, words: Mapping[str, str]) -> pl.Expr:
    return pl.col(column).replace_strict(dict(words), return_dtype=pl.String)


def _choice_question(text: pl.Expr, options: str, count: int, instruction: str) -> pl.Expr:
    parts: list[pl.Expr] = [text]
    for index in range(count):
        parts += [pl.lit(f"\n{LETTERS[index]}. "), pl.col(options).list.get(index)]
    parts.append(pl.lit("\n" + instruction))
    return pl.concat_str(parts)


def _shuffled(long: pl.DataFrame, qid: str, option: str, correct: str, order: str) -> pl.DataFrame:
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


_ROW_COLUMNS = ["task", "sub_task", "template_id", "question", "options", "answer", "source", "id_a", "id_b",
                "gen_key", "gen_model", "gen_version"]
_ROW_SCHEMA = {"task": pl.String, "sub_task": pl.String, "template_id": pl.String, "question": pl.String,
               "options": pl.List(pl.String), "answer": pl.String, "source": pl.String, "id_a": pl.String,
               "id_b": pl.String, "gen_key": pl.String, "gen_model": pl.String, "gen_version": pl.String}


def _rows(frame: pl.DataFrame, task: str, sub_task: str) -> pl.DataFrame:
    """The common row layout of every builder."""
    present = set(frame.columns)
    return frame.select(
        [pl.lit(task).alias("task"), pl.lit(sub_task).alias("sub_task")]
        + [
            pl.col(c).cast(_ROW_SCHEMA[c]) if c in present else pl.lit(None, _ROW_SCHEMA[c]).alias(c)
            for c in _ROW_COLUMNS[2:]
        ]
    )


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
    yes = yes.with_columns(draw.alias("_k0")).filter(_rank("_k0", "source", "image_id") < config.verification_yes_per_image)
    no = no.with_columns(draw.alias("_k0")).filter(_rank("_k0", "source", "image_id") < config.verification_no_per_image)
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
            .filter(_rank("_k", "emotion") < pl.col("emotion").replace_strict(keep, return_dtype=pl.Int64))
            .with_columns(pl.lit(answer).alias("answer"))
            for frame, keep, answer in ((yes, keep_yes, "yes"), (no, keep_no, "no"))
        ]
    )
    chosen = _with_templates(chosen, templates, "emotion_verification", "_k", "emotion", "answer")
    words = templates.document["emotion_words"]
    question = pl.concat_str(
        [_fill(pl.col("_text"), emotion=_word("emotion", words)), pl.lit("\n" + templates.document["instructions"]["yes_no"])]
    )
    return _rows(chosen.with_columns(question.alias("question"), pl.col("image_id").alias("id_a")),
                 "perception", "emotion_verification")


def _identification(long: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    if not config.identification_per_image:
        return pl.DataFrame(schema=_ROW_SCHEMA)
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
    shown = _shuffled(options, "_qid", "emotion", "correct", "_order")
    questions = (
        options.filter("correct")
        .select("_qid", "source", "image_id", "_h", pl.col("emotion").alias("_dominant"))
        .join(shown, on="_qid")
        .with_columns(decision_key("_h", "ci/template").alias("_k"))
    )
    questions = _with_templates(questions, templates, "comparative_identification", "_k", "_dominant")
    question = _choice_question(pl.col("_text"), "options", IDENTIFICATION_OPTIONS,
                                templates.document["instructions"]["choice"])
    return _rows(questions.with_columns(question.alias("question"), pl.col("image_id").alias("id_a")),
                 "perception", "comparative_identification")


def _long_vad(vad: pl.DataFrame) -> pl.DataFrame:
    """``source, image_id, _h, dimension, value, level`` for every rated (non-null, non-NaN) value."""
    return (
        vad.unpivot(index=["source", "image_id", "_h"], on=list(VAD_DIMENSIONS), variable_name="dimension",
                    value_name="value")
        .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
        .with_columns(vad_level_expr("value").alias("level"))
    )


def _attribution(long_vad: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    if not config.attribution_dimensions or long_vad.is_empty():
        return pl.DataFrame(schema=_ROW_SCHEMA)
    salts = {d: seed_salt(f"va/{d}") for d in VAD_DIMENSIONS}
    picked = long_vad.with_columns(
        splitmix64(pl.col("_h").xor(pl.col("dimension").replace_strict(salts, return_dtype=U64))).alias("_k")
    ).filter(_rank("_k", "source", "image_id") < config.attribution_dimensions)
    if config.attribution_level_ratio is not None:
        counts = picked.group_by("dimension", "level").len()
        rarest = counts.group_by("dimension").agg(pl.col("len").min().alias("_rarest"))
        caps = counts.join(rarest, on="dimension").select(
            "dimension", "level",
            (pl.col("_rarest").cast(pl.Float64) * config.attribution_level_ratio).floor().cast(pl.Int64).alias("_cap"),
        )
        picked = picked.join(caps, on=["dimension", "level"]).filter(_rank("_k", "dimension", "level") < pl.col("_cap"))
    levels = templates.document["level_options"]
    picked = picked.with_columns(pl.concat_str("source", pl.lit("\x1f"), "image_id", pl.lit("\x1f"), "dimension").alias("_qid"))
    long = picked.select("_qid", "_k", "level").join(pl.DataFrame({"option": levels}), how="cross").with_columns(
        (pl.col("option") == pl.col("level")).alias("correct"),
        splitmix64(pl.col("_k").xor(pl.col("option").replace_strict({o: seed_salt(f"va/order/{o}") for o in levels},
                                                                       return_dtype=U64))).alias("_order"),
    )
    shown = _shuffled(long, "_qid", "option", "correct", "_order")
    questions = _with_templates(picked.join(shown, on="_qid"), templates, "visual_attribution", "_k", "dimension", "level")
    text = _fill(pl.col("_text"), dimension=_word("dimension", templates.document["dimension_words"]))
    question = _choice_question(text, "options", len(levels), templates.document["instructions"]["choice"])
    return _rows(questions.with_columns(question.alias("question"), pl.col("image_id").alias("id_a")),
                 "perception", "visual_attribution")


def _ranking(labels: pl.DataFrame, templates: Templates) -> pl.DataFrame:
    ranked = labels.filter(pl.col("ranking").is_not_null() & (pl.col("ranking").list.len() > 0)).with_columns(
        decision_key("_h", "er/template").alias("_k"), pl.col("ranking").list.join(", ").alias("answer")
    )
    ranked = _with_templates(ranked, templates, "emotion_ranking", "_k")
    return _rows(ranked.with_columns(pl.col("_text").alias("question"), pl.col("image_id").alias("id_a")),
                 "ranking", "emotion_ranking")


# --- perception: pairs --------------------------------------------------------------------------------------


def _consecutive_pairs(images: pl.DataFrame, key: str, *groups: str) -> pl.DataFrame:
    """Images ordered by ``key`` within ``groups`` paired 1st-2nd, 3rd-4th, ...; columns get ``_a`` / ``_b``."""
    ordered = images.with_columns(_rank(key, *groups).alias("_r"))
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
    return pairs.filter(_rank(key, "source", *groups) < cap)


def _consistency(labels: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    images = labels.filter(pl.col("dominant_emotion").is_not_null()).select("source", "image_id", "_h", "dominant_emotion")
    if not config.consistency_rounds or images.is_empty():
        return pl.DataFrame(schema=_ROW_SCHEMA)
    same, different = [], []
    for round_ in range(config.consistency_rounds):
        keyed = images.with_columns(decision_key("_h", f"cv/same/{round_}").alias("_ks"), decision_key("_h", f"cv/diff/{round_}").alias("_kd"))
        s = _consecutive_pairs(keyed.drop("_kd"), "_ks", "source", "dominant_emotion").with_columns(
            pl.col("dominant_emotion").alias("dominant_emotion_a"), pl.col("dominant_emotion").alias("dominant_emotion_b")
        )
        d = _consecutive_pairs(keyed.drop("_ks"), "_kd", "source").filter(
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
    same_pairs = same_pairs.join(quota, on="source").filter(_rank("_k", "source") < pl.col("_qs")).with_columns(
        pl.col("dominant_emotion_a").alias("_emotion"), pl.lit("yes").alias("answer")
    )
    # A "no" pair asks about the dominant emotion of one of its images (alternately the first or the second).
    diff_pairs = diff_pairs.join(quota, on="source").filter(_rank("_k", "source") < pl.col("_qd")).with_columns(
        pl.when(_rank("_k", "source") % 2 == 0).then(pl.col("dominant_emotion_a")).otherwise(pl.col("dominant_emotion_b"))
        .alias("_emotion"),
        pl.lit("no").alias("answer"),
    )
    chosen = pl.concat([same_pairs, diff_pairs], how="diagonal_relaxed")
    chosen = _with_templates(chosen, templates, "consistency_verification", "_k", "answer")
    question = pl.concat_str([
        _fill(pl.col("_text"), emotion=_word("_emotion", templates.document["emotion_words"])),
        pl.lit("\n" + templates.document["instructions"]["yes_no"]),
    ])
    return _rows(chosen.with_columns(question.alias("question"), pl.col("image_id_a").alias("id_a"),
                                     pl.col("image_id_b").alias("id_b")),
                 "perception", "consistency_verification")


def _comparative(long_vad: pl.DataFrame, templates: Templates, config: QAConfig) -> pl.DataFrame:
    if not config.comparative_rounds or long_vad.is_empty():
        return pl.DataFrame(schema=_ROW_SCHEMA)
    frames = []
    for round_ in range(config.comparative_rounds):
        salts = {d: seed_salt(f"ca/{d}/{round_}") for d in VAD_DIMENSIONS}
        keyed = long_vad.select("source", "image_id", "_h", "dimension", "value").with_columns(
            splitmix64(pl.col("_h").xor(pl.col("dimension").replace_strict(salts, return_dtype=U64))).alias("_kp")
        )
        pairs = _consecutive_pairs(keyed, "_kp", "source", "dimension")
        frames.append(pairs.with_columns(pl.lit(round_).alias("_round")))
    pairs = _unique_pairs(pl.concat(frames), "dimension").filter(
        (pl.col("value_a") - pl.col("value_b")).abs() >= config.comparative_margin
    )
    pairs = pairs.with_columns(pair_key("_h_a", "_h_b", "ca/pick").alias("_k"))
    pairs = _cap_per_source(pairs, "_k", config.pairs_per_source, "dimension")
    # Show the higher image first in every other pair (by key order per dimension): balanced A/B answers.
    higher_first = _rank("_k", "dimension") % 2 == 0
    a_higher = pl.col("value_a") > pl.col("value_b")
    swap = higher_first != a_higher
    pairs = pairs.with_columns(
        pl.when(swap).then(pl.col("image_id_b")).otherwise(pl.col("image_id_a")).alias("id_a"),
        pl.when(swap).then(pl.col("image_id_a")).otherwise(pl.col("image_id_b")).alias("id_b"),
        pl.when(higher_first).then(pl.lit("A")).otherwise(pl.lit("B")).alias("answer"),
        pl.lit(templates.document["pair_options"]).alias("options"),
    )
    pairs = _with_templates(pairs, templates, "comparative_assessment", "_k", "dimension", "answer")
    text = _fill(pl.col("_text"), quality=_word("dimension", templates.document["comparative_qualities"]))
    question = _choice_question(text, "options", len(templates.document["pair_options"]),
                                templates.document["instructions"]["choice"])
    return _rows(pairs.with_columns(question.alias("question")), "perception", "comparative_assessment")


# --- description ---------------------------------------------------------------------------------------------


def _descriptions(answers: pl.DataFrame, usable: pl.DataFrame, keys: pl.DataFrame, templates: Templates) -> pl.DataFrame:
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
        part = _with_templates(part, templates, kind, "_k", *(["dimension"] if kind == "pair_dimension" else []))
        text = _fill(pl.col("_text"), dimension=_word("dimension", templates.document["dimension_words"])) \
            if kind == "pair_dimension" else pl.col("_text")
        frames.append(
            _rows(part.with_columns(text.alias("question"), pl.col("text").alias("answer"),
                                    pl.col("image_id").alias("id_a"), pl.col("image_id_b").alias("id_b"),
                                    pl.col("key").alias("gen_key"), pl.col("model").alias("gen_model"),
                                    pl.col("template_version").alias("gen_version")),
                  "description", kind)
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema=_ROW_SCHEMA)


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
) -> pl.DataFrame:
    """The ``eemodb_qa`` rows of the given tables (see the module docstring), sorted by ``row_id``.

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
    labels = mapped_labels.join(keys, on=on, how="inner").sort(on)
    vad = vad_scores.select(*on, *VAD_DIMENSIONS).join(keys, on=on, how="inner").sort(on)
    long = _long_probabilities(labels)
    long_vad = _long_vad(vad)

    parts = [
        _verification(long, templates, config),
        _identification(long, templates, config),
        _attribution(long_vad, templates, config),
        _consistency(labels, templates, config),
        _comparative(long_vad, templates, config),
    ]
    if config.ranking:
        parts.append(_ranking(labels, templates))
    if config.descriptions and descriptive_answers.height:
        parts.append(_descriptions(descriptive_answers, usable.select(on), keys, templates))
    rows = pl.concat([p.select(_ROW_COLUMNS) for p in parts])
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
