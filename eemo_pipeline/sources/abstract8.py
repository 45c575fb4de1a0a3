"""Abstract-8 (Machajdik & Hanbury abstract paintings): ``ABSTRACT_groundTruth.csv`` plus the images.

The ground truth is a comma CSV quoted with single quotes: a header ``'<name>','Amusement','Anger','Awe',
'Content','Disgust','Excitement','Fear','Sad'`` (the first header cell is not relied upon: the first column
is the image file name, by position) and one row per image such as ``'abstract_0001.jpg',2,0,1,3,0,1,1,6``
holding how many annotators picked each emotion (0-13). Each cell becomes one ``label_vote`` fact with the
label spelled as in the header (``Content``, ``Sad``); image_id is the file name without its suffix.

Images (``abstract_XXXX.jpg``) sit in the root in the original archive (``testImages_abstract/``), but
copies often keep them in a subfolder. The reader lists the image files under the root once (recursively,
hidden folders skipped) and maps each name in the CSV to the shallowest file with the same name, else the
same stem with another image suffix; a name with no such file keeps its path as written (relative to the
root), so the image manifest reports it missing. Names holding a folder (``sub/x.jpg``, ``../x.jpg``) are
taken as written, never redirected, so path validation still sees them.

A vote outside 0..13 (``annotators`` in data_contracts/sources.yaml) or not a whole number is rejected
here (the contract has no upper bound for votes), naming the cell; validation then quarantines the image's
other votes with it (``record_images``: an image's votes are kept whole or not at all). A row with a control
character in a cell, or a last row cut short (on evidence, ``cut_last_record``), is rejected whole, and an
image named on two lines keeps one row when they agree and is quarantined on both when they differ (summed,
its votes would count more annotators than there were).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eemo_pipeline.contracts import source_facts
from eemo_pipeline.sources.base import (
    CUT_REASON,
    IMAGE_SUFFIXES,
    SourceFormatError,
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
    to_float,
)
from eemo_pipeline.sources.sample_images import write_image

GROUND_TRUTH = "ABSTRACT_groundTruth.csv"
EMOTIONS = ("Amusement", "Anger", "Awe", "Content", "Disgust", "Excitement", "Fear", "Sad")
_NAME = "_image_name"


def image_files(root: Path) -> pl.DataFrame:
    """Image files under ``root`` (hidden folders skipped): ``path`` relative to root, ``name``, ``stem``;
    shallowest first, then alphabetical, so the first match per name is the canonical one."""
    found = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    ]
    frame = pl.DataFrame({"path": found}, schema={"path": pl.String})
    return frame.with_columns(
        pl.col("path").str.split("/").list.last().alias("name"),
        pl.col("path").str.count_matches("/").alias("depth"),
    ).with_columns(
        pl.col("name").str.replace(r"\.[^.]*$", "").alias("stem"),
    ).sort("depth", "path")


def read(root: Path) -> SourceRead:
    path = require_file(root, GROUND_TRUTH, "Abstract-8's single-quoted CSV of vote counts per emotion")
    table = read_csv_text(path, quote_char="'")
    table = clean_header(table, path, lambda c: c.strip().lstrip("\ufeff").strip().strip("'").strip())
    if len(table.columns) < 2:
        raise SourceFormatError(
            path, f"expected an image name column then columns {list(EMOTIONS)}, found {table.columns}", line=1
        )
    first = table.columns[0]
    if first in EMOTIONS:
        raise SourceFormatError(
            path, f"the first column must hold image names, found emotion column {first!r}", line=1, column=1
        )
    table = table.rename({first: _NAME})
    require_columns(table, list(EMOTIONS), path)
    native = table.columns
    table = table.with_columns(line_numbers(table, first_line=2).alias("source_line")).filter(
        ~pl.all_horizontal(pl.col(native).is_null())
    )
    require_rows(table, path)
    table = table.with_columns(
        control_characters(table, native).alias("_control"),
        pl.col(_NAME).str.strip_chars().str.strip_chars("'").str.replace_all(r"\\", "/"),
        pl.col(list(EMOTIONS)).str.strip_chars(),
        cut_last_record(table, path).alias("_cut"),
    ).with_columns(
        pl.when(pl.col("_cut")).then(pl.lit(CUT_REASON)).otherwise(pl.col("_control")).alias("_whole"),
    )

    table = canonical_paths(table, _NAME)
    files = image_files(root)
    by_name = files.unique("name", keep="first", maintain_order=True).select(pl.col("name").alias(_NAME), pl.col("path").alias("_by_name"))
    by_stem = files.unique("stem", keep="first", maintain_order=True).select(pl.col("stem").alias("_stem"), pl.col("path").alias("_by_stem"))
    bare = ~pl.col(_NAME).str.contains("/")
    table = (
        table.with_columns(pl.col(_NAME).str.replace(r"\.[^./]*$", "").alias("_stem"))
        .join(by_name, on=_NAME, how="left", maintain_order="left")
        .join(by_stem, on="_stem", how="left", maintain_order="left")
        .with_columns(
            pl.when(bare).then(pl.coalesce("_by_name", "_by_stem", _NAME)).otherwise(pl.col(_NAME)).alias("image_path"),
            pl.when(pl.col(_NAME) != "").then(pl.col("_stem")).alias("image_id"),
        )
    )

    whole_bad = table.filter(pl.col("_whole").is_not_null()).select(
        pl.lit(GROUND_TRUTH).alias("file"),
        pl.col("source_line").alias("line"),
        pl.col("_whole").alias("reason"),
        pl.struct([pl.col(_NAME).alias("image_name"), *EMOTIONS]).struct.json_encode().alias("record"),
    )
    images = record_images(table, GROUND_TRUTH)
    # The same image on two lines: summing them would count more annotators than there were.
    table, repeats = repeated_records(
        table.filter(pl.col("_whole").is_null()).with_columns(pl.col(_NAME).alias("image_name")),
        ["image_id"], list(EMOTIONS), GROUND_TRUTH, ["image_name", *EMOTIONS],
    )
    long = table.unpivot(
        index=["image_id", "image_path", "source_line"], on=list(EMOTIONS), variable_name="label", value_name="value_text"
    )
    votes = to_float("value_text")
    annotators = source_facts("abstract8").annotators  # None: no documented upper bound
    above = votes > annotators if annotators is not None else pl.lit(False)
    reason = (
        pl.when(votes.is_not_null() & ((votes < 0) | above))
        .then(pl.format("{} vote {} outside 0..{}", pl.col("label"), pl.col("value_text").str.strip_chars(),
                        pl.lit("" if annotators is None else str(annotators))))
        .when(votes.is_not_null() & (votes != votes.round()))
        .then(pl.format("{} vote {} is not a whole number", pl.col("label"), pl.col("value_text").str.strip_chars()))
    )
    long = long.with_columns(
        reason.alias("_reason"),
        pl.lit("label_vote").alias("measure"),
        pl.lit(GROUND_TRUTH).alias("source_file"),
    ).sort("source_line", maintain_order=True)
    fact_bad = long.filter(pl.col("_reason").is_not_null()).select(
        pl.col("source_file").alias("file"),
        pl.col("source_line").alias("line"),
        pl.col("_reason").alias("reason"),
        pl.struct("image_id", "image_path", "measure", "label", "value_text").struct.json_encode().alias("record"),
    )
    rows = long.filter(pl.col("_reason").is_null()).drop("_reason")
    empty = rejects()
    bad = pl.concat([empty, whole_bad.cast(empty.schema), rejects(repeats), fact_bad.cast(empty.schema)], how="vertical")
    return SourceRead(rows=rows, rejects=bad.sort("line", maintain_order=True), record_images=images)


# (image number, votes in EMOTIONS order). Rows 3 and 7 tie for the most votes; row 9 has 14 votes for
# Sad, one more than there were annotators (quarantined); the images live in testImages_abstract/.
_SAMPLE = [
    (1, (2, 0, 1, 3, 0, 1, 1, 6)),
    (2, (0, 1, 0, 1, 5, 0, 4, 3)),
    (3, (4, 0, 2, 4, 0, 2, 1, 1)),
    (4, (1, 3, 0, 0, 2, 1, 5, 2)),
    (5, (0, 0, 7, 3, 0, 2, 1, 1)),
    (6, (1, 2, 1, 1, 1, 1, 2, 5)),
    (7, (3, 1, 0, 3, 1, 3, 1, 2)),
    (8, (0, 5, 0, 0, 4, 1, 2, 2)),
    (9, (1, 0, 0, 1, 0, 0, 2, 14)),
    (10, (2, 0, 3, 2, 0, 5, 0, 2)),
]
SAMPLE_FOLDER = "testImages_abstract"


def write_sample(root: Path) -> None:
    """A small Abstract-8: single-quoted CSV of 10 images (two with tied winners, one with an out-of-range
    vote of 14), images in the ``testImages_abstract/`` subfolder as in the original archive."""
    lines = ["'','" + "','".join(EMOTIONS) + "'"]
    for number, votes in _SAMPLE:
        name = f"abstract_{number:04d}.jpg"
        lines.append(f"'{name}'," + ",".join(str(v) for v in votes))
        write_image(root / SAMPLE_FOLDER / name, number * 3)
    root.mkdir(parents=True, exist_ok=True)
    (root / GROUND_TRUTH).write_text("\n".join(lines) + "\n", encoding="utf-8")
