"""What a task's EEmoDB-Assess row builder (``Task.assess_rows``) reads and returns.

``subsets/assess.py`` calls every registered task's builder with the same ``AssessInputs`` (the per-source
tables concatenated, the decodable images, the seed and the selection knobs) and adds what every row shares:
``row_id``, provenance, the image lists and the contract. A builder returns rows of ``ASSESS_ROW_SCHEMA``
(``assess_frame`` conforms a frame to it); the selection rule of each task is documented in its module.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from eemo_pipeline.labels.mapping import TIE_TOLERANCE

# Defaults where the paper publishes no number (its counts were lost in extraction).
VAD_BINS = 10  # equal-width bins on 0-1 (the uniform target of Fig. 2(d))
VAD_PER_BIN = 750  # target rows per (dimension, bin): at most 3 x 10 x 750 = 22,500 VAD rows
VAD_MIN_LEXICON_WORDS = 1  # a synthesized score needs at least one lexicon word
DEC_ANCHOR = 100  # classes with at most this many images are kept whole
DEC_CAP = 234  # upper bound per (source, class): 36,000 rows at full scale with the other defaults (perf/subsets.py)
DEC_EXCLUDED_ANSWERS: tuple[str, ...] = ("something else",)


@dataclass(frozen=True)
class AssessConfig:
    """The selection and balancing knobs of the tasks' row builders (``vad_*``: ``tasks/vad.py``; ``dec_*``:
    ``tasks/dominant_emotion.py``; ``tie_tolerance`` for every comparison of label weights); defaults are the
    module's named constants. A task without knobs needs nothing here."""

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


@dataclass(frozen=True)
class AssessInputs:
    """What every row builder gets: the per-source ``mapped_labels``, ``vad_scores`` and ``raw_annotations``
    concatenated (each with its ``source`` column), ``images`` (``source, image_id, image_path`` of every
    decodable manifest row: a row's image must be one of them), the ``seed`` of every draw
    (``frames.with_draw_key``) and the ``config``."""

    mapped_labels: pl.DataFrame
    vad_scores: pl.DataFrame
    raw_annotations: pl.DataFrame
    images: pl.DataFrame
    seed: int
    config: AssessConfig


ASSESS_ROW_SCHEMA: dict[str, pl.DataType] = {
    "task": pl.String(), "sub_task": pl.String(), "template_id": pl.String(), "question": pl.String(),
    "options": pl.List(pl.String()), "answer": pl.String(), "source": pl.String(), "image_id": pl.String(),
    "image_path": pl.String(), "provenance_facts": pl.String(),
}
"""A builder's rows: the contract's columns of one row (``data_contracts/eemodb_assess.yaml``; ``options`` null
for an open answer), the image as ``source, image_id, image_path``, and ``provenance_facts``: null, or a JSON
object merged into the row's provenance record (e.g. where a VAD score comes from)."""


def assess_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame``'s columns of ``ASSESS_ROW_SCHEMA`` in order and type; an absent one is null."""
    return frame.select([pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
                         for name, dtype in ASSESS_ROW_SCHEMA.items()])
