"""EEmoDB-Assess (paper section 3.4): the GRPO subset of precise, balanced assessment instructions.

One instruction per row (contract ``data_contracts/eemodb_assess.yaml``), three tasks:

- ``ranking`` (sub_task ``emotion_ranking``): the sources declared with ``assess.emotion_ranking`` in
  ``data_contracts/sources.yaml`` (Emotion6 only), "derive unambiguous hierarchical labels by sorting
  the inherent probability distributions". An image is used when its mapped ranking has exactly three targets
  whose probabilities are strictly decreasing and the third beats the fourth (gaps above ``tie_tolerance``).
  Answer ``"a, b, c"`` (the mapped ranking); an open answer, so ``options`` is null (as in EEmoDB-QA) and the
  question lists the seven targets in ``TARGETS`` order.
- ``vad`` (sub_tasks ``valence``, ``arousal``, ``dominance``): rated and lexicon-synthesized scores balanced
  toward a uniform score distribution. Per dimension, the 0-1 axis is cut into ``vad_bins`` equal-width bins
  (bin ``b`` holds ``b/bins <= v < (b+1)/bins``, the last bin also holds 1.0), binned on the 4-decimal answer
  value. Within a bin, rated scores are drawn first (in a seeded-hash order), then synthesized ones in
  descending ``n_lexicon_words`` (appendix C.2: more lexicon words, more reliable score; ties in seeded-hash
  order); the first ``min(available, vad_per_bin)`` are kept. Lexicon rows need at least
  ``vad_min_lexicon_words`` words. Answer ``f"{value:.4f}"`` (Python's correctly rounded 4 decimals).
- ``dominant_emotion`` (sub_task = the source's native taxonomy, e.g. ``mikels8``, so a reward can pick the
  matching similarity matrix): the native dominant label from ``raw_annotations``, as spelled by the source
  (see ``dec_rules``); images whose top weight is tied (within ``tie_tolerance``) are skipped. Candidates
  (``options``, the only non-null options of the table) are the source's native vocabulary in
  ``data_contracts/sources.yaml`` order, so taxonomies never mix, less ``dec_excluded_answers``: Affection's
  ``something else`` names no emotion and has no target (the similarity reward cannot score it), so it is
  neither an answer nor a candidate and Affection offers the authors' 8 emotions, as their ArtEmis prompt does;
  an image whose majority is ``something else`` is skipped, not demoted to its runner-up. Balancing per source and class ("anchor
  minority classes and constrain majority class upper bounds"): a class keeps ``min(count, max(dec_anchor, dec_cap))`` images, i.e. a minority class (count at or
  below ``dec_anchor``) is kept whole, a majority class is cut to ``dec_cap``, chosen in seeded-hash order.
  Rows are never duplicated (``row_id`` is the key), so the anchor is a guaranteed floor, not an oversampling
  target.

Only images whose manifest row is decodable are used. Every question states the answer format the GRPO
rewards parse (``<think>...</think><answer>Valence: x.xxxx</answer>`` and so on); the ``answer`` column holds
only the value. ``row_id`` is the first 16 hex of sha256 over task, sub_task, template_id, the
``<source>/<image_id>`` of each image and the answer. The same inputs and seed give the same rows in the same
order (sorted by ``row_id``), so byte-identical Parquet. Seeded draws use ``eemo_pipeline.subsets.seeding``
(sha256 image keys mixed by splitmix64), the same on every polars version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import polars as pl

from eemo_pipeline.contracts import source_declarations, source_facts, table_contract
from eemo_pipeline.frames import fixed_order_sum
from eemo_pipeline.labels.mapping import TIE_TOLERANCE
from eemo_pipeline.labels.taxonomy import TARGETS, taxonomy_of
from eemo_pipeline.subsets.provenance import source_inputs
from eemo_pipeline.subsets.seeding import with_draw_key
from eemo_pipeline.tasks.questions import (
    DOMINANT_TEMPLATE,
    RANKING_LENGTH,
    RANKING_TEMPLATE,
    VAD_DIMENSIONS,
    VAD_TEMPLATE,
    dominant_question,
    ranking_question,
    vad_question,
)
from eemo_pipeline.tasks.registry import DOMINANT_EMOTION, RANKING, VAD

ASSESS_VERSION = 2
CODE_ID = f"eemodb_assess@{ASSESS_VERSION}"


# Defaults where the paper publishes no number (its counts were lost in extraction).
VAD_BINS = 10  # equal-width bins on 0-1 (the uniform target of Fig. 2(d))
VAD_PER_BIN = 750  # target rows per (dimension, bin): at most 3 x 10 x 750 = 22,500 VAD rows
VAD_MIN_LEXICON_WORDS = 1  # a synthesized score needs at least one lexicon word
DEC_ANCHOR = 100  # classes with at most this many images are kept whole
DEC_CAP = 234  # upper bound per (source, class): 36,000 rows at full scale with the other defaults (perf/subsets.py)
DEC_EXCLUDED_ANSWERS: tuple[str, ...] = ("something else",)


def dec_rules() -> dict[str, tuple[str, str]]:
    """How the native dominant label is read from raw_annotations, per source: (measure, rule), as declared
    under ``assess.dominant_emotion`` in ``data_contracts/sources.yaml``.

    sum:        weight = summed value (Abstract-8 votes, Emotion6 probabilities);
    count:      weight = number of choices (Affection majority, FindingEmo's single choice);
    selections: weight = number of (subject, annotator) selections naming the label (EMOTIC: the label most
                annotators chose, each annotator's selection counting a label once).
    The top weight must beat the runner-up by more than the tie tolerance, else the image is skipped.
    """
    return {name: facts.dominant_emotion for name, facts in source_declarations().items() if facts.dominant_emotion}


def ranking_sources() -> list[str]:
    """Sources whose mapped ranking gives ranking instructions (``assess.emotion_ranking`` in sources.yaml)."""
    return [name for name, facts in source_declarations().items() if facts.emotion_ranking]


@dataclass(frozen=True)
class AssessConfig:
    """Selection and balancing knobs; defaults are the module's named constants."""

    vad_bins: int = VAD_BINS
    vad_per_bin: int = VAD_PER_BIN
    vad_min_lexicon_words: int = VAD_MIN_LEXICON_WORDS
    dec_anchor: int = DEC_ANCHOR
    dec_cap: int = DEC_CAP
    dec_excluded_answers: tuple[str, ...] = DEC_EXCLUDED_ANSWERS
    tie_tolerance: float = TIE_TOLERANCE

    def __post_init__(self) -> None:
        if self.vad_bins < 1 or self.vad_per_bin < 0:
            raise ValueError("vad_bins must be >= 1 and vad_per_bin >= 0")
        if not 0 <= self.dec_anchor <= self.dec_cap:
            raise ValueError(f"need 0 <= dec_anchor <= dec_cap, got {self.dec_anchor} and {self.dec_cap}")


def native_vocabulary(source: str) -> tuple[str, ...]:
    """The source's native labels in ``data_contracts/sources.yaml`` order (the fixed candidate order)."""
    return source_facts(source).vocabulary


def dominant_candidates(source: str, config: AssessConfig) -> tuple[str, ...]:
    """The dominant-emotion candidates of ``source``: its native vocabulary less ``dec_excluded_answers``."""
    return tuple(label for label in native_vocabulary(source) if label not in config.dec_excluded_answers)


# --- building ----------------------------------------------------------------------------------------------

_WORK = {
    "task": pl.String, "sub_task": pl.String, "template_id": pl.String, "question": pl.String,
    "options": pl.List(pl.String), "answer": pl.String, "source": pl.String, "image_id": pl.String,
    "image_path": pl.String, "vad_origin": pl.String, "n_lexicon_words": pl.Int32,
}


def _work(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        [pl.col(n).cast(t) if n in frame.columns else pl.lit(None, t).alias(n) for n, t in _WORK.items()]
    )


def _decodable(manifest: pl.DataFrame) -> pl.DataFrame:
    return manifest.filter(pl.col("decodable") & pl.col("image_path").is_not_null()).select(
        "source", "image_id", "image_path"
    ).unique(["source", "image_id"], keep="first").sort("source", "image_id")


def _probability_of(target: pl.Expr) -> pl.Expr:
    return pl.coalesce([pl.when(target == t).then(pl.col(f"p_{t}")) for t in TARGETS])


def ranking_rows(mapped_labels: pl.DataFrame, images: pl.DataFrame, config: AssessConfig) -> pl.DataFrame:
    tol = config.tie_tolerance
    ranking = pl.col("ranking")
    ranked = [_probability_of(ranking.list.get(i, null_on_oob=True)) for i in range(RANKING_LENGTH)]
    fourth = pl.concat_list([pl.col(f"p_{t}") for t in TARGETS]).list.sort(descending=True).list.get(RANKING_LENGTH)
    rows = mapped_labels.filter(
        pl.col("source").is_in(ranking_sources())
        & ranking.is_not_null()
        & (ranking.list.len() == RANKING_LENGTH)
        & (ranking.list.n_unique() == RANKING_LENGTH)
        & (ranked[0] - ranked[1] > tol)
        & (ranked[1] - ranked[2] > tol)
        & (ranked[2] - fourth > tol)
    ).join(images, on=["source", "image_id"], how="inner")
    return _work(rows.with_columns(
        pl.lit(RANKING.name).alias("task"),
        pl.lit(RANKING.sub_tasks[0]).alias("sub_task"),
        pl.lit(RANKING_TEMPLATE.template_id).alias("template_id"),
        pl.lit(ranking_question()).alias("question"),
        ranking.list.join(", ").alias("answer"),
    ))


def vad_candidates(vad_scores: pl.DataFrame, images: pl.DataFrame, config: AssessConfig) -> pl.DataFrame:
    """Every usable (image, dimension) score with its answer text, 1/10000 units and bin."""
    long = (
        vad_scores.join(images, on=["source", "image_id"], how="inner")
        .unpivot(on=list(VAD_DIMENSIONS), index=["source", "image_id", "image_path", "vad_origin", "n_lexicon_words"],
                 variable_name="sub_task", value_name="value")
        .filter(
            pl.col("value").is_not_null() & pl.col("value").is_finite() & pl.col("value").is_between(0.0, 1.0)
            & ((pl.col("vad_origin") == "rated") | (pl.col("n_lexicon_words") >= config.vad_min_lexicon_words))
        )
    )
    answers = pl.Series("answer", [f"{v:.4f}" for v in long["value"].to_list()], pl.String)
    units = answers.str.replace(".", "", literal=True).cast(pl.Int64)
    return long.with_columns(answers, units.alias("units")).with_columns(
        pl.min_horizontal(pl.col("units") * config.vad_bins // 10_000, pl.lit(config.vad_bins - 1)).alias("bin")
    )


def vad_rows(vad_scores: pl.DataFrame, images: pl.DataFrame, seed: int, config: AssessConfig) -> pl.DataFrame:
    candidates = vad_candidates(vad_scores, images, config)
    ordered = with_draw_key(candidates, seed, VAD.name).with_columns(
        (pl.col("vad_origin") != "rated").cast(pl.Int8).alias("_origin"),
        pl.col("n_lexicon_words").fill_null(0).alias("_words"),
    ).sort(
        ["sub_task", "bin", "_origin", "_words", "_draw", "source", "image_id"],
        descending=[False, False, False, True, False, False, False],
    )
    chosen = ordered.filter(pl.int_range(pl.len()).over("sub_task", "bin") < config.vad_per_bin)
    questions = pl.DataFrame({"sub_task": list(VAD_DIMENSIONS), "question": [vad_question(d) for d in VAD_DIMENSIONS]})
    return _work(chosen.join(questions, on="sub_task", how="left").with_columns(
        pl.lit(VAD.name).alias("task"),
        pl.lit(VAD_TEMPLATE.template_id).alias("template_id"),
    ))


def dominant_labels(raw_annotations: pl.DataFrame, config: AssessConfig) -> pl.DataFrame:
    """``source, image_id, label``: the untied native dominant label of every image (before balancing)."""
    weights = []
    for source, (measure, rule) in dec_rules().items():
        rows = raw_annotations.filter(
            (pl.col("source") == source) & (pl.col("measure") == measure)
            & pl.col("label").is_in(list(native_vocabulary(source)))
        )
        if rule == "selections":
            rows = rows.unique(["image_id", "subject", "annotator", "label"])
        weight = fixed_order_sum(pl.col("value")) if rule == "sum" else pl.len().cast(pl.Float64)
        weights.append(rows.group_by("source", "image_id", "label").agg(weight.alias("weight")))
    frame = pl.concat(weights, how="vertical") if weights else pl.DataFrame()
    if frame.is_empty():
        return pl.DataFrame(schema={"source": pl.String, "image_id": pl.String, "label": pl.String})
    top = pl.col("weight").max().over("source", "image_id")
    return (
        frame.filter(pl.col("weight") >= top - config.tie_tolerance)
        .group_by("source", "image_id")
        .agg(pl.col("label").first(), pl.len().alias("_at_top"), pl.col("weight").max().alias("_top"))
        .filter((pl.col("_at_top") == 1) & (pl.col("_top") > 0))
        .select("source", "image_id", "label")
        .sort("source", "image_id")
    )


def dominant_rows(raw_annotations: pl.DataFrame, images: pl.DataFrame, seed: int, config: AssessConfig) -> pl.DataFrame:
    labels = dominant_labels(raw_annotations, config).filter(~pl.col("label").is_in(list(config.dec_excluded_answers)))
    labels = labels.join(images, on=["source", "image_id"], how="inner")
    quota = pl.min_horizontal(pl.len(), pl.lit(max(config.dec_anchor, config.dec_cap)))
    chosen = (
        with_draw_key(labels, seed, DOMINANT_EMOTION.name)
        .sort("source", "label", "_draw", "image_id")
        .filter(pl.int_range(pl.len()).over("source", "label") < quota.over("source", "label"))
    )
    sources = sorted(dec_rules())
    per_source = pl.DataFrame(
        {
            "source": sources,
            "sub_task": [taxonomy_of(s) or s for s in sources],
            "options": [list(dominant_candidates(s, config)) for s in sources],
            "question": [dominant_question(dominant_candidates(s, config)) for s in sources],
        },
        schema={"source": pl.String, "sub_task": pl.String, "options": pl.List(pl.String), "question": pl.String},
    )
    return _work(chosen.join(per_source, on="source", how="inner").with_columns(
        pl.lit(DOMINANT_EMOTION.name).alias("task"),
        pl.lit(DOMINANT_TEMPLATE.template_id).alias("template_id"),
        pl.col("label").alias("answer"),
    ))


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
    images = _decodable(manifest)
    work = pl.concat(
        [
            ranking_rows(mapped_labels, images, config),
            vad_rows(vad_scores, images, seed, config),
            dominant_rows(raw_annotations, images, seed, config),
        ],
        how="vertical",
    )
    per_source = {s: source_inputs(inputs, s) for s in work["source"].unique().to_list()}
    ids, provenance = [], []
    for task, sub_task, template_id, source, image_id, answer, origin, words in work.select(
        "task", "sub_task", "template_id", "source", "image_id", "answer", "vad_origin", "n_lexicon_words"
    ).iter_rows():
        ids.append(row_id(task, sub_task, template_id, [f"{source}/{image_id}"], answer))
        record = {"code": CODE_ID, "inputs": per_source[source], "seed": seed}
        if origin is not None:  # a VAD row: where its score comes from
            record |= {"vad_origin": origin, "n_lexicon_words": words}
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
