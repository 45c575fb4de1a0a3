"""What every benchmark reader shares: the items frame (``ITEM_SCHEMA``), the format error that names file and
row, where a benchmark's root is, and the small checked steps of reading a native file (JSON, required fields,
image paths under the root, the test file to read, EEmo-Bench's option dicts).
"""

from __future__ import annotations

import ast
import json
import os
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
    """Rows as the items frame: a column a row lacks is null (an empty list for list columns). An ``item_id``
    repeated within a benchmark is a record listed twice (the same image, artwork or question id): a
    ``BenchmarkFormatError`` names the repeat's file and row and the first one's, never an item counted twice."""
    first: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        key = (row.get("benchmark"), row.get("item_id"))
        if key in first:
            earlier = first[key]
            where = ("" if earlier.get("source_file") == row.get("source_file")
                     else f"{earlier.get('source_file')}, ") + f"row {earlier.get('source_row')}"
            raise BenchmarkFormatError(row.get("source_file"), row.get("source_row"),
                                       f"item {row.get('item_id')!r} repeats the one of {where}")
        first[key] = row
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


def text_field(record: dict[str, Any], key: str, file: Path, row: Any) -> str:
    """``record[key]`` stripped: a string with text (a number, list or object there is a damaged record, not a
    text to write out with ``str``)."""
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkFormatError(file, row, f"{key} must be a non-empty string, got {value!r:.80}")
    return value.strip()


def local_image(root: Path, values: str | tuple[str, ...], file: Path, row: Any) -> str:
    """The first of ``values`` (relative paths, possibly with Windows separators such as
    ``./test_dominant_images\\00000.jpg``) that exists under ``root``.

    The root is resolved first (it may itself be a link); a value is then joined to it and normalised without
    following links, so a folder inside the root that links elsewhere (``images/`` on another disk) is read,
    while a value whose ``..`` leads out of the root is refused."""
    values, tried = (values,) if isinstance(values, str) else values, []
    base = root.resolve()
    for value in values:
        relative = PureWindowsPath(value.strip()).as_posix() if "\\" in value else value.strip()
        path = Path(os.path.normpath(base / relative.removeprefix("./")))
        if not path.is_relative_to(base):
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
    """EEmo-Bench options: a Python dict repr string (``"{'A': 'No.', 'B': 'Yes.'}"``), read with ``ast``
    (never ``eval``: only a dict display of literals passes); a real JSON object is accepted too. Keys and
    texts are strings, stripped; a key that repeats (in the literal, or once stripped: ``' A '`` and ``'A'``),
    a key or text that is no string (``1``, ``None``, an object) and an empty dict are damage, not options to
    merge or write out with ``str``."""
    if isinstance(text, dict):
        pairs = list(text.items())
    elif isinstance(text, str):
        try:
            node = ast.parse(text.strip(), mode="eval").body
            if not isinstance(node, ast.Dict) or any(key is None for key in node.keys):
                raise ValueError("not a dict display")
            pairs = [(ast.literal_eval(key), ast.literal_eval(value)) for key, value in zip(node.keys, node.values)]
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as error:
            raise BenchmarkFormatError(file, row, f"options are not a dict literal: {text!r:.200} ({error})") from None
    else:
        raise BenchmarkFormatError(file, row, f"options are not a dict: {text!r:.200}")
    if not pairs:
        raise BenchmarkFormatError(file, row, "options are an empty dict")
    options: dict[str, str] = {}
    for key, option in pairs:
        if not isinstance(key, str) or not key.strip() or not isinstance(option, str):
            raise BenchmarkFormatError(file, row, f"option {key!r:.40}: {option!r:.80} is not a letter and a text")
        if key.strip() in options:
            raise BenchmarkFormatError(file, row, f"option key {key.strip()!r} repeats")
        options[key.strip()] = option.strip()
    return options
