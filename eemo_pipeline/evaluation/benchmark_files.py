"""What every benchmark reader shares: the items frame (``ITEM_SCHEMA``), the format error that names file and
row, where a benchmark's root is, and the small checked steps of reading a native file (JSON, required fields,
image paths under the root, the test file to read, EEmo-Bench's option dicts).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path, PureWindowsPath
from typing import Any

import polars as pl

from eemo_pipeline.settings import root_variable

ITEM_SCHEMA: dict[str, pl.DataType] = {
    "benchmark": pl.String(),      # eemo_bench, artphoto, artemis, uniaa, aesbench
    "item_id": pl.String(),        # unique within the benchmark
    "task": pl.String(),           # a registry task (tasks/registry.py) or a benchmark-only one (runner.py)
    "carrier": pl.String(),        # single or pair (number of images)
    "images": pl.List(pl.String()),  # absolute paths, in the order shown to the model
    "question": pl.String(),       # the benchmark's question text (null for ranking, vad, dominant_emotion)
    "option_keys": pl.List(pl.String()),   # option letters, in order
    "option_texts": pl.List(pl.String()),  # option texts, aligned with option_keys
    "answer": pl.String(),         # letter (choice), reference text (description), label (dominant); null if unknown
    "question_type": pl.String(),  # Yes-or-No / What/How / Open_ended (EEmo-Bench), yes_no/what/how (UNIAA), ...
    "dimension": pl.String(),      # perceptual or describing dimension, UNIAA category, AesE empathy dimension
    "concern": pl.String(),        # EEmo-Bench question concern
    "category": pl.String(),       # EEmo-Bench content category
    "labels": pl.List(pl.String()),   # label set for dominant_emotion, candidates for ranking
    "ranking": pl.List(pl.String()),  # ground-truth top-3 ranking (ranking task)
    "valence": pl.Float64(),       # ground truth on 0-1 (vad task)
    "arousal": pl.Float64(),
    "dominance": pl.Float64(),
    "source_file": pl.String(),
    "source_row": pl.String(),
}
"""The items frame every reader returns (see the comments for what each column holds)."""

BENCHMARKS = ("eemo_bench", "artphoto", "artemis", "uniaa", "aesbench")


class BenchmarkFormatError(ValueError):
    """A benchmark file or record that breaks its native format; the message names the file and row."""

    def __init__(self, file: Path | str, row: Any, reason: str):
        self.file, self.row, self.reason = str(file), row, reason
        where = f"{file}" if row is None else f"{file}, row {row}"
        super().__init__(f"{where}: {reason}")


def benchmark_root(benchmark: str, root: str | Path | None) -> Path:
    """The root folder of ``benchmark`` (the run config's, else the settings' ``EEMO_<BENCHMARK>_ROOT``, as the caller
    found it); ``BenchmarkFormatError`` naming the variable when there is none or it is no folder."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    variable = root_variable(benchmark)
    if not root:
        raise BenchmarkFormatError(variable, None, f"no root for {benchmark}: set {variable} or pass a root")
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkFormatError(root, None, f"the {benchmark} root is not a folder")
    return root


def items_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows as the items frame: a column a row lacks is null (an empty list for list columns)."""
    defaults = {name: [] if isinstance(dtype, pl.List) else None for name, dtype in ITEM_SCHEMA.items()}
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=ITEM_SCHEMA)


def load_json(path: Path) -> Any:
    """The JSON document at ``path`` (a BOM is allowed); BenchmarkFormatError when absent or invalid."""
    if not path.is_file():
        raise BenchmarkFormatError(path, None, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchmarkFormatError(path, None, f"not valid JSON ({error})") from None


def require_fields(record: Any, keys: tuple[str, ...], file: Path, row: Any) -> None:
    """``record`` is an object with every one of ``keys`` set (not null, not empty)."""
    if not isinstance(record, dict):
        raise BenchmarkFormatError(file, row, f"expected an object, got {type(record).__name__}")
    missing = [key for key in keys if record.get(key) in (None, "")]
    if missing:
        raise BenchmarkFormatError(file, row, f"missing {', '.join(missing)}")


def local_image(root: Path, values: str | tuple[str, ...], file: Path, row: Any) -> str:
    """The first of ``values`` (relative paths, possibly with Windows separators such as
    ``./test_dominant_images\\00000.jpg``) that exists under ``root``."""
    values, tried = (values,) if isinstance(values, str) else values, []
    for value in values:
        relative = PureWindowsPath(value.strip()).as_posix() if "\\" in value else value.strip()
        path = (root / relative.removeprefix("./")).resolve()
        if not path.is_relative_to(root.resolve()):
            raise BenchmarkFormatError(file, row, f"image path {value!r} escapes the root")
        if path.is_file():
            return str(path)
        tried.append(str(path))
    raise BenchmarkFormatError(file, row, f"image {' / '.join(map(repr, values))} not found at {' or '.join(tried)}")


def chosen_file(root: Path, file: str | Path | None, defaults: tuple[str, ...]) -> Path | None:
    """The file a reader reads: ``file`` (relative to ``root`` or absolute) when given, else the first of
    ``defaults`` present in ``root`` (None when none is)."""
    if file is not None:
        path = root / file
        if not path.is_file():
            raise BenchmarkFormatError(path, None, "file not found")
        return path
    return next((root / name for name in defaults if (root / name).is_file()), None)


def parse_options_dict(text: Any, file: Path, row: Any) -> dict[str, str]:
    """EEmo-Bench options: a Python dict repr string (``"{'A': 'No.', 'B': 'Yes.'}"``), read with
    ``ast.literal_eval`` (never ``eval``); a real JSON object is accepted too."""
    if isinstance(text, dict):
        value = text
    else:
        try:
            value = ast.literal_eval(str(text))
        except (ValueError, SyntaxError) as error:
            raise BenchmarkFormatError(file, row, f"options are not a dict literal: {text!r} ({error})") from None
    if not isinstance(value, dict) or not value:
        raise BenchmarkFormatError(file, row, f"options are not a non-empty dict: {text!r}")
    return {str(key).strip(): str(option).strip() for key, option in value.items()}
