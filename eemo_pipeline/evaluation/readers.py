"""Benchmark readers: each benchmark's native files -> one polars frame of items (``ITEM_SCHEMA``).

Every reader returns the same wide schema, so one runner serves all of them; columns a benchmark does not use
are null (or empty lists). A file that cannot be read, or a record that breaks the format, raises
``BenchmarkFormatError`` naming the file and the record (row = 0-based position in the JSON array, CSV data
line, or the key of a JSON object). Roots come from ``EEMO_<BENCHMARK>_ROOT`` (``benchmark_root``).

``write_sample_benchmarks`` writes a small copy of every benchmark in its native format, with the quirks of
the real files (Python-dict option strings, newline option strings, Windows paths, non-NFC names, non-image
files), for tests and the demo.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PureWindowsPath
from typing import Any

import polars as pl

from eemo_pipeline.settings import Settings, root_variable
from eemo_pipeline.tasks.registry import DOMINANT_EMOTION, RANKING, VAD

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
EKMAN7 = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
ARTPHOTO_LABELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sad")
ARTEMIS_LABELS = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

EEMO_BENCH_SINGLE = "EEmo-Bench(single).json"
EEMO_BENCH_PAIR = "EEmo-Bench(pair).json"
EEMO_BENCH_GROUND_TRUTH = "Ebench_1_data(jac_en_check).json"
ARTEMIS_FILE = "artemis_dataset_release_v0.csv"
UNIAA_FILE = "UNIAA_QA.json"
AESBENCH_FILE = "AesBench_evaluation.json"
SAMPLE_AESBENCH_ANSWER_KEY = "AesE_answer_key.json"
VAD_SCALE = (1.0, 9.0)  # EEmo-Bench's SAM scale; items carry VAD on 0-1


class BenchmarkFormatError(ValueError):
    """A benchmark file or record that breaks its native format; the message names the file and row."""

    def __init__(self, file: Path | str, row: Any, reason: str):
        self.file, self.row, self.reason = str(file), row, reason
        where = f"{file}" if row is None else f"{file}, row {row}"
        super().__init__(f"{where}: {reason}")


def benchmark_root(benchmark: str, override: str | Path | None = None) -> Path:
    """The root folder of ``benchmark``: ``override`` when given, else ``EEMO_<BENCHMARK>_ROOT``."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    variable = root_variable(benchmark)
    value = override or Settings.from_env().root(benchmark)
    if not value:
        raise BenchmarkFormatError(variable, None, f"no root for {benchmark}: set {variable} or pass a root")
    root = Path(value)
    if not root.is_dir():
        raise BenchmarkFormatError(root, None, f"the {benchmark} root is not a folder")
    return root


def _items(rows: list[dict[str, Any]]) -> pl.DataFrame:
    defaults = {name: [] if isinstance(dtype, pl.List) else None for name, dtype in ITEM_SCHEMA.items()}
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=ITEM_SCHEMA)


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise BenchmarkFormatError(path, None, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchmarkFormatError(path, None, f"not valid JSON ({error})") from None


def _require(record: Any, keys: tuple[str, ...], file: Path, row: Any) -> None:
    if not isinstance(record, dict):
        raise BenchmarkFormatError(file, row, f"expected an object, got {type(record).__name__}")
    missing = [key for key in keys if record.get(key) in (None, "")]
    if missing:
        raise BenchmarkFormatError(file, row, f"missing {', '.join(missing)}")


def _local_path(root: Path, value: str, file: Path, row: Any) -> str:
    """``value`` (a relative path, possibly with Windows separators) under ``root``; must exist."""
    relative = PureWindowsPath(value.strip()).as_posix() if "\\" in value else value.strip()
    path = (root / relative.removeprefix("./")).resolve()
    if not path.is_relative_to(root.resolve()):
        raise BenchmarkFormatError(file, row, f"image path {value!r} escapes the root")
    if not path.is_file():
        raise BenchmarkFormatError(file, row, f"image {value!r} not found at {path}")
    return str(path)


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


_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[).:]\s*(.*?)\s*$")


def parse_options_lines(text: Any, file: Path, row: Any) -> dict[str, str]:
    """AesBench options: one string of lines ``A) text`` (the space may be missing: ``D)text``); a line that
    does not start a new option continues the previous one."""
    options: dict[str, str] = {}
    last = None
    for line in str(text or "").splitlines():
        match = _OPTION_LINE.match(line)
        if match:
            last = match.group(1)
            options[last] = match.group(2)
        elif line.strip() and last is not None:
            options[last] = f"{options[last]} {line.strip()}"
    if len(options) < 2:
        raise BenchmarkFormatError(file, row, f"expected lines like 'A) text', got {text!r}")
    return options


# ------------------------------------------------------------------------------------------ EEmo-Bench

_CATEGORY = re.compile(r"category:\s*(.*?)(?:\s{2,}|\s+Valence:|$)")


def _eemo_ground_truth(root: Path) -> dict[str, dict[str, Any]]:
    path = root / EEMO_BENCH_GROUND_TRUTH
    data = _load_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, None, "expected a JSON array of images")
    truth: dict[str, dict[str, Any]] = {}
    for row, record in enumerate(data):
        _require(record, ("image_name", "category", "emotion_list", "Valence", "Arousal", "Dominance"), path, row)
        try:
            votes = sorted(((str(e).strip().lower(), float(n)) for e, n in record["emotion_list"]), key=lambda x: -x[1])
            vad = {dim: float(record[dim.capitalize()][0]) for dim in ("valence", "arousal", "dominance")}
        except (TypeError, ValueError, IndexError) as error:
            raise BenchmarkFormatError(path, row, f"bad emotion_list or VAD triple ({error})") from None
        ranking = [emotion for emotion, _ in votes]
        unknown = [e for e in ranking if e not in EKMAN7]
        if unknown or len(ranking) != 3:
            raise BenchmarkFormatError(path, row, f"emotion_list must rank 3 of {EKMAN7}, got {ranking}")
        low, high = VAD_SCALE
        if not all(low <= value <= high for value in vad.values()):
            raise BenchmarkFormatError(path, row, f"VAD means outside {low:g}-{high:g}: {vad}")
        truth[str(record["image_name"]).strip()] = {
            "row": row, "category": str(record["category"]).strip(), "ranking": ranking,
            **{dim: (value - low) / (high - low) for dim, value in vad.items()},
        }
    return truth


def _eemo_questions(root: Path, carrier: str, truth: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    path = root / (EEMO_BENCH_SINGLE if carrier == "single" else EEMO_BENCH_PAIR)
    data = _load_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, None, "expected a JSON array of questions")
    slots = ("",) if carrier == "single" else ("1", "2")
    rows = []
    for row, record in enumerate(data):
        _require(record, ("question", "correct_answer", "question_type",
                          *(f"image{slot}_url" for slot in slots)), path, row)
        images, category = [], None
        for slot in slots:
            name = str(record[f"image{slot}_url"]).strip()
            # the Windows-style "image"/"image1" path ("images\\579.jpg") wins when present
            images.append(_local_path(root, record.get(f"image{slot}") or f"images/{name}", path, row))
            found = truth.get(name, {}).get("category")
            if found is None and record.get(f"image{slot}_label"):
                match = _CATEGORY.search(str(record[f"image{slot}_label"]))
                found = match.group(1).strip() if match else None
            category = category or found
        question_type = str(record["question_type"]).strip()
        item = {"benchmark": "eemo_bench", "item_id": f"{carrier}/{record.get('id', row)}", "carrier": carrier,
                "images": images, "question": str(record["question"]).strip(), "question_type": question_type,
                "category": category, "answer": str(record["correct_answer"]).strip(),
                "source_file": str(path), "source_row": str(row)}
        if question_type == "Open_ended":
            item.update(task="description", dimension=record.get("describing_dimension"))
        elif question_type in ("Yes-or-No", "What/How"):
            options = parse_options_dict(record.get("options"), path, row)
            if item["answer"] not in options:
                raise BenchmarkFormatError(path, row, f"correct_answer {item['answer']!r} is not an option of {options}")
            item.update(task="perception", option_keys=list(options), option_texts=list(options.values()),
                        dimension=record.get("perceptual_dimension"), concern=record.get("question_concern"))
        else:
            raise BenchmarkFormatError(path, row, f"unknown question_type {question_type!r}")
        rows.append(item)
    return rows


def read_eemo_bench(root: Path) -> pl.DataFrame:
    """EEmo-Bench: perception and description questions plus one ranking and one vad item per image.

    Files under ``root``: ``EEmo-Bench(single).json`` and ``EEmo-Bench(pair).json`` (the released question
    files: ``id, image_url`` (pair: ``image1_url, image2_url``, optional Windows-style ``image1``/``image2``
    paths and ``image1_label`` strings), ``question``, ``options`` as a Python dict repr string,
    ``correct_answer``, ``question_type`` Yes-or-No / What/How / Open_ended, ``perceptual_dimension``,
    ``question_concern``, ``describing_dimension``); the per-image ground truth
    ``Ebench_1_data(jac_en_check).json`` (the authors' file name: ``image_name, category, emotion_list``
    [[emotion, votes] x 3], ``Valence/Arousal/Dominance`` [mean, sd, range] on 1-9); images under
    ``images/``. Assumptions (the release does not document them): the ranking is the emotion_list ordered by
    votes; a question's content category is its (first) image's ground-truth category, else the one in its
    label string. Ranking and VAD items are the images of the ground-truth file.
    """
    truth = _eemo_ground_truth(root)
    rows = _eemo_questions(root, "single", truth) + _eemo_questions(root, "pair", truth)
    gt_file = str(root / EEMO_BENCH_GROUND_TRUTH)
    for name, record in truth.items():
        image = _local_path(root, f"images/{name}", Path(gt_file), record["row"])
        common = {"benchmark": "eemo_bench", "carrier": "single", "images": [image], "category": record["category"],
                  "source_file": gt_file, "source_row": str(record["row"])}
        rows.append({**common, "item_id": f"ranking/{name}", "task": RANKING.name, "labels": list(EKMAN7),
                     "ranking": record["ranking"], "answer": ", ".join(record["ranking"])})
        rows.append({**common, "item_id": f"vad/{name}", "task": VAD.name,
                     **{dim: record[dim] for dim in ("valence", "arousal", "dominance")}})
    return _items(rows)


# ------------------------------------------------------------------------------------ cross-domain sets


def read_artphoto(root: Path) -> pl.DataFrame:
    """Artphoto: every ``<emotion>_<NNNN>.<ext>`` image in ``root`` is an item labelled by its prefix (Mikels 8,
    spelled ``sad``). Files without an image suffix (readme, Thumbs.db) are skipped; an image whose prefix is
    not a label is an error."""
    rows = []
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        label = path.stem.rsplit("_", 1)[0].lower()
        if label not in ARTPHOTO_LABELS:
            raise BenchmarkFormatError(path, None, f"file name prefix {label!r} is not one of {ARTPHOTO_LABELS}")
        rows.append({"benchmark": "artphoto", "item_id": path.name, "task": DOMINANT_EMOTION.name, "carrier": "single",
                     "images": [str(path.resolve())], "answer": label, "labels": list(ARTPHOTO_LABELS),
                     "source_file": str(path), "source_row": None})
    if not rows:
        raise BenchmarkFormatError(root, None, "no <emotion>_<NNNN>.jpg images found")
    return _items(rows)


def _artwork_image(root: Path, style: str, painting: str, file: Path, row: int) -> str:
    folder = root / "wikiart" / style
    for name in dict.fromkeys((painting, unicodedata.normalize("NFC", painting), unicodedata.normalize("NFD", painting))):
        if (folder / f"{name}.jpg").is_file():
            return str((folder / f"{name}.jpg").resolve())
    raise BenchmarkFormatError(file, row, f"image wikiart/{style}/{painting}.jpg not found")


def read_artemis(root: Path) -> pl.DataFrame:
    """ArtEmis: ``artemis_dataset_release_v0.csv`` (``art_style, painting, emotion, utterance, repetition``, one
    row per annotation), images at ``wikiart/<art_style>/<painting>.jpg``. An artwork (key: art_style plus the
    NFC-normalised painting name, since some names are non-NFC) is an item labelled with its annotators'
    majority emotion; artworks whose vote is tied or won by "something else" have no dominant emotion and are
    left out (assumption: the paper does not say how its test set was drawn)."""
    path = root / ARTEMIS_FILE
    if not path.is_file():
        raise BenchmarkFormatError(path, None, "file not found")
    votes: dict[tuple[str, str], Counter[str]] = {}
    first: dict[tuple[str, str], tuple[str, int]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"art_style", "painting", "emotion"} - set(reader.fieldnames or ())
        if missing:
            raise BenchmarkFormatError(path, None, f"missing columns {sorted(missing)}; found {reader.fieldnames}")
        for row, record in enumerate(reader, start=1):
            style, painting = (record["art_style"] or "").strip(), (record["painting"] or "").strip()
            emotion = (record["emotion"] or "").strip().lower()
            if not style or not painting or emotion not in (*ARTEMIS_LABELS, "something else"):
                raise BenchmarkFormatError(path, row, f"bad record {dict(record)}")
            key = (style, unicodedata.normalize("NFC", painting))
            votes.setdefault(key, Counter())[emotion] += 1
            first.setdefault(key, (painting, row))
    rows = []
    for key, counter in votes.items():
        (top, n), *rest = counter.most_common()
        if top == "something else" or (rest and rest[0][1] == n):
            continue
        painting, row = first[key]
        rows.append({"benchmark": "artemis", "item_id": f"{key[0]}/{key[1]}", "task": DOMINANT_EMOTION.name,
                     "carrier": "single", "images": [_artwork_image(root, key[0], painting, path, row)],
                     "answer": top, "labels": list(ARTEMIS_LABELS), "dimension": key[0],
                     "source_file": str(path), "source_row": str(row)})
    return _items(rows)


def read_uniaa(root: Path) -> pl.DataFrame:
    """UNIAA sentiment subset: ``UNIAA_QA.json`` (assumed name), a JSON array of ``img_path, question,
    candidates`` (answer texts; letters A, B, ... by position), ``correct_ans`` (the answer text),
    ``dimension`` and ``type`` (yes_no / what / how); only ``dimension == "sentiment"`` is kept. Images at
    ``img_path`` under ``root``."""
    path = root / UNIAA_FILE
    data = _load_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, None, "expected a JSON array of questions")
    rows = []
    for row, record in enumerate(data):
        _require(record, ("img_path", "question", "candidates", "correct_ans", "dimension"), path, row)
        if str(record["dimension"]).strip().lower() != "sentiment":
            continue
        candidates = [str(c).strip() for c in record["candidates"]]
        if str(record["correct_ans"]).strip() not in candidates:
            raise BenchmarkFormatError(path, row, f"correct_ans {record['correct_ans']!r} is not a candidate")
        keys = [chr(ord("A") + i) for i in range(len(candidates))]
        rows.append({"benchmark": "uniaa", "item_id": str(record.get("id", row)), "task": "multiple_choice",
                     "carrier": "single", "images": [_local_path(root, str(record["img_path"]), path, row)],
                     "question": str(record["question"]).strip(), "option_keys": keys, "option_texts": candidates,
                     "answer": keys[candidates.index(str(record["correct_ans"]).strip())],
                     "question_type": record.get("type"), "dimension": record.get("category"),
                     "source_file": str(path), "source_row": str(row)})
    return _items(rows)


_YES_NO_OPENERS = ("is", "are", "does", "do", "did", "can", "could", "will", "would", "has", "have", "was", "were")


def question_kind(question: str) -> str:
    """AesE question type from the question's first word: how, what, why, or yes-no (an auxiliary verb);
    "other" otherwise. Used when the answer key gives no type (the public file has none)."""
    first = (question.strip().split() or [""])[0].lower().strip(",.?")
    if first in ("how", "what", "why"):
        return first
    return "yes-no" if first in _YES_NO_OPENERS else "other"


def read_answer_key(path: Path) -> dict[str, dict[str, str | None]]:
    """An AesE answer key (the public AesBench file has none): a JSON object image name -> letter or
    {"answer", "dimension", "question_type"}, or a CSV with columns ``image, answer`` and optional
    ``dimension, question_type``."""
    if not path.is_file():
        raise BenchmarkFormatError(path, None, "answer key not found")
    key: dict[str, dict[str, str | None]] = {}
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"image", "answer"} <= set(reader.fieldnames or ()):
                raise BenchmarkFormatError(path, None, f"need columns image, answer; found {reader.fieldnames}")
            for row, record in enumerate(reader, start=1):
                if not (record["image"] or "").strip() or not (record["answer"] or "").strip():
                    raise BenchmarkFormatError(path, row, "empty image or answer")
                key[record["image"].strip()] = {"answer": record["answer"].strip().upper(),
                                                "dimension": record.get("dimension") or None,
                                                "question_type": record.get("question_type") or None}
        return key
    data = _load_json(path)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(path, None, "expected a JSON object keyed by image name")
    for name, value in data.items():
        entry = {"answer": value} if isinstance(value, str) else value
        if not isinstance(entry, dict) or not str(entry.get("answer") or "").strip():
            raise BenchmarkFormatError(path, name, f"expected a letter or an object with 'answer', got {value!r}")
        key[name] = {"answer": str(entry["answer"]).strip().upper(), "dimension": entry.get("dimension"),
                     "question_type": entry.get("question_type")}
    return key


def read_aesbench(root: Path, answer_key: Path | None = None) -> pl.DataFrame:
    """AesBench AesE: ``AesBench_evaluation.json``, an object keyed by image file name whose
    ``AesE_data.Question`` and ``AesE_data.Options`` (lines ``A) text``) make one multiple-choice item; images
    under ``images/``. The public file has no answers: without ``answer_key`` (``read_answer_key``) every
    ``answer`` is null and the AesE accuracy cannot be computed (the report says so). Dimension and question
    type come from the key when it has them; the type is otherwise read from the question (``question_kind``)."""
    path = root / AESBENCH_FILE
    data = _load_json(path)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(path, None, "expected a JSON object keyed by image name")
    key = read_answer_key(answer_key) if answer_key is not None else {}
    rows = []
    for name, record in data.items():
        aese = record.get("AesE_data") if isinstance(record, dict) else None
        _require(aese, ("Question", "Options"), path, name)
        options = parse_options_lines(aese["Options"], path, name)
        entry = key.get(name, {})
        if entry and entry["answer"] not in options:
            raise BenchmarkFormatError(answer_key or path, name, f"answer {entry['answer']!r} is not an option")
        rows.append({"benchmark": "aesbench", "item_id": name, "task": "multiple_choice", "carrier": "single",
                     "images": [_local_path(root, f"images/{name}", path, name)],
                     "question": str(aese["Question"]).strip(), "option_keys": list(options),
                     "option_texts": list(options.values()), "answer": entry.get("answer"),
                     "question_type": entry.get("question_type") or question_kind(str(aese["Question"])),
                     "dimension": entry.get("dimension"), "source_file": str(path), "source_row": name})
    return _items(rows)


READERS: dict[str, Callable[..., pl.DataFrame]] = {
    "eemo_bench": read_eemo_bench, "artphoto": read_artphoto, "artemis": read_artemis,
    "uniaa": read_uniaa, "aesbench": read_aesbench,
}
"""Reader per benchmark name; each takes the root folder (``read_aesbench`` also ``answer_key``)."""


# --------------------------------------------------------------------------------------------- samples


def _dump(path: Path, value: Any, **options: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, **options), encoding="utf-8")


_SAMPLE_IMAGES = (
    ("1.jpg", "Animal", [["joy", 39], ["neutral", 37], ["surprise", 33]], (6.0, 4.22, 6.44)),
    ("2.jpg", "Abstract/Cartoon image", [["fear", 56], ["disgust", 32], ["sadness", 10]], (2.22, 7.89, 2.44)),
    ("3.jpg", "Human", [["sadness", 48], ["fear", 30], ["neutral", 12]], (2.9, 3.6, 3.2)),
    ("4.jpg", "Daily life scene", [["joy", 46], ["surprise", 33], ["neutral", 28]], (6.56, 6.0, 6.33)),
    ("5.jpg", "Natural landscape", [["neutral", 50], ["joy", 30], ["surprise", 13]], (5.9, 3.1, 6.1)),
    ("6.jpg", "Stationary object", [["anger", 35], ["disgust", 30], ["fear", 23]], (3.0, 6.7, 4.0)),
)


def _write_eemo_bench(root: Path, write_image: Callable[[Path, int], None]) -> None:
    ground_truth = []
    for index, (name, category, emotions, vad) in enumerate(_SAMPLE_IMAGES):
        write_image(root / "images" / name, index)
        ground_truth.append({"image_name": name, "category": category, "emotion_list": emotions,
                             **{dim: [value, 0.8, 1.5] for dim, value in zip(("Valence", "Arousal", "Dominance"), vad)}})
    _dump(root / EEMO_BENCH_GROUND_TRUTH, ground_truth, indent=4)
    single = [
        {"id": 0, "image_url": "1.jpg", "image": "images\\1.jpg", "question": "Is joy one of the three main emotions you feel?",
         "options": "{'A': 'No', 'B': 'Yes'}", "correct_answer": "B", "question_type": "Yes-or-No",
         "perceptual_dimension": "Emotion perception", "question_concern": "Attributes perception"},
        {"id": 1, "image_url": "2.jpg", "question": "Which emotion does this picture evoke most strongly?",
         "options": "{'A': 'Disgust', 'B': 'Fear', 'C': 'Anger'}", "correct_answer": "B", "question_type": "What/How",
         "perceptual_dimension": "Emotion perception", "question_concern": "Attributes perception"},
        {"id": 2, "image_url": "3.jpg", "question": "Is the emotion you feel clearly negative?",
         "options": "{'A': 'Yes', 'B': 'No'}", "correct_answer": "A", "question_type": "Yes-or-No",
         "perceptual_dimension": "Valence perception", "question_concern": "Attributes perception"},
        {"id": 3, "image_url": "4.jpg", "question": "How aroused do you feel looking at this image?",
         "options": "{'A': 'Moderate arousal', 'B': 'High arousal', 'C': 'Low arousal'}", "correct_answer": "B",
         "question_type": "What/How", "perceptual_dimension": "Arousal perception", "question_concern": "Reasoning perception"},
        {"id": 4, "image_url": "5.jpg", "question": "Do you feel in control when you look at this image?",
         "options": "{'A': 'Yes', 'B': 'No'}", "correct_answer": "A", "question_type": "Yes-or-No",
         "perceptual_dimension": "Dominance perception", "question_concern": "Attributes perception"},
        {"id": 5, "image_url": "1.jpg", "question": "Which elements of the image most strongly evoke your emotions?",
         "correct_answer": "The playful animal and the warm light evoke joy, with calm neutral moments and a little "
                           "surprise at its pose; valence is high and arousal is moderate.",
         "question_type": "Open_ended", "describing_dimension": "Reasoning description"},
        {"id": 6, "image_url": "2.jpg", "question": "Describe the image and the three main emotions it evokes.",
         "correct_answer": "A dark distorted figure evokes fear first, then disgust at its texture and some "
                           "sadness; valence is low, arousal is high and the viewer feels helpless.",
         "question_type": "Open_ended", "describing_dimension": "Detailed description"},
    ]
    _dump(root / EEMO_BENCH_SINGLE, single, indent=4)
    label = "[Image{slot}] Ranking:{{'Joy': 39, 'Neutral': 37, 'Surprise': 33}}     category:{category}     Valence:6.0  Arousal:4.22  Dominance:6.44"
    pair = [
        {"id": 0, "image1_url": "1.jpg", "image1": "images\\1.jpg", "image2_url": "4.jpg", "image2": "images\\4.jpg",
         "image1_label": label.format(slot=1, category="Animal"), "image2_label": label.format(slot=2, category="Daily life scene"),
         "question": "Is joy one of the main emotions of both images?", "options": "{'A': 'No.', 'B': 'Yes.'}",
         "correct_answer": "B", "question_type": "Yes-or-No", "perceptual_dimension": "Emotion perception",
         "question_concern": "Similarity perception"},
        {"id": 1, "image1_url": "2.jpg", "image1": "images\\2.jpg", "image2_url": "5.jpg", "image2": "images\\5.jpg",
         "question": "Which of these two images evokes a more negative emotional experience?",
         "options": "{'A': 'The first picture.', 'B': 'The second picture.'}", "correct_answer": "A",
         "question_type": "What/How", "perceptual_dimension": "Valence perception",
         "question_concern": "Differences comparison"},
        {"id": 2, "image1_url": "3.jpg", "image1": "images\\3.jpg", "image2_url": "6.jpg", "image2": "images\\6.jpg",
         "question": "Compared to the first image, how does the arousal of the second measure up?",
         "options": "{'A': 'Much lower.', 'B': 'About the same.', 'C': 'Much higher.'}", "correct_answer": "C",
         "question_type": "What/How", "perceptual_dimension": "Arousal perception",
         "question_concern": "Differences comparison"},
        {"id": 3, "image1_url": "3.jpg", "image1": "images\\3.jpg", "image2_url": "4.jpg", "image2": "images\\4.jpg",
         "question": "Which image evokes more negative emotions, and why?",
         "correct_answer": "The first image evokes more negative emotions: its lonely figure brings sadness and "
                           "fear, while the second image's lively scene brings joy and surprise.",
         "question_type": "Open_ended", "describing_dimension": "Valence comparison"},
    ]
    _dump(root / EEMO_BENCH_PAIR, pair, indent=4)


def _write_artphoto(root: Path, write_image: Callable[[Path, int], None]) -> None:
    for index, label in enumerate(ARTPHOTO_LABELS):
        write_image(root / f"{label}_{index + 1:04d}.jpg", 10 + index)
    (root / "readme.txt").write_text("Artphoto: labels are the file-name prefixes.\n", encoding="utf-8")
    (root / "Thumbs.db").write_bytes(b"\x00\x01not an image")


def _write_artemis(root: Path, write_image: Callable[[Path, int], None]) -> None:
    nfd_name = unicodedata.normalize("NFD", "claude-monet_the-seine-at-argenteuil-é")
    artworks = [  # (style, painting as written in the CSV, emotions)
        ("Impressionism", nfd_name, ["contentment", "contentment", "awe", "excitement"]),
        ("Romanticism", "caspar-david-friedrich_the-sea-of-ice", ["fear", "awe", "fear", "sadness", "fear"]),
        ("Baroque", "rembrandt_the-night-watch", ["awe", "excitement", "awe"]),
        ("Expressionism", "edvard-munch_the-scream", ["fear", "sadness", "fear", "disgust"]),
        ("Cubism", "pablo-picasso_guernica", ["sadness", "anger", "sadness", "anger"]),  # tie: left out
        ("Pop_Art", "andy-warhol_soup", ["something else", "something else", "amusement"]),  # no emotion: left out
    ]
    lines = [["art_style", "painting", "emotion", "utterance", "repetition"]]
    for index, (style, painting, emotions) in enumerate(artworks):
        # images on disk carry the NFC spelling, as after unpacking on most file systems
        write_image(root / "wikiart" / style / f"{unicodedata.normalize('NFC', painting)}.jpg", 20 + index)
        lines += [[style, painting, emotion, f"It makes me feel {emotion}, see the colours, \"really\".", "5"]
                  for emotion in emotions]
    with (root / ARTEMIS_FILE).open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(lines)


def _write_uniaa(root: Path, write_image: Callable[[Path, int], None]) -> None:
    records = [
        ("sentiment", "solitude", "what", "What kind of atmosphere does this photo create?",
         ["It conveys loneliness and tranquility.", "It conveys a warm and excited atmosphere.",
          "It conveys an awkward atmosphere.", "It conveys a noisy atmosphere."], 0),
        ("sentiment", "vitality", "yes_no", "Can you feel joy and vitality in this photo?", ["Yes.", "No."], 0),
        ("sentiment", "negative", "how", "How does this photo make you feel?",
         ["Calm and relaxed.", "Sad and uneasy.", "Excited and happy."], 1),
        ("sentiment", "serenity", "yes_no", "Does this photo feel noisy and chaotic?", ["Yes.", "No."], 1),
        ("composition", "balance", "yes_no", "Is the composition balanced?", ["Yes.", "No."], 0),
        ("color", "warm", "what", "What is the dominant colour tone?", ["Warm.", "Cool."], 1),
    ]
    data = []
    for index, (dimension, category, kind, question, candidates, correct) in enumerate(records):
        image = f"emotion_images/{index:09d}.jpg"
        write_image(root / image, 30 + index)
        data.append({"dataset": "WILD", "dimension": dimension, "category": category, "type": kind,
                     "img_path": image, "question": question, "candidates": candidates,
                     "correct_ans": candidates[correct], "source": "WILD"})
    _dump(root / UNIAA_FILE, data, indent=4)


def _write_aesbench(root: Path, write_image: Callable[[Path, int], None]) -> None:
    items = {
        "43129b8b_62e5_4129_897e_2256bb12b905.jpg": ("How does this picture influence the viewer's aesthetic emotions?",
            "A) It enhances intrigue and emotional engagement.\nB) It has no significant effect.\nC) It reduces "
            "the viewer's emotional response.", "A", "Interest"),
        "43957.jpg": ("What atmosphere does the image evoke?",
            "A) An eerie and unsettling atmosphere\nB) A sense of warmth and comfort\nC) A vibrant and lively\n"
            "ambiance\nD)A feeling of boredom", "D", "Vibe"),
        "44152.png": ("Why does the lake scene feel relaxing?",
            "A) It gives a sense of leisure close to nature.\nB) It shows urban excitement.\nC) It creates suspense.",
            "A", "Emotion"),
        "44252.jpg": ("Does the image evoke a feeling of uniqueness?", "A) Yes\nB) No", "B", "Uniqueness"),
    }
    data, key = {}, {}
    for index, (name, (question, options, answer, dimension)) in enumerate(items.items()):
        write_image(root / "images" / name, 40 + index)
        data[name] = {"AesP_data": {"Question": "Which aspect of aesthetic perception stands out?",
                                    "Options": "A) Colour\nB) Depth\nC) Light\nD)Texture"},
                      "AesE_data": {"Question": question, "Options": options},
                      "AesI_data": {"Question": "Explain the aesthetic quality."}}
        key[name] = {"answer": answer, "dimension": dimension}
    _dump(root / AESBENCH_FILE, data, indent=4)
    _dump(root / SAMPLE_AESBENCH_ANSWER_KEY, key, indent=2)


def write_sample_benchmarks(directory: Path) -> dict[str, Path]:
    """A small copy of every benchmark in its native format under ``directory/<benchmark>/``, with generated
    and photographed images (``eemo_pipeline.sources.sample_images``), and an AesE answer key at
    ``aesbench/AesE_answer_key.json``. Returns the root of each benchmark, by name."""
    from eemo_pipeline.sources.sample_images import write_image

    def small_image(path: Path, index: int) -> None:
        write_image(path, index, (64, 64))

    writers = {"eemo_bench": _write_eemo_bench, "artphoto": _write_artphoto, "artemis": _write_artemis,
               "uniaa": _write_uniaa, "aesbench": _write_aesbench}
    roots = {}
    for name, writer in writers.items():
        root = Path(directory) / name
        root.mkdir(parents=True, exist_ok=True)
        writer(root, small_image)
        roots[name] = root
    return roots
