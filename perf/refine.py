"""Label refinement at full size: VAD synthesis over Affection-sized comments (526,749 utterances) and
label mapping over 122k images (the size of EEmoDB-QA's image pool).

Each timing runs in a fresh process (wall time of the step alone; peak memory is the process's VmHWM, input
loading included). Targets on a 2-core machine: VAD under 10 s, mapping under 2 s.

    .venv/bin/python perf/refine.py [--rows N] [--repeats N]

``main`` runs one timing block per step; more blocks (the label mapping) append to ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf.measure import measure  # noqa: E402
from perf.synthetic import AFFECTION_ROWS, write_affection_csv  # noqa: E402

VAD_TARGET_S = 10.0
MAPPING_TARGET_S = 2.0
MAPPING_IMAGES = 122_000

_VAD_SETUP = """
import polars as pl
from eemo_pipeline.vad.lexicon import load_lexicon
from eemo_pipeline.vad.synthesis import synthesize_vad
lexicon = load_lexicon()
texts = pl.read_csv(CSV, columns=["dataset", "image_name", "utterance"]).select(
    (pl.col("dataset") + "/" + pl.col("image_name")).alias("image_id"), pl.col("utterance").alias("text"))
"""
_VAD_STEP = """
scores = synthesize_vad(texts, lexicon)
RESULT = {"texts": texts.height, "images": scores.height,
          "words": int(scores["n_lexicon_words"].sum()), "unscored": int(scores["valence"].null_count())}
"""


# Canonical label rows for MAPPING_IMAGES images: ArtEmis choices (5 per image, distribution rule) and
# EMOTIC selections (3 annotators choosing 1-3 categories, progressive rule).
_MAPPING_SETUP = """
import numpy as np, polars as pl
from eemo_pipeline.contracts import table_contract
from eemo_pipeline.labels.mapping import map_labels
from eemo_pipeline.labels.taxonomy import mapping_table
images = IMAGES
rng = np.random.default_rng(0)
table = mapping_table()
def labels_of(taxonomy):
    return np.array(table.filter(pl.col("taxonomy") == taxonomy)["label"].to_list())
def frame(image, label, annotator, subject):
    return table_contract("raw_annotations").conform(pl.DataFrame({
        "source": "bench", "image_id": pl.Series(image).cast(pl.String), "measure": "label_choice",
        "label": label, "value": 1.0, "annotator": pl.Series(annotator).cast(pl.String), "subject": subject,
        "source_file": "bench.csv", "source_line": np.arange(len(image)) + 2}))
artemis = labels_of("artemis9")
choices = frame(np.repeat(np.arange(images), 5), artemis[rng.integers(0, len(artemis), images * 5)],
                np.tile(np.arange(5), images), None)
emotic = labels_of("emotic26")
per_selection = rng.integers(1, 4, images * 3)
rows = int(per_selection.sum())
selection = np.repeat(np.arange(images * 3), per_selection)
selections = frame(selection // 3, emotic[rng.integers(0, len(emotic), rows)], selection % 3, np.zeros(rows, np.int32))
"""
_MAPPING_STEP = """
start = time.perf_counter()
distribution = map_labels("affection", choices, table)
middle = time.perf_counter()
progressive = map_labels("emotic", selections, table)
RESULT = {"images": images, "choices": choices.height, "selections_rows": selections.height,
          "distribution_s": middle - start, "progressive_s": time.perf_counter() - middle,
          "ranked": distribution.stats["ranked"] + progressive.stats["ranked"]}
"""


def bench_vad(rows: int, csv: Path | None = None, repeats: int = 3) -> dict[str, float]:
    """Time ``synthesize_vad`` over ``rows`` generated Affection comments with the real Warriner lexicon."""
    with tempfile.TemporaryDirectory() as folder:
        if csv is None:
            csv = write_affection_csv(Path(folder) / "affection_raw_public_version_0.csv", rows=rows)
        figures = measure(_VAD_STEP, _VAD_SETUP, {"CSV": str(csv)}, repeats)
    print(
        f"vad synthesis: {figures['texts']:,} comments -> {figures['images']:,} images, "
        f"{figures['words']:,} lexicon words, {figures['unscored']:,} images without one"
    )
    print(f"  wall {figures['wall_s']:.2f} s (target < {VAD_TARGET_S:.0f} s), peak {figures['peak_mib']:.0f} MiB")
    print("  verdict:", "PASS" if figures["wall_s"] < VAD_TARGET_S else "MISS")
    return figures


def bench_mapping(rows: int, csv: Path | None = None, repeats: int = 3) -> dict[str, float]:
    """Time ``map_labels`` over 122k images, once per ranking rule (``rows`` and ``csv`` are unused)."""
    figures = measure(_MAPPING_STEP, _MAPPING_SETUP, {"IMAGES": MAPPING_IMAGES}, repeats)
    print(f"label mapping: {figures['images']:,} images per rule")
    print(f"  distribution rule ({figures['choices']:,} ArtEmis choices): {figures['distribution_s']:.2f} s")
    print(f"  progressive rule ({figures['selections_rows']:,} EMOTIC choices): {figures['progressive_s']:.2f} s")
    worst = max(figures["distribution_s"], figures["progressive_s"])
    print(f"  slowest {worst:.2f} s (target < {MAPPING_TARGET_S:.0f} s), peak {figures['peak_mib']:.0f} MiB")
    print("  verdict:", "PASS" if worst < MAPPING_TARGET_S else "MISS")
    return figures


# Timing blocks run by main(), in order: (name, function of (rows, csv, repeats)).
BENCHMARKS: list[tuple[str, Callable[..., dict[str, float]]]] = [("vad", bench_vad), ("mapping", bench_mapping)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=AFFECTION_ROWS)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--only", choices=[name for name, _ in BENCHMARKS], help="run a single timing block")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "affection_raw_public_version_0.csv"
        started = time.perf_counter()
        write_affection_csv(csv, rows=args.rows)
        print(f"generated {args.rows:,} Affection rows in {time.perf_counter() - started:.1f} s")
        for name, bench in BENCHMARKS:
            if args.only in (None, name):
                bench(args.rows, csv=csv, repeats=args.repeats)


if __name__ == "__main__":
    main()
