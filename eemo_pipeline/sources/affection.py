"""Affection: one CSV of free-text emotion explanations, one row per (annotator, image) utterance.

Files (under the source root):

* ``affection_raw_public_version_0.csv``: columns ``workerid, utterance, emotion, dataset, image_name``.
* or a preprocessed variant, which adds ``utterance_spelled, tokens, tokens_len, tokens_encoded, split``.

Which file is read: the raw file when it is present (it is the published, complete release); otherwise the
single ``*preprocessed*.csv`` in the root (its ``split`` column is kept). Two or more preprocessed files and
no raw file is ambiguous and raises ``SourceFormatError``; the reader never merges files.

Images are not shipped with the CSV: an image is keyed by (``dataset``, ``image_name``) and expected at
``<dataset>/<image_name>`` under the root. Nothing is appended to ``image_name``; names without an image
suffix stay as they are and the image manifest matches them by stem.

Each row becomes one ``label_choice`` fact (label = ``emotion``, value 1, annotator = ``workerid``,
text = ``utterance``). Utterances may hold commas, quotes and newlines inside quoted fields; line numbers
count the newlines of the free-text columns (``utterance``, and ``utterance_spelled`` when present) so that
quarantine records point at the row's first physical line (a newline inside another column would shift the
lines after it). An empty utterance is kept (the comment is optional). A row without ``emotion``, ``dataset``
or ``image_name``, or with a ``dataset`` outside the five Affection subsets, is rejected here with the reason
named, as is a row with a control character in a cell and a last row cut short (on evidence,
``cut_last_record``); an emotion outside the nine ArtEmis emotions is quarantined by validation. An image's
utterances are its vote distribution: validation quarantines all of them when one is rejected
(``record_images``). Line ends are LF whatever the file used, inside quoted utterances too. A truncation inside a quoted field
leaves the CSV undelimitable and raises ``SourceFormatError``. A worker's second row for the same image is
dropped when it repeats the first exactly and quarantines both when its emotion or utterance differs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eemo_pipeline.sources.base import (
    CUT_REASON,
    SourceFormatError,
    SourceRead,
    canonical_paths,
    clean_header,
    control_characters,
    cut_last_record,
    line_numbers,
    optional_file,
    read_csv_text,
    record_images,
    rejects,
    repeated_records,
    require_columns,
    require_rows,
)
from eemo_pipeline.sources.sample_images import write_image

RAW_FILE = "affection_raw_public_version_0.csv"
PREPROCESSED_GLOB = "*preprocessed*.csv"
COLUMNS = ["workerid", "utterance", "emotion", "dataset", "image_name"]
DATASETS = (
    "coco_affective",
    "visual_genome_affective",
    "flickr30k_affective",
    "you_aaai_affective",
    "emotional_machines_affective",
)
_REQUIRED = ("emotion", "dataset", "image_name")


def source_file(root: Path) -> Path:
    """The CSV to read: the raw release if present, else the one preprocessed CSV (see module docstring)."""
    raw = optional_file(root, RAW_FILE)
    if raw is not None:
        return raw
    candidates = sorted(p for p in root.glob(PREPROCESSED_GLOB) if optional_file(root, p.name))
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = ", ".join(p.name for p in candidates)
        raise SourceFormatError(root / RAW_FILE, f"file not found, and several preprocessed CSVs could replace it ({names}); keep one")
    raise SourceFormatError(root / RAW_FILE, f"file not found; expected Affection's CSV ({RAW_FILE} or a single {PREPROCESSED_GLOB})")


def _missing(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column) == "")


def read(root: Path) -> SourceRead:
    path = source_file(root)
    relative = path.relative_to(root).as_posix()
    table = read_csv_text(path)
    table = clean_header(table, path, lambda c: c.strip().lstrip("\ufeff").strip())
    require_columns(table, COLUMNS, path)
    has_split = "split" in table.columns
    native = table.columns
    # Free text is where quoted newlines occur (the preprocessed file repeats it as utterance_spelled).
    multiline = [c for c in ("utterance", "utterance_spelled") if c in native]
    table = table.with_columns(
        line_numbers(table, first_line=2, multiline=multiline).alias("source_line"),
        control_characters(table, native).alias("_control"),  # before trimming, which drops some of them
        *(pl.col(c).str.strip_chars() for c in (*_REQUIRED, "workerid")),
    )
    # Blank lines parse as all-null rows: they are no record at all. (Filters here run only where something is
    # filtered: this is the largest source, and every copy of it counts against the memory goal.)
    blank = pl.all_horizontal(pl.col(native).is_null())
    if table.select(blank.any()).item():
        table = table.filter(~blank)
    require_rows(table, path)
    table = canonical_paths(table, "image_name", "_image_name")  # the record keeps the name as written
    checks = [(pl.col("_control").is_not_null(), pl.col("_control"))]
    checks += [(_missing(c), pl.lit(f"missing {c}")) for c in _REQUIRED]
    checks += [
        (
            ~_missing("dataset") & ~pl.col("dataset").is_in(DATASETS),
            pl.format("unknown dataset '{}' (expected one of {})", pl.col("dataset"), pl.lit(", ".join(DATASETS))),
        ),
        (cut_last_record(table, path), pl.lit(CUT_REASON)),
    ]
    is_bad = pl.any_horizontal([check for check, _ in checks])
    record_columns = COLUMNS + (["split"] if has_split else [])
    image = pl.col("dataset") + "/" + pl.col("_image_name")
    rejected = table.filter(is_bad)
    # Reasons are spelled out for the rejected rows only: the valid ones just need the boolean.
    bad = rejected.select(
        pl.lit(relative).alias("file"),
        pl.col("source_line").alias("line"),
        pl.concat_str([pl.when(check).then(reason) for check, reason in checks], separator="; ", ignore_nulls=True).alias("reason"),
        pl.struct(record_columns).struct.json_encode().alias("record"),
    )
    images = [record_images(rejected, relative, image)]
    if rejected.height:
        table = table.filter(~is_bad)
    # One utterance per annotator and image: a second one with another emotion or text is a conflict.
    keyed = table.with_columns(image.alias("image_id"))
    table, repeats = repeated_records(keyed, ["image_id", "workerid"], ["emotion", "utterance"], relative, record_columns)
    if repeats:
        images.append(record_images(keyed.filter(pl.col("source_line").is_in([r["line"] for r in repeats])), relative))
    del keyed
    rows = table.select(
        pl.col("image_id"),
        pl.col("image_id").alias("image_path"),
        (pl.col("split").str.strip_chars() if has_split else pl.lit(None, pl.String)).alias("split"),
        pl.col("workerid").alias("annotator"),
        pl.lit("label_choice").alias("measure"),
        pl.col("emotion").alias("label"),
        pl.lit(1.0).alias("value"),
        pl.when(pl.col("utterance") != "").then(pl.col("utterance")).alias("text"),
        pl.lit(relative).alias("source_file"),
        pl.col("source_line"),
    )
    del table
    empty = rejects()
    bad = pl.concat([empty, bad.cast(empty.schema), rejects(repeats)], how="vertical")
    return SourceRead(rows=rows, rejects=bad.sort("line", maintain_order=True),
                      record_images=pl.concat(images, how="vertical"))


# (dataset, image_name, image index, [(workerid, emotion, utterance)]). Utterances carry the CSV quirks of
# the real file: commas, doubled quotes and a newline inside quoted fields, and one empty utterance.
_SAMPLE = [
    ("coco_affective", "COCO_train2014_000000000036.jpg", 0, [
        ("w01", "contentment", "The girl smiles under her umbrella, calm and safe."),
        ("w02", "amusement", 'Her "umbrella face" is funny.'),
        ("w03", "contentment", "It feels like a lazy afternoon\nwith nothing to worry about."),
    ]),
    ("coco_affective", "COCO_train2014_000000000049.jpg", 3, [
        ("w01", "excitement", "Horses running on the road, lots of energy!"),
        ("w04", "fear", "The horse might kick someone."),
        ("w05", "awe", ""),
    ]),
    ("visual_genome_affective", "2343729.jpg", 4, [
        ("w02", "sadness", "An empty street, it looks abandoned."),
        ("w06", "something else", "I feel indifferent; it's just a street."),
        ("w07", "sadness", "Lonely, grey and cold."),
        ("w08", "contentment", "Quiet streets are peaceful."),
    ]),
    ("visual_genome_affective", "2360551.jpg", 7, [
        ("w03", "disgust", "Trash everywhere, \"gross\" is the word."),
        ("w09", "anger", "People should not litter like this."),
        ("w10", "disgust", "It smells bad just looking at it."),
    ]),
    ("flickr30k_affective", "1000092795.jpg", 8, [
        ("w04", "amusement", "Two guys goofing around, one of them, \"the clown\", is laughing."),
        ("w05", "excitement", "A party is about to start."),
        ("w11", "amusement", "The hair is hilarious."),
    ]),
    ("flickr30k_affective", "10002456.jpg", 11, [
        ("w06", "awe", "Workers high up on a building.\nBrave people."),
        ("w07", "fear", "One slip and they fall."),
        ("w12", "awe", "The height is incredible."),
        ("w13", "bliss", "So happy for them."),  # 'bliss' is no ArtEmis emotion: quarantined
    ]),
    ("you_aaai_affective", "amusement_0042.jpg", 12, [
        ("w01", "amusement", "A dog in a costume, how silly."),
        ("w08", "contentment", "Cute and cosy."),
        ("w09", "amusement", "I laughed out loud."),
    ]),
    ("you_aaai_affective", "fear_0107", 15, [  # no suffix: the manifest matches the image by stem
        ("w02", "fear", "A dark alley at night, someone could be hiding."),
        ("w10", "fear", "Creepy."),
        ("w14", "sadness", "Looks like a place where bad things happened."),
    ]),
    ("emotional_machines_affective", "em_000318.jpg", 16, [
        ("w03", "excitement", "Fireworks over the city, loud and bright."),
        ("w11", "awe", "The colors, the size, wow."),
        ("w12", "excitement", "New year vibes!"),
    ]),
    ("emotional_machines_affective", "em_000774.jpg", 19, [
        ("w05", "anger", "A man yelling at a child, unacceptable."),
        ("w13", "sadness", "The child looks scared, \"why?\" she asks."),
        ("w14", "anger", "Makes me furious."),
        ("w15", "fear", "Things could get violent."),
    ]),
    ("coco_affective", "COCO_train2014_000000000061.jpg", 20, [
        ("w06", "contentment", "Sheep grazing in a green field."),
        ("w15", "contentment", "Peaceful countryside."),
        ("w16", "awe", "The landscape is vast,\nthe sky is huge."),
    ]),
    ("flickr30k_affective", "1001773457.jpg", 23, [
        ("w07", "amusement", "Kids making faces at the camera."),
        ("w16", "excitement", "They are having so much fun, I want to join!"),
        ("w17", "amusement", "Silly, 'cheesy' grins."),
    ]),
]


def _csv_cell(text: str) -> str:
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_sample(root: Path) -> None:
    """A small Affection in its native layout: 12 images with 3-4 utterances each (commas, doubled quotes,
    newlines inside quoted utterances, one empty utterance), one unknown emotion (quarantined) and an image
    name without a suffix; images written at ``<dataset>/<image_name>`` (``.jpg`` added on disk only)."""
    lines = [",".join(COLUMNS)]
    for dataset, image_name, index, utterances in _SAMPLE:
        for workerid, emotion, utterance in utterances:
            lines.append(",".join(_csv_cell(c) for c in (workerid, utterance, emotion, dataset, image_name)))
        on_disk = image_name if Path(image_name).suffix else f"{image_name}.jpg"
        write_image(root / dataset / on_disk, index)
    root.mkdir(parents=True, exist_ok=True)
    (root / RAW_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
