"""Emotion6: ``ground_truth.txt`` (TAB separated, bracketed header) and ``images/<keyword>/<n>.jpg``.

Each row gives valence and arousal on 1-9 and a probability per Ekman emotion plus neutral; the
folder is the search keyword used to collect the image, not its label. An image named on two lines is
one record when the lines agree (the repeat is dropped) and quarantined on both when they differ. A row with a
control character in a cell is rejected whole; a bad probability quarantines the image's whole row
(validation: no partial distribution is renormalised).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eemo_pipeline.sources.base import (
    CUT_REASON,
    SourceRead,
    canonical_paths,
    clean_header,
    control_characters,
    cut_last_record,
    line_numbers,
    read_csv_text,
    record_images,
    rejects,
    repeated_records,
    require_columns,
    require_file,
    require_rows,
)
from eemo_pipeline.sources.sample_images import write_corrupt_image, write_image

EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
GROUND_TRUTH = "ground_truth.txt"
_VALUES = ["valence", "arousal", *[f"prob. {e}" for e in EMOTIONS]]
_COLUMNS = ["image_filename", *_VALUES]


def read(root: Path) -> SourceRead:
    path = require_file(root, GROUND_TRUTH, "Emotion6's TAB-separated ground truth with a bracketed header")
    table = read_csv_text(path, separator="\t", quote_char=None)
    table = clean_header(table, path, lambda c: c.strip().strip("[]").strip())
    require_columns(table, _COLUMNS, path)
    table = table.with_columns(
        control_characters(table, table.columns).alias("_control"),  # before trimming, which drops some of them
        line_numbers(table, first_line=2).alias("source_line"),
        pl.col("image_filename").str.strip_chars().alias("image_id"),
        pl.col(_VALUES).str.strip_chars(),
    ).filter(~pl.all_horizontal(pl.col(_COLUMNS).is_null() | (pl.col(_COLUMNS).str.strip_chars() == "")))
    require_rows(table, path)
    table = canonical_paths(table, "image_id")
    no_name = pl.col("image_id").is_null() | (pl.col("image_id") == "")
    problem = (
        pl.when(cut_last_record(table, path)).then(pl.lit(CUT_REASON))
        .when(pl.col("_control").is_not_null()).then(pl.col("_control"))
        .when(no_name).then(pl.lit("row without an image file name"))
    )
    table = table.with_columns(problem.alias("_problem"))
    records = [
        {"file": GROUND_TRUTH, "line": row["source_line"], "reason": row["_problem"], "record": {c: row[c] for c in _COLUMNS}}
        for row in table.filter(pl.col("_problem").is_not_null()).iter_rows(named=True)
    ]
    images = record_images(table, GROUND_TRUTH)
    table, repeats = repeated_records(
        table.filter(pl.col("_problem").is_null()), ["image_id"], _VALUES, GROUND_TRUTH, _COLUMNS)
    measures = {"valence": "valence", "arousal": "arousal", **{f"prob. {e}": e for e in EMOTIONS}}
    long = table.unpivot(
        index=["image_id", "source_line"], on=list(measures), variable_name="column", value_name="value_text"
    ).with_columns(
        pl.col("column").replace_strict(measures).alias("label"),
    ).sort("source_line", maintain_order=True)
    is_prob = pl.col("column").str.starts_with("prob.")
    rows = long.with_columns(
        pl.when(is_prob).then(pl.lit("label_prob")).otherwise(pl.col("label")).alias("measure"),
        pl.when(is_prob).then(pl.col("label")).alias("label"),
        ("images/" + pl.col("image_id").str.replace_all(r"\\", "/")).alias("image_path"),
        pl.lit(GROUND_TRUTH).alias("source_file"),
    ).drop("column")
    return SourceRead(rows=rows, rejects=rejects(sorted(records + repeats, key=lambda r: r["line"])),
                      record_images=images)


# (keyword folder, valence, arousal, probabilities in EMOTIONS order); sums are off by up to 2e-6
# and some rows tie for the maximum, as in the real file.
_SAMPLE_ROWS = [
    ("anger", 3.1, 6.2, (0.412, 0.176, 0.118, 0.0, 0.176, 0.059, 0.059)),
    ("anger", 2.8, 5.9, (0.300, 0.300, 0.100, 0.0, 0.200, 0.050, 0.050)),
    ("disgust", 2.5, 5.4, (0.118, 0.529, 0.118, 0.0, 0.118, 0.059, 0.059)),
    ("fear", 3.0, 6.8, (0.0, 0.067, 0.6, 0.0, 0.133, 0.133, 0.067)),
    ("joy", 7.4, 5.2, (0.0, 0.0, 0.0, 0.766, 0.0, 0.117, 0.117)),
    ("joy", 6.9, 4.1, (0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.5)),
    ("sadness", 2.6, 3.9, (0.0, 0.0, 0.059, 0.0, 0.824, 0.0, 0.117)),
    ("surprise", 5.9, 6.1, (0.0, 0.0, 0.118, 0.353, 0.0, 0.471, 0.058)),
    ("neutral", 5.0, 2.9, (0.0, 0.059, 0.0, 0.176, 0.059, 0.0, 0.706)),
    ("sadness", 3.3, 4.4, (0.066667, 0.0, 0.133333, 0.0, 0.666668, 0.0, 0.133334)),
]


def write_sample(root: Path) -> None:
    """A small Emotion6 in its native layout, with a tie, sums off by 2e-6, one out-of-range valence
    (quarantined) and one truncated image (quarantined by the manifest)."""
    lines = ["\t".join(f"[{c}]" for c in _COLUMNS)]
    counters: dict[str, int] = {}
    for index, (keyword, valence, arousal, probs) in enumerate(_SAMPLE_ROWS):
        counters[keyword] = counters.get(keyword, 0) + 1
        name = f"{keyword}/{counters[keyword]}.jpg"
        if index == 3:
            valence = 9.6  # beyond the 1-9 scale
        lines.append("\t".join([name, f"{valence}", f"{arousal}", *(f"{p}" for p in probs)]))
        image = root / "images" / name
        if index == 8:
            write_corrupt_image(image, index)
        else:
            write_image(image, index)
    (root / GROUND_TRUTH).parent.mkdir(parents=True, exist_ok=True)
    (root / GROUND_TRUTH).write_text("\n".join(lines) + "\n", encoding="utf-8")
