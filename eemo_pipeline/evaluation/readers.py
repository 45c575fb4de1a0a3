"""Benchmark readers: each benchmark's native files -> one polars frame of items (``ITEM_SCHEMA``).

Every reader returns the same wide schema, so one runner serves all of them; columns a benchmark does not use
are null (or empty lists). A file that cannot be read, or a record that breaks the format, raises
``BenchmarkFormatError`` naming the file and the record (row = 0-based position in the JSON array, CSV data
line, or the key of a JSON object). Roots are given (``benchmark_root``: the caller's ``EEMO_<BENCHMARK>_ROOT``). Every item
names the file it came from (``source_file``, ``source_row``); the readers read the EEmo-Logic authors'
released test files (their repository's ``test_data/``) when they are in the root. EEmo-Bench's reader is in
``eemo_bench.py``, what all readers share in ``benchmark_files.py``; this module is the cross-domain readers
and ``READERS``. Small copies of every benchmark in its native format, for tests and the demo, are in
``samples.py``.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.evaluation.benchmark_files import (
    BENCHMARKS,
    ITEM_SCHEMA,
    BenchmarkFormatError,
    benchmark_root,
    chosen_file,
    items_frame,
    load_json,
    local_image,
    parse_options_dict,
    require_fields,
)
from eemo_pipeline.evaluation.eemo_bench import EKMAN7, read_eemo_bench
from eemo_pipeline.tasks.dominant_emotion import labelled_item

__all__ = [  # the readers, and what callers read beside them (defined in benchmark_files and eemo_bench)
    "AESBENCH_FILE", "AESBENCH_RELEASED", "ARTEMIS_CSV", "ARTEMIS_LABELS", "ARTEMIS_RELEASED", "ARTPHOTO_LABELS",
    "ARTPHOTO_RELEASED", "BENCHMARKS", "EKMAN7", "ITEM_SCHEMA", "READERS", "UNIAA_RELEASED", "BenchmarkFormatError",
    "benchmark_root", "parse_options_dict", "parse_options_lines", "question_kind", "read_aesbench",
    "read_answer_key", "read_artemis", "read_artphoto", "read_eemo_bench", "read_uniaa",
]

ARTPHOTO_LABELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sad")
ARTEMIS_LABELS = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")
ARTEMIS_VOTES = (*ARTEMIS_LABELS, "something else")  # an annotator's choices; "something else" is no candidate
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# The EEmo-Logic authors' released test files (their repository's test_data/), read when present in the root.
ARTEMIS_RELEASED = "test_ArtEmis.json"
ARTPHOTO_RELEASED = "test_Artphoto.json"
UNIAA_RELEASED = "test_UNIAA_Sent.json"
AESBENCH_RELEASED = "test_AesBench_AesE.json"
# The original datasets' files, read when the released file is absent.
ARTEMIS_CSV = "artemis_dataset_release_v0.csv"
AESBENCH_FILE = "AesBench_evaluation.json"


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


# ------------------------------------------------------------------------------------ cross-domain sets


def _artphoto_item(image: Path, label: str, source_file: Path, source_row: str) -> dict[str, Any]:
    return {"benchmark": "artphoto", "item_id": image.name, "carrier": "single", "images": [str(image)],
            **labelled_item(label, ARTPHOTO_LABELS), "source_file": str(source_file), "source_row": source_row}


def read_artphoto(root: Path, file: str | Path | None = None) -> pl.DataFrame:
    """Artphoto (Mikels 8, spelled ``sad``). The items are those of the authors' ``test_Artphoto.json`` (or
    ``file``) when present: a JSON array of ``id, emotion, image_path`` (a file name under ``root``). Without it,
    every ``<emotion>_<NNNN>.<ext>`` image in ``root`` is an item labelled by its prefix: files without an image
    suffix (readme, Thumbs.db) are skipped, an image whose prefix is not a label is an error."""
    path = chosen_file(root, file, (ARTPHOTO_RELEASED,))
    rows = []
    if path is not None:
        data = load_json(path)
        if not isinstance(data, list):
            raise BenchmarkFormatError(path, None, "expected a JSON array of images")
        for row, record in enumerate(data):
            require_fields(record, ("emotion", "image_path"), path, row)
            label = str(record["emotion"]).strip().lower()
            if label not in ARTPHOTO_LABELS:
                raise BenchmarkFormatError(path, row, f"emotion {label!r} is not one of {ARTPHOTO_LABELS}")
            image = Path(local_image(root, str(record["image_path"]), path, row))
            rows.append(_artphoto_item(image, label, path, str(record.get("id", row))))
        return items_frame(rows)
    for image in sorted(root.iterdir()):
        if not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        label = image.stem.rsplit("_", 1)[0].lower()
        if label not in ARTPHOTO_LABELS:
            raise BenchmarkFormatError(image, None, f"file name prefix {label!r} is not one of {ARTPHOTO_LABELS}")
        rows.append(_artphoto_item(image.resolve(), label, root, image.name))
    if not rows:
        raise BenchmarkFormatError(root, None, f"no {ARTPHOTO_RELEASED} and no <emotion>_<NNNN>.jpg images found")
    return items_frame(rows)


def _wikiart_paths(style: str, painting: str) -> tuple[str, ...]:
    """``wikiart/<style>/<painting>.jpg`` in the name's own, NFC and NFD spellings (some names are non-NFC)."""
    spellings = (painting, unicodedata.normalize("NFC", painting), unicodedata.normalize("NFD", painting))
    return tuple(f"wikiart/{style}/{name}.jpg" for name in dict.fromkeys(spellings))


def _artemis_item(root: Path, style: str, painting: str, label: str, images: tuple[str, ...], file: Path,
                  row: int) -> dict[str, Any]:
    return {"benchmark": "artemis", "item_id": f"{style}/{unicodedata.normalize('NFC', painting)}",
            "carrier": "single", "images": [local_image(root, images, file, row)],
            **labelled_item(label, ARTEMIS_LABELS), "dimension": style, "source_file": str(file),
            "source_row": str(row)}


def _artemis_released(root: Path, path: Path) -> pl.DataFrame:
    data = load_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, None, "expected a JSON array of artworks")
    rows, artworks = [], {}
    for row, record in enumerate(data):
        require_fields(record, ("art_style", "painting", "emotion", "dominant_emotion"), path, row)
        label, votes = str(record["dominant_emotion"]).strip().lower(), record["emotion"]
        if label not in ARTEMIS_LABELS:
            raise BenchmarkFormatError(path, row, f"dominant_emotion {label!r} is not one of {ARTEMIS_LABELS}")
        if not isinstance(votes, list) or not set(votes) <= set(ARTEMIS_VOTES) or label not in votes:
            raise BenchmarkFormatError(path, row, f"emotion must list the annotators' choices, got {votes!r}")
        utterances = record.get("utterance")
        if utterances is not None and (not isinstance(utterances, list) or len(utterances) != len(votes)):
            raise BenchmarkFormatError(path, row, "utterance must be a list with one entry per emotion")
        style, painting = str(record["art_style"]).strip(), str(record["painting"]).strip()
        key = (style, unicodedata.normalize("NFC", painting))
        if key in artworks:
            raise BenchmarkFormatError(path, row, f"artwork {style}/{painting} repeats row {artworks[key]}: an "
                                                  "artwork (art_style, painting) is one item, whatever its new_id")
        artworks[key] = row
        images = tuple(str(record[k]) for k in ("img_path", "original_img_path") if record.get(k))
        rows.append(_artemis_item(root, style, painting, label, images + _wikiart_paths(style, painting), path, row))
    return items_frame(rows)


def _artemis_csv(root: Path, path: Path) -> pl.DataFrame:
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
            if not style or not painting or emotion not in ARTEMIS_VOTES:
                raise BenchmarkFormatError(path, row, f"bad record {dict(record)}")
            key = (style, unicodedata.normalize("NFC", painting))
            votes.setdefault(key, Counter())[emotion] += 1
            first.setdefault(key, (painting, row))
    rows = []
    for key, counter in votes.items():
        (top, n), *rest = counter.most_common()
        if top == "something else" or (rest and rest[0][1] == n):
            continue
        (painting, row), style = first[key], key[0]
        rows.append(_artemis_item(root, style, painting, top, _wikiart_paths(style, painting), path, row))
    return items_frame(rows)


def read_artemis(root: Path, file: str | Path | None = None) -> pl.DataFrame:
    """ArtEmis dominant emotion over the authors' 8 emotions (``ARTEMIS_LABELS``; "something else" names no
    emotion and is never a candidate). An item is an artwork, keyed by art_style plus the NFC-normalised
    painting name; a released record of an artwork already listed (with or without another ``new_id``) is
    refused, since which of two labels is right cannot be told and a copy would count twice. The file is
    ``file`` (``.json`` or ``.csv``, under ``root``) when given, else the first present of:

    - ``test_ArtEmis.json``, the authors' released test set (1,920 artworks, 240 per dominant emotion): a JSON
      array of ``img_path`` (their renamed copy, ``./test_dominant_images\\00000.jpg``), ``original_img_path``
      (``./images\\<art_style>\\<painting>.jpg``), ``art_style``, ``painting``, list-valued ``emotion`` and
      ``utterance`` (one per annotator), ``dominant_emotion`` (the label) and ``new_id``. The image is the first
      of ``img_path``, ``original_img_path`` and ``wikiart/<art_style>/<painting>.jpg`` found under ``root``.
    - ``artemis_dataset_release_v0.csv`` (``art_style, painting, emotion, utterance, repetition``, one row per
      annotation), images at ``wikiart/<art_style>/<painting>.jpg``: every artwork with a strict majority
      emotion (a tie or a "something else" majority leaves it out), a superset of the released set.
    """
    path = chosen_file(root, file, (ARTEMIS_RELEASED, ARTEMIS_CSV))
    if path is None:
        raise BenchmarkFormatError(root, None, f"neither {ARTEMIS_RELEASED} nor {ARTEMIS_CSV} found")
    return _artemis_released(root, path) if path.suffix.lower() == ".json" else _artemis_csv(root, path)


def read_uniaa(root: Path, file: str | Path | None = None) -> pl.DataFrame:
    """UNIAA sentiment: the authors' released ``test_UNIAA_Sent.json`` (or ``file``; 464 questions), a JSON
    array of ``id, img_path, question``, ``candidates`` (answer texts), ``correct_ans`` (the answer text),
    ``options`` (letter -> text, the candidates in order), ``answer`` (the letter), ``dimension``, ``category``,
    ``type`` (yes_no / what / how). Letters A, B, ... follow the candidates; ``options`` and ``answer``, when
    present, must agree with them. Only ``dimension == "sentiment"`` is kept (the released file has nothing else;
    a full UNIAA-QA file without ``options``/``answer`` reads too). Images at ``images/<img_path>`` (the authors'
    layout) or ``<img_path>`` under ``root``."""
    path = chosen_file(root, file, (UNIAA_RELEASED,))
    if path is None:
        raise BenchmarkFormatError(root / UNIAA_RELEASED, None, "file not found")
    data = load_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, None, "expected a JSON array of questions")
    rows = []
    for row, record in enumerate(data):
        require_fields(record, ("img_path", "question", "candidates", "correct_ans", "dimension"), path, row)
        if str(record["dimension"]).strip().lower() != "sentiment":
            continue
        candidates = [str(c).strip() for c in record["candidates"]]
        if str(record["correct_ans"]).strip() not in candidates:
            raise BenchmarkFormatError(path, row, f"correct_ans {record['correct_ans']!r} is not a candidate")
        keys = [chr(ord("A") + i) for i in range(len(candidates))]
        answer = keys[candidates.index(str(record["correct_ans"]).strip())]
        options = record.get("options")
        if options is not None and (not isinstance(options, dict) or list(options) != keys
                                    or [str(o).strip() for o in options.values()] != candidates):
            raise BenchmarkFormatError(path, row, f"options {options!r} are not the candidates in order")
        if record.get("answer") not in (None, answer):
            raise BenchmarkFormatError(path, row, f"answer {record['answer']!r} is not correct_ans's letter {answer}")
        image = str(record["img_path"])
        rows.append({"benchmark": "uniaa", "item_id": str(record.get("id", row)), "task": "multiple_choice",
                     "carrier": "single", "images": [local_image(root, (f"images/{image}", image), path, row)],
                     "question": str(record["question"]).strip(), "option_keys": keys, "option_texts": candidates,
                     "answer": answer, "question_type": record.get("type"), "dimension": record.get("category"),
                     "source_file": str(path), "source_row": str(row)})
    return items_frame(rows)


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
    data = load_json(path)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(path, None, "expected a JSON object keyed by image name")
    for name, value in data.items():
        entry = {"answer": value} if isinstance(value, str) else value
        if not isinstance(entry, dict) or not str(entry.get("answer") or "").strip():
            raise BenchmarkFormatError(path, name, f"expected a letter or an object with 'answer', got {value!r}")
        key[name] = {"answer": str(entry["answer"]).strip().upper(), "dimension": entry.get("dimension"),
                     "question_type": entry.get("question_type")}
    return key


def read_aesbench(root: Path, answer_key: Path | None = None, file: str | Path | None = None) -> pl.DataFrame:
    """AesBench AesE: the authors' released ``test_AesBench_AesE.json`` (2,800 images), else AesBench's own
    ``AesBench_evaluation.json`` (or ``file``): an object keyed by image file name whose ``AesE_data.Question``
    and ``AesE_data.Options`` (lines ``A) text``) make one multiple-choice item; images under ``images/``. The public file has no answers: without ``answer_key`` (``read_answer_key``) every
    ``answer`` is null and the AesE accuracy cannot be computed (the report says so). Dimension and question
    type come from the key when it has them; the type is otherwise read from the question (``question_kind``)."""
    path = chosen_file(root, file, (AESBENCH_RELEASED, AESBENCH_FILE))
    if path is None:
        raise BenchmarkFormatError(root, None, f"neither {AESBENCH_RELEASED} nor {AESBENCH_FILE} found")
    data = load_json(path)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(path, None, "expected a JSON object keyed by image name")
    key = read_answer_key(answer_key) if answer_key is not None else {}
    rows = []
    for name, record in data.items():
        aese = record.get("AesE_data") if isinstance(record, dict) else None
        require_fields(aese, ("Question", "Options"), path, name)
        options = parse_options_lines(aese["Options"], path, name)
        entry = key.get(name, {})
        if entry and entry["answer"] not in options:
            raise BenchmarkFormatError(answer_key or path, name, f"answer {entry['answer']!r} is not an option")
        rows.append({"benchmark": "aesbench", "item_id": name, "task": "multiple_choice", "carrier": "single",
                     "images": [local_image(root, f"images/{name}", path, name)],
                     "question": str(aese["Question"]).strip(), "option_keys": list(options),
                     "option_texts": list(options.values()), "answer": entry.get("answer"),
                     "question_type": entry.get("question_type") or question_kind(str(aese["Question"])),
                     "dimension": entry.get("dimension"), "source_file": str(path), "source_row": name})
    return items_frame(rows)


READERS: dict[str, Callable[..., pl.DataFrame]] = {
    "eemo_bench": read_eemo_bench, "artphoto": read_artphoto, "artemis": read_artemis,
    "uniaa": read_uniaa, "aesbench": read_aesbench,
}
"""Reader per benchmark name; each takes the root folder (``read_aesbench`` also ``answer_key``), the
cross-domain ones also ``file``: the test file to read instead of the default (the authors' released file when
present)."""
