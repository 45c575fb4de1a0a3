"""EMOTIC: ``Annotations/Annotations.mat`` (MATLAB v5) or the common unofficial per-split CSV files.

Images live at ``<root>/<folder>/<filename>`` (``folder`` like ``mscoco/images``). The reader takes
``Annotations/Annotations.mat`` when it exists, else every ``*.csv`` under the root; with neither it
raises ``SourceFormatError``.

The ``.mat`` file holds top-level struct arrays ``train``, ``val`` and ``test``, one element per image
(``filename``, ``folder``, ``image_size{n_row,n_col}``, ``original_database{name}``, ``person[]``). A
person has ``body_bbox`` ``[x1 y1 x2 y2]``, ``gender``, ``age`` and its annotations: in ``train`` one
annotator (``annotations_categories.categories``, ``annotations_continuous.{valence,arousal,dominance}``
on 1-10), in ``val``/``test`` one struct per annotator in each of those fields plus ``combined_categories``
and ``combined_continuous``. It is loaded with ``squeeze_me=True, struct_as_record=False``, so a single
image, person or annotator loads as a bare struct and a single category as a bare string; ``_elements``
turns all of these back into lists.

The CSV variant (``Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age``,
one row per person, list cells as Python-literal strings parsed with ``ast.literal_eval``) holds, like
the converter that writes it, the single annotation of ``train`` rows and the *combined* annotation of
``val``/``test`` rows; the split is taken from the file name (``annot_arrs_train.csv``, ``val.csv``...).

Canonical rows, design choices:

- ``image_id`` = ``<split>/<folder>/<filename>`` (the split keeps an image listed in two splits apart;
  ``<folder>/<filename>`` when a CSV's name tells no split); ``image_path`` = ``<folder>/<filename>``,
  POSIX, not checked against the disk (validation quarantines paths that escape the root).
- ``subject``: the person's 0-based index within the image (for CSV: order of the image's rows in the file).
- ``annotator``: ``"0"``, ``"1"``, ... the annotator's position in the person's per-annotator arrays; the
  single train annotator is ``"0"`` (``TRAIN_ANNOTATOR``). Category and rating arrays are indexed
  separately, as the file stores them.
- Combined (aggregated) annotations of val/test have ``annotator`` null, as the contract asks of
  aggregated values: categories use measure ``label_combined``, ratings keep the names ``valence``,
  ``arousal``, ``dominance`` and carry ``"combined": true`` in ``attributes``.
- ``label_choice`` / ``label_combined`` rows have value 1.0 and the category as ``label``; a category
  repeated within one annotator's list is counted once.
- A missing rating (NaN, an empty array, an absent field) is emitted with value NaN, so validation
  quarantines it as "missing value" with its file and record number; nothing is dropped silently.
- ``attributes``: JSON with ``bbox``, ``gender``, ``age``, ``image_size``, ``original_database`` and,
  for the ``.mat``, ``record`` = the MATLAB address of the person, e.g. ``"val(2).person(1)"``.
- ``source_file``: ``Annotations/Annotations.mat`` or the CSV path relative to the root.
  ``source_line`` for the ``.mat`` is the 1-based record number of the image counted through the file's
  struct arrays in the order train, val, test (``train(i)`` is ``i``, ``val(j)`` is ``len(train) + j``,
  ``test(k)`` is ``len(train) + len(val) + k``): numbering within each split would give ``train(1)`` and
  ``val(1)`` the same key in the one file. The per-split address is in ``attributes.record``. For CSV
  it is the 1-based line (the header is line 1).

Unparseable values (a bounding box that is not four numbers, a category that is not text, a list cell
that is not a Python list, a control character in a CSV cell) reject the person (``.mat``) or the row (CSV)
into the quarantine, and validation quarantines the rest of the image with it (``record_images``: an image's
selections are kept whole or not at all); a CSV's last row cut short is rejected (on evidence,
``cut_last_record``).
A file that is not MATLAB v5 (a truncated one included), lacks the top-level structs or the required CSV
columns, or holds no image at all raises ``SourceFormatError`` naming the file.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.io
from scipy.io.matlab import mat_struct

from eemo_pipeline.sources.base import (
    CUT_REASON,
    SourceFormatError,
    SourceRead,
    control_characters,
    cut_last_record,
    line_numbers,
    optional_file,
    read_csv_text,
    read_file_bytes,
    rejects,
    require_columns,
    require_plain_header,
    require_rows,
)
from eemo_pipeline.sources.files import canonical_relative
from eemo_pipeline.sources.sample_images import write_image

ANNOTATIONS = "Annotations/Annotations.mat"
SPLITS: tuple[str, ...] = ("train", "val", "test")
RATINGS: tuple[str, ...] = ("valence", "arousal", "dominance")
TRAIN_ANNOTATOR = "0"  # the single annotator of a train person (and of a CSV row whose split is unknown)
CSV_COLUMNS = [
    "Index", "Folder", "Filename", "Image Size", "BBox", "Categorical_Labels", "Continuous_Labels", "Gender", "Age",
]
# Columns without which a CSV row carries no annotation; the others only feed ``attributes``.
CSV_REQUIRED = ["Folder", "Filename", "BBox", "Categorical_Labels", "Continuous_Labels"]
_RECORD_FIELDS = ("filename", "folder", "person")
_PERSON_FIELDS = ("body_bbox", "annotations_categories", "annotations_continuous")
_SPLIT_IN_NAME = re.compile(r"(?<![a-z])(train|val|test)(?:ing|idation)?(?![a-z])")

_ENTRY_SCHEMA = {
    "split": pl.String,
    "image_id": pl.String,
    "image_path": pl.String,
    "subject": pl.Int32,
    "annotator": pl.String,
    "combined": pl.Boolean,
    "categories": pl.List(pl.String),
    "has_ratings": pl.Boolean,
    "valence": pl.Float64,
    "arousal": pl.Float64,
    "dominance": pl.Float64,
    "attributes": pl.String,
    "source_file": pl.String,
    "source_line": pl.Int64,
}
_NO_RATINGS = (None, None, None)


class _Unparseable(ValueError):
    """A value inside one record that cannot be read; the record goes to the quarantine."""


def read(root: Path) -> SourceRead:
    root = Path(root)
    if optional_file(root, ANNOTATIONS) is not None:
        entries, bad, images = _read_mat(root)
    else:
        csvs = sorted(p for p in root.rglob("*.csv") if optional_file(root, p.relative_to(root).as_posix()))
        if not csvs:
            raise SourceFormatError(
                root,
                f"no EMOTIC annotations found; expected {ANNOTATIONS} (MATLAB v5) or *.csv files with columns "
                f"{','.join(CSV_COLUMNS)}",
            )
        entries, bad, images = _read_csvs(root, csvs)
    record_images = pl.DataFrame(images, schema={"file": pl.String, "line": pl.Int64, "image_id": pl.String})
    return SourceRead(rows=_facts(entries), rejects=rejects(bad), record_images=record_images)


# --- long format (shared by both variants) -------------------------------------------------------------


def _facts(entries: pl.DataFrame) -> pl.DataFrame:
    """One row per chosen category and per rating of every annotation entry (a person x annotator)."""
    index = ["split", "image_id", "image_path", "subject", "annotator", "attributes", "source_file", "source_line"]
    entries = entries.with_row_index("_entry")
    labels = (
        entries.select(
            "_entry",
            *index,
            pl.when(pl.col("combined"))
            .then(pl.lit("label_combined"))
            .otherwise(pl.lit("label_choice"))
            .alias("measure"),
            pl.col("categories").list.unique(maintain_order=True).alias("label"),
        )
        .explode("label")
        .filter(pl.col("label").is_not_null())
        .with_columns(pl.lit(1.0).alias("value"))
    )
    ratings = (
        entries.filter(pl.col("has_ratings"))
        .unpivot(on=list(RATINGS), index=["_entry", *index], variable_name="measure", value_name="value")
        .with_columns(pl.lit(None, pl.String).alias("label"), pl.col("value").fill_null(float("nan")))
    )
    columns = ["_entry", *index, "measure", "label", "value"]
    facts = pl.concat([labels.select(columns), ratings.select(columns)], how="vertical")
    return facts.sort("_entry", maintain_order=True).drop("_entry")


def _entry(
    split: str | None,
    image_path: str,
    subject: int,
    annotator: str | None,
    categories: list[str] | None,
    ratings: tuple[float | None, ...],
    attributes: dict[str, Any],
    source_file: str,
    source_line: int,
    combined: bool = False,
) -> dict[str, Any]:
    """One annotation entry: a person's categories and ratings by one annotator (or combined: annotator null)."""
    if combined:
        annotator, attributes = None, {**attributes, "combined": True}
    return {
        "split": split,
        "image_id": _image_id(split, image_path),
        "image_path": image_path,
        "subject": subject,
        "annotator": annotator,
        "combined": combined,
        "categories": categories,
        "has_ratings": ratings is not _NO_RATINGS,
        **dict(zip(RATINGS, ratings)),
        "attributes": json.dumps(attributes, ensure_ascii=False),
        "source_file": source_file,
        "source_line": source_line,
    }


def _entries_frame(entries: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(entries, schema=_ENTRY_SCHEMA)


def _image_path(folder: str, filename: str) -> str:
    folder = folder.replace("\\", "/").rstrip("/")
    filename = filename.replace("\\", "/")
    path = f"{folder}/{filename}" if folder else filename
    # One spelling per file (``base.canonical_paths``); one climbing out of the root keeps its own for validation.
    canonical = canonical_relative(path)
    return canonical or path


def _plain(number: float) -> float | int:
    """A number as JSON shows it best: whole numbers without a trailing ``.0``."""
    return int(number) if float(number).is_integer() else float(number)


# --- MATLAB file ---------------------------------------------------------------------------------------


def _load_mat(path: Path) -> dict[str, Any]:
    data = read_file_bytes(path)
    try:
        return scipy.io.loadmat(io.BytesIO(data), squeeze_me=True, struct_as_record=False)
    except NotImplementedError as error:  # MATLAB v7.3 files are HDF5
        raise SourceFormatError(path, f"unsupported MATLAB file ({error}); expected a MATLAB v5 .mat file") from error
    except Exception as error:  # scipy raises ValueError, TypeError, OSError, zlib errors ... on damaged files
        first = (str(error).strip().splitlines() or [""])[0]
        raise SourceFormatError(
            path, f"not a readable MATLAB v5 file ({type(error).__name__}: {first}); expected EMOTIC's Annotations.mat"
        ) from error


def _read_mat(root: Path) -> tuple[pl.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    path = root / ANNOTATIONS
    mat = _load_mat(path)
    missing = [split for split in SPLITS if split not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise SourceFormatError(
            path, f"missing top-level struct arrays {missing}; expected 'train', 'val' and 'test', found {found}"
        )
    entries: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    offset = 0
    for split in SPLITS:
        records = _elements(mat[split])
        if not all(isinstance(r, mat_struct) for r in records):
            raise SourceFormatError(path, f"top-level '{split}' is not a struct array; expected one struct per image")
        if records:
            absent = [f for f in _RECORD_FIELDS if f not in records[0]._fieldnames]
            if absent:
                raise SourceFormatError(
                    path, f"'{split}' lacks fields {absent}; expected image structs with fields {list(_RECORD_FIELDS)}"
                )
        for number, record in enumerate(records, start=1):
            _image_entries(split, record, f"{split}({number})", offset + number, entries, bad, images)
        offset += len(records)
    if offset == 0:
        raise SourceFormatError(path, "no data rows: 'train', 'val' and 'test' hold no image (emptied file?)")
    return _entries_frame(entries), bad, images


def _image_entries(
    split: str, record: mat_struct, where: str, line: int, entries: list[dict[str, Any]], bad: list[dict[str, Any]],
    images: list[dict[str, Any]],
) -> None:
    def reject(reason: str, **extra: Any) -> None:
        bad.append({"file": ANNOTATIONS, "line": line, "reason": reason, "record": {"split": split, **extra}})

    try:
        filename = _text(record.filename, "filename", required=True)
        folder = _text(record.folder, "folder") or ""
    except _Unparseable as error:
        reject(f"{where}: {error}", record=where)
        return
    image_path = _image_path(folder, filename)
    images.append({"file": ANNOTATIONS, "line": line, "image_id": _image_id(split, image_path)})
    image = {
        "image_size": _image_size(getattr(record, "image_size", None)),
        "original_database": _database(getattr(record, "original_database", None)),
    }
    persons = _elements(record.person)
    if not persons:
        reject(f"{where}: image has no annotated person", record=where, image_path=image_path)
    for subject, person in enumerate(persons):
        address = f"{where}.person({subject + 1})"
        try:
            entries += _person_entries(split, image_path, subject, person, {**image, "record": address}, line)
        except _Unparseable as error:
            reject(f"{address}: {error}", record=address, image_path=image_path, subject=subject)


def _person_entries(
    split: str, image_path: str, subject: int, person: Any, image: dict[str, Any], line: int
) -> list[dict[str, Any]]:
    if not isinstance(person, mat_struct):
        raise _Unparseable(f"person is {_describe(person)}, not a struct")
    fields = person._fieldnames
    absent = [f for f in _PERSON_FIELDS if f not in fields]
    if absent:
        raise _Unparseable(f"person lacks fields {absent}")
    attributes = {
        "bbox": _bbox(person.body_bbox),
        "gender": _text(getattr(person, "gender", None), "gender"),
        "age": _text(getattr(person, "age", None), "age"),
        **image,
    }
    categories = [_annotator_categories(a) for a in _elements(person.annotations_categories)]
    ratings = [_ratings(a, "annotations_continuous") for a in _elements(person.annotations_continuous)]
    has_combined = "combined_categories" in fields or "combined_continuous" in fields
    if not has_combined and not ratings:
        ratings = [(math.nan,) * len(RATINGS)]  # the single train annotator's ratings are missing: keep them visible
    rows = []
    for k in range(max(len(categories), len(ratings))):
        rows.append(
            _entry(
                split, image_path, subject, str(k),
                categories[k] if k < len(categories) else None,
                ratings[k] if k < len(ratings) else _NO_RATINGS,
                attributes, ANNOTATIONS, line,
            )
        )
    if has_combined:
        combined_categories = _strings(getattr(person, "combined_categories", None), "combined_categories")
        structs = _elements(getattr(person, "combined_continuous", None))
        if len(structs) > 1:
            raise _Unparseable(f"combined_continuous holds {len(structs)} structs, expected one")
        if structs:
            combined_ratings = _ratings(structs[0], "combined_continuous")
        else:  # no combined rating: missing when anybody rated the person, else nothing to combine
            combined_ratings = (math.nan,) * len(RATINGS) if ratings else _NO_RATINGS
        rows.append(
            _entry(
                split, image_path, subject, None, combined_categories, combined_ratings, attributes, ANNOTATIONS, line,
                combined=True,
            )
        )
    return rows


def _elements(value: Any) -> list[Any]:
    """The elements of a squeezed MATLAB value: arrays flattened, empties as [], a bare element as [it]."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [] if value.size == 0 else list(value.ravel())
    return [value]


def _describe(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any, what: str, required: bool = False) -> str | None:
    if isinstance(value, str) and value.strip():
        return str(value)
    if required or not (value is None or isinstance(value, str) or (isinstance(value, np.ndarray) and value.size == 0)):
        raise _Unparseable(f"{what} {_describe(value)} is empty or not text")
    return None


def _strings(value: Any, what: str) -> list[str]:
    items = _elements(value)
    wrong = [item for item in items if not isinstance(item, str)]
    if wrong:
        raise _Unparseable(f"{what} holds {_describe(wrong[0])}, not a category name")
    return [str(item) for item in items if item != ""]


def _annotator_categories(annotation: Any) -> list[str]:
    if isinstance(annotation, mat_struct):
        if "categories" not in annotation._fieldnames:
            raise _Unparseable("annotations_categories lacks the field 'categories'")
        return _strings(annotation.categories, "annotations_categories.categories")
    return _strings(annotation, "annotations_categories")


def _number(value: Any, what: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise _Unparseable(f"{what} {value!r} is not a number")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        if value.size == 0:
            return math.nan
        if value.size == 1:
            return float(value.item())
    raise _Unparseable(f"{what} {_describe(value)} is not a number")


def _ratings(annotation: Any, what: str) -> tuple[float, ...]:
    if not isinstance(annotation, mat_struct):
        raise _Unparseable(f"{what} {_describe(annotation)} is not a struct with {', '.join(RATINGS)}")
    return tuple(_number(getattr(annotation, name, np.array([])), f"{what}.{name}") for name in RATINGS)


def _bbox(value: Any) -> list[float | int]:
    array = value if isinstance(value, np.ndarray) else np.asarray([value], dtype=object)
    if array.dtype.kind not in "iuf" or array.size != 4 or not np.isfinite(array).all():
        raise _Unparseable(f"body_bbox {_describe(value)} is not four numbers [x1 y1 x2 y2]")
    return [_plain(v) for v in array.ravel().tolist()]


def _image_size(value: Any) -> dict[str, float | int] | None:
    if not isinstance(value, mat_struct):
        return None
    size = {}
    for name in ("n_row", "n_col"):
        try:
            number = _number(getattr(value, name, np.array([])), name)
        except _Unparseable:
            number = math.nan
        size[name] = None if math.isnan(number) else _plain(number)
    return size


def _database(value: Any) -> str | None:
    if isinstance(value, mat_struct):
        value = getattr(value, "name", None)
    return str(value) if isinstance(value, str) and value else None


# --- CSV variant ---------------------------------------------------------------------------------------


def split_from_name(name: str) -> str | None:
    """``train``/``val``/``test`` when the file name says so (``annot_arrs_val.csv``, ``testing.csv``), else None."""
    found = _SPLIT_IN_NAME.search(Path(name).stem.lower())
    return found.group(1) if found else None


def _image_id(split: str | None, image_path: str) -> str:
    return f"{split}/{image_path}" if split else image_path


def _read_csvs(root: Path, paths: list[Path]) -> tuple[pl.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    frames, bad, images = [], [], []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        table = read_csv_text(path)
        require_plain_header(table.columns, path)
        require_columns(table, CSV_REQUIRED, path)
        require_rows(table, path)
        split = split_from_name(path.name)
        table = table.with_columns(
            line_numbers(table, first_line=2, multiline=table.columns).alias("_line"),
            # Person within the image: order of the image's rows in the file (rejected rows keep their place).
            pl.int_range(pl.len(), dtype=pl.Int32).over(["Folder", "Filename"]).alias("_subject"),
            cut_last_record(table, path).alias("_cut"),
            control_characters(table, table.columns).alias("_control"),
        )
        entries = []
        for row in table.iter_rows(named=True):
            filename = (row["Filename"] or "").strip()
            if filename:
                images.append({"file": relative, "line": row["_line"],
                               "image_id": _image_id(split, _image_path(row["Folder"] or "", filename))})
            try:
                if row["_cut"]:
                    raise _Unparseable(CUT_REASON)
                if row["_control"]:
                    raise _Unparseable(row["_control"])
                entries.append(_csv_entry(row, split, relative))
            except _Unparseable as error:
                record = {k: v for k, v in row.items() if not k.startswith("_")}
                bad.append({"file": relative, "line": row["_line"], "reason": str(error), "record": record})
        frames.append(_entries_frame(entries))
    return pl.concat(frames, how="vertical"), bad, images


def _csv_entry(row: dict[str, Any], split: str | None, source_file: str) -> dict[str, Any]:
    filename = (row["Filename"] or "").strip()
    if not filename:
        raise _Unparseable("Filename is empty")
    bbox = _literal(row["BBox"], "BBox", numeric=True)
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_finite(v) for v in bbox):
        raise _Unparseable(f"BBox {row['BBox']!r} is not a list of four numbers [x1, y1, x2, y2]")
    categories = _literal(row["Categorical_Labels"], "Categorical_Labels")
    categories = [categories] if isinstance(categories, str) else categories
    if not isinstance(categories, (list, tuple)) or not all(isinstance(c, str) for c in categories):
        raise _Unparseable(f"Categorical_Labels {row['Categorical_Labels']!r} is not a list of category names")
    ratings = _literal(row["Continuous_Labels"], "Continuous_Labels", numeric=True)
    if isinstance(ratings, (list, tuple)) and len(ratings) == 0:
        ratings = [None] * len(RATINGS)  # no ratings at all: emitted as missing, never dropped
    if (
        not isinstance(ratings, (list, tuple))
        or len(ratings) != len(RATINGS)
        or not all(_number_or_none(v) for v in ratings)
    ):
        raise _Unparseable(
            f"Continuous_Labels {row['Continuous_Labels']!r} is not a list of three numbers "
            "[valence, arousal, dominance]"
        )
    size = None
    if (row.get("Image Size") or "").strip():
        size = _literal(row["Image Size"], "Image Size", numeric=True)
        if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_finite(v) for v in size):
            raise _Unparseable(f"Image Size {row['Image Size']!r} is not a list of two numbers")
        size = [_plain(v) for v in size]
    attributes = {
        "bbox": [_plain(v) for v in bbox],
        "gender": row.get("Gender"),
        "age": row.get("Age"),
        "image_size": size,
        "index": row.get("Index"),
    }
    combined = split in ("val", "test")  # val/test rows hold the combined annotation of the person
    return _entry(
        split,
        _image_path(row["Folder"] or "", filename),
        row["_subject"],
        TRAIN_ANNOTATOR,
        [c for c in categories if c != ""],
        tuple(math.nan if v is None else float(v) for v in ratings),
        attributes,
        source_file,
        row["_line"],
        combined=combined,
    )


def _literal(text: str | None, column: str, numeric: bool = False) -> Any:
    """A Python-literal cell via ``ast.literal_eval`` (never ``eval``); bare ``nan`` in numeric cells is None."""
    if text is None or not text.strip():
        raise _Unparseable(f"{column} is empty")
    source = re.sub(r"\bnan\b", "None", text, flags=re.IGNORECASE) if numeric else text
    try:
        return ast.literal_eval(source.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise _Unparseable(f"{column} {text!r} is not a Python list ({type(error).__name__})") from error


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


# --- sample --------------------------------------------------------------------------------------------

# Train persons: (bbox, categories, (valence, arousal, dominance), gender, age). Val/test persons:
# (bbox, [(categories, ratings) per annotator], (combined categories, combined ratings), gender, age).
_SIZE = (96, 96)  # the sample images' (n_row, n_col)
_SAMPLE: dict[str, list[dict[str, Any]]] = {
    "train": [
        {
            "filename": "COCO_train2014_000000000036.jpg", "folder": "mscoco/images", "database": "mscoco",
            "persons": [
                ([10, 12, 60, 90], ["Engagement", "Happiness", "Pleasure"], (7, 6, 7), "Female", "Adult"),
                ([50, 20, 94, 95], ["Peace"], (6, 3, 7), "Male", "Teenager"),  # one category: loads as a bare string
            ],
        },
        {
            "filename": "frame_0f3lbfbvnpxnuet0.jpg", "folder": "framesdb/images", "database": "framesdb",
            "persons": [([5, 5, 80, 92], ["Sadness", "Suffering"], (math.nan, 4, 5), "Male", "Adult")],  # NaN
        },
        {
            "filename": "COCO_train2014_000000000077.jpg", "folder": "mscoco/images", "database": "mscoco",
            "persons": [([0, 8, 70, 96], ["Excitement", "Anticipation"], (11, 7, 6), "Male", "Kid")],  # valence 11
        },
    ],
    "val": [
        {
            "filename": "COCO_val2014_000000000139.jpg", "folder": "mscoco/images", "database": "mscoco",
            "persons": [
                (
                    [12, 4, 88, 90],
                    [
                        (["Engagement", "Happiness"], (6, 5, 7)),
                        (["Happiness"], (7, 6, 6)),
                        (["Engagement", "Confidence"], (6, 4, 7)),
                    ],
                    (["Engagement", "Happiness"], (6.3333, 5, 6.6667)),
                    "Female", "Adult",
                ),
            ],
        },
        {
            "filename": "frame_1e7a8m3vz0yq3kpd.jpg", "folder": "framesdb/images", "database": "framesdb",
            "persons": [
                (
                    [3, 10, 45, 90],
                    [(["Fear"], (3, 8, 3)), (["Fear", "Surprise"], (2, 9, 2))],
                    (["Fear"], (2.5, 8.5, 2.5)),  # one combined category: loads as a bare string
                    "Male", "Adult",
                ),
                (
                    [48, 12, 92, 94],
                    [(["Sympathy"], (4, 5, 5)), (["Sympathy", "Sadness"], (3, 4, 6))],
                    (["Sympathy", "Sadness"], (3.5, 4.5, 5.5)),
                    "Female", "Kid",
                ),
            ],
        },
    ],
    "test": [
        {
            "filename": "COCO_val2014_000000000285.jpg", "folder": "mscoco/images", "database": "mscoco",
            "persons": [
                (
                    [20, 15, 80, 95],
                    [
                        (["Pain", "Suffering"], (2, 6, 3)),
                        (["Suffering"], (3, 5, 4)),
                        (["Sadness", "Suffering"], (2, 5, 3)),
                    ],
                    (["Suffering", "Sadness", "Pain"], (2.3333, 5.3333, 3.3333)),
                    "Male", "Adult",
                ),
            ],
        },
    ],
}


def write_sample(root: Path) -> None:
    """A small EMOTIC in its native layout: ``Annotations/Annotations.mat`` with train (3 images, one with
    two persons, one single-category person, one NaN valence, one valence 11 outside 1-10), val (2 images)
    and test (1 image) with 2-3 annotators per person plus combined annotations, and the images."""
    root = Path(root)
    for index, image in enumerate(img for split in SPLITS for img in _SAMPLE[split]):
        write_image(root / image["folder"] / image["filename"], index)
    _write_mat(root / ANNOTATIONS, _SAMPLE)


def _write_mat(path: Path, splits: dict[str, list[dict[str, Any]]]) -> None:
    """Save images in EMOTIC's MATLAB layout (1xN struct arrays, nested structs, cells of strings).

    Each image is a dict with ``filename``, ``folder``, optional ``database`` and ``size`` (n_row, n_col)
    and ``persons``: train tuples ``(bbox, categories, ratings, gender, age)`` or val/test tuples
    ``(bbox, [(categories, ratings), ...], (combined categories, combined ratings), gender, age)``.
    A split missing from ``splits`` is left out of the file.
    """
    content = {
        split: _struct_array([_image_struct(split, image) for image in images]) for split, images in splits.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, content, do_compression=True, oned_as="row")


def _image_struct(split: str, image: dict[str, Any]) -> dict[str, Any]:
    n_row, n_col = image.get("size", _SIZE)
    return {
        "filename": image["filename"],
        "folder": image["folder"],
        "image_size": _struct_array([{"n_row": float(n_row), "n_col": float(n_col)}]),
        "original_database": _struct_array([{"name": image.get("database", "mscoco")}]),
        "person": _struct_array([_person_struct(split, person) for person in image["persons"]]),
    }


def _person_struct(split: str, person: tuple[Any, ...]) -> dict[str, Any]:
    if split == "train":
        bbox, categories, ratings, gender, age = person
        return {
            "body_bbox": np.asarray([bbox], dtype=float),
            "annotations_categories": _struct_array([{"categories": _cell(categories)}]),
            "annotations_continuous": _struct_array([_ratings_struct(ratings)]),
            "gender": gender,
            "age": age,
        }
    bbox, annotators, (combined_categories, combined_ratings), gender, age = person
    return {
        "body_bbox": np.asarray([bbox], dtype=float),
        "annotations_categories": _struct_array([{"categories": _cell(c)} for c, _ in annotators]),
        "combined_categories": _cell(combined_categories),
        "annotations_continuous": _struct_array([_ratings_struct(r) for _, r in annotators]),
        "combined_continuous": _struct_array([_ratings_struct(combined_ratings)]),
        "gender": gender,
        "age": age,
    }


def _ratings_struct(ratings: tuple[float, ...]) -> dict[str, float]:
    return {name: float(value) for name, value in zip(RATINGS, ratings)}


def _struct_array(records: list[dict[str, Any]]) -> np.ndarray:
    """A 1xN MATLAB struct array; every record has the same fields in the same order."""
    fields = list(records[0]) if records else []
    array = np.empty((1, len(records)), dtype=[(name, object) for name in fields] or [("_", object)])
    for i, record in enumerate(records):
        for name in fields:
            array[0, i][name] = record[name]
    return array


def _cell(items: list[Any]) -> np.ndarray:
    """A 1xN MATLAB cell array."""
    array = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        array[0, i] = item
    return array


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] = CSV_COLUMNS) -> None:
    """Write the unofficial CSV variant; list values are written as Python lists (``str(list)``), as the
    converter that made the variant does, and strings are written as given (to plant malformed cells)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for index, row in enumerate(rows):
            values = {"Index": index, **row}
            cells = (values.get(column, "") for column in columns)
            writer.writerow([str(list(v)) if isinstance(v, (list, tuple)) else v for v in cells])
