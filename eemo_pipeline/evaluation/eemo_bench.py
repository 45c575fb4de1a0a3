"""EEmo-Bench's items from either of its two file layouts (``read_eemo_bench``).

* ``released``: the four files the EEmo-Logic authors evaluate with (``test_data/`` of their public repository),
  read whole: per image of ``Ebench_1_data(jac_en_check).json`` a judge and a choose question, a ranking and a
  VAD item; per pair of ``Ebench_imgpir(en).json`` a judge and a choose question; the open-ended questions of
  ``Ebench_open_ended(en).json`` (single) and ``Ebench_open_ended(en_pair).json`` (pair). On the real files:
  3,920 single and 2,012 pair perception items, 1,960 ranking, 1,960 VAD, 501 + 300 description items.
* ``questions``: EEmo-Bench's question files ``EEmo-Bench(single).json`` and ``EEmo-Bench(pair).json`` (one
  record per question, options as a Python dict string, reference answers for the open-ended ones) beside the
  same ground-truth file.

Each item names the file and record it came from (``source_file``, ``source_row``); images are under
``images/``. Readings shared with the authors' inference scripts: the answer letter is the record's
``judge_answer`` / ``choose_answer`` (``correct_answer`` in the question files), a key of its options; the
ranking is ``emotion_list`` in its order (votes descending, ties as listed); a VAD value is the first of its
``[mean, sd, range]`` triple, rescaled from 1-9 to 0-1.

Records are checked whole against what the real files hold, and a damaged one raises ``BenchmarkFormatError``
naming the file and row instead of yielding a wrong item: image names are unique plain file names, a pair is
listed once, ``emotion_list`` is three ``[emotion, votes]`` pairs of distinct Ekman emotions with votes >= 0,
each VAD value a triple of numbers whose mean lies in 1-9, options are string letters and texts without
repeats, texts are strings, and no file is an empty array.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.evaluation.benchmark_files import (
    BenchmarkFormatError,
    items_frame,
    load_json,
    local_image,
    parse_options_dict,
    require_fields,
    text_field,
)
from eemo_pipeline.tasks.registry import TASKS

EKMAN7 = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
VAD_SCALE = (1.0, 9.0)  # EEmo-Bench's SAM scale; items carry VAD on 0-1

EEMO_BENCH_GROUND_TRUTH = "Ebench_1_data(jac_en_check).json"
# The authors' released layout (test_data/ of workerred/EEmo-Logic), with the ground truth above.
EEMO_BENCH_PAIRS = "Ebench_imgpir(en).json"
EEMO_BENCH_OPEN_SINGLE = "Ebench_open_ended(en).json"
EEMO_BENCH_OPEN_PAIR = "Ebench_open_ended(en_pair).json"
# EEmo-Bench's question files.
EEMO_BENCH_SINGLE = "EEmo-Bench(single).json"
EEMO_BENCH_PAIR = "EEmo-Bench(pair).json"

LAYOUTS = ("released", "questions")
"""The two file layouts; ``eemo_bench_layout`` picks one from the files in a root."""
PERCEPTION_KINDS: dict[str, str] = {"judge": "Yes-or-No", "choose": "What/How"}
"""The authors' two perception questions per image or pair and the paper's question type of each."""
_RELEASED_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "single": {"judge": ("judge_Q", "judge_A"), "choose": ("choose_Q", "choose_A")},
    "pair": {"judge": ("judge_question", "judge_options"), "choose": ("choose_question", "choose_options")},
}
"""Question and options fields of each kind, per carrier; the answer letter is ``<kind>_answer`` in both."""

_CATEGORY = re.compile(r"category:\s*(.*?)(?:\s{2,}|\s+Valence:|$)")


def eemo_bench_layout(root: Path) -> str:
    """``released`` when the authors' pair file is in ``root``, else ``questions``."""
    return "released" if (root / EEMO_BENCH_PAIRS).is_file() else "questions"


def _array(path: Path, what: str) -> list[Any]:
    data = load_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, None, f"expected a JSON array of {what}")
    if not data:
        raise BenchmarkFormatError(path, None, f"an empty array: no {what}")
    return data


def _number(value: Any) -> bool:
    """A JSON number (a bool is none, nor are NaN and the infinities)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _image_name(record: dict[str, Any], key: str, path: Path, row: int) -> str:
    """An image's file name under ``images/``: a string naming a file, not a path."""
    name = text_field(record, key, path, row)
    if name in (".", "..") or "/" in name or "\\" in name:
        raise BenchmarkFormatError(path, row, f"{key} {name!r} is not a file name under images/")
    return name


def _ranking(emotion_list: Any, path: Path, row: int) -> list[str]:
    """``emotion_list``: three ``[emotion, votes]`` pairs of distinct emotions of ``EKMAN7`` (case and blanks
    aside) whose votes are numbers >= 0; the ranking is the emotions by votes, descending (ties as listed)."""
    if not isinstance(emotion_list, list) or len(emotion_list) != 3:
        raise BenchmarkFormatError(path, row, f"emotion_list must be three [emotion, votes] pairs, "
                                              f"got {emotion_list!r:.200}")
    emotions, votes = [], []
    for pair in emotion_list:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and _number(pair[1])
                and pair[1] >= 0):
            raise BenchmarkFormatError(path, row, f"emotion_list entry {pair!r:.80} is not [emotion, votes >= 0]")
        emotion = pair[0].strip().lower()
        if emotion not in EKMAN7:
            raise BenchmarkFormatError(path, row, f"emotion_list names {pair[0]!r:.40}, not one of "
                                                  f"{', '.join(EKMAN7)}")
        if emotion in emotions:
            raise BenchmarkFormatError(path, row, f"emotion_list repeats {emotion!r}")
        emotions.append(emotion)
        votes.append(pair[1])
    return [emotions[i] for i in sorted(range(3), key=lambda i: -votes[i])]


def _vad_mean(record: dict[str, Any], key: str, path: Path, row: int) -> float:
    """The mean of a ``[mean, sd, range]`` triple of numbers, on ``VAD_SCALE``."""
    triple = record[key]
    low, high = VAD_SCALE
    if not isinstance(triple, list) or len(triple) != 3 or not all(_number(value) for value in triple):
        raise BenchmarkFormatError(path, row, f"{key} must be a [mean, sd, range] triple of numbers, "
                                              f"got {triple!r:.200}")
    if not low <= triple[0] <= high:
        raise BenchmarkFormatError(path, row, f"{key} mean {triple[0]} is outside {low:g}-{high:g}")
    return float(triple[0])


def _ground_truth(path: Path, data: list[Any]) -> dict[str, dict[str, Any]]:
    """Per image name: its row, category, ranking and VAD on 0-1. Every record is checked whole (an image
    listed twice, a string where a number belongs, a ranking that repeats an emotion...): a damaged record raises
    ``BenchmarkFormatError`` naming the file and row, it never yields an item."""
    truth: dict[str, dict[str, Any]] = {}
    low, high = VAD_SCALE
    for row, record in enumerate(data):
        require_fields(record, ("image_name", "category", "emotion_list", "Valence", "Arousal", "Dominance"), path,
                       row)
        name = _image_name(record, "image_name", path, row)
        if name in truth:
            raise BenchmarkFormatError(path, row, f"image_name {name!r} repeats row {truth[name]['row']}")
        ranking = _ranking(record["emotion_list"], path, row)
        vad = {dim: _vad_mean(record, dim.capitalize(), path, row) for dim in ("valence", "arousal", "dominance")}
        truth[name] = {
            "row": row, "category": text_field(record, "category", path, row), "ranking": ranking,
            **{dim: (value - low) / (high - low) for dim, value in vad.items()},
        }
    return truth


def _task_items(root: Path, path: Path, truth: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per image of the ground truth, the item of every registered task that makes one
    (``Task.eemo_bench_item``: ranking, vad), named ``<task>/<image>``."""
    rows = []
    for name, record in truth.items():
        image = local_image(root, f"images/{name}", path, record["row"])
        common = {"benchmark": "eemo_bench", "carrier": "single", "images": [image], "category": record["category"],
                  "source_file": str(path), "source_row": str(record["row"])}
        image_truth = {**record, "labels": EKMAN7}
        for task in TASKS.values():
            fields = task.eemo_bench_item(image_truth)
            if fields is not None:
                rows.append({**common, **fields, "item_id": f"{task.name}/{name}", "task": task.name})
    return rows


def _choice(path: Path, row: int, options_value: Any, answer_value: Any, field: str) -> dict[str, Any]:
    options = parse_options_dict(options_value, path, row)
    if not isinstance(answer_value, str):
        raise BenchmarkFormatError(path, row, f"{field} {answer_value!r:.40} is not an option letter")
    answer = answer_value.strip()
    if answer not in options:
        raise BenchmarkFormatError(path, row, f"{field} {answer!r} is not an option of {options}")
    return {"task": "perception", "option_keys": list(options), "option_texts": list(options.values()),
            "answer": answer}


# ---------------------------------------------------------------------------------------- released layout


def _images_of(root: Path, record: dict[str, Any], slots: tuple[str, ...], truth: dict[str, dict[str, Any]],
               path: Path, row: int, seen: dict[tuple[str, ...], int]) -> tuple[list[str], str | None]:
    """The record's images (``image_name`` or ``image1_url``/``image2_url``) and the first one's category.
    ``seen`` holds the image names of the file's earlier records: a record of the same images again (a pair
    listed twice) is refused, not counted twice."""
    names = tuple(_image_name(record, slot, path, row) for slot in slots)
    if names in seen:
        what = f"images {' and '.join(map(repr, names))} repeat" if len(names) > 1 else f"image {names[0]!r} repeats"
        raise BenchmarkFormatError(path, row, f"{what} row {seen[names]}")
    seen[names] = row
    images = [local_image(root, f"images/{name}", path, row) for name in names]
    return images, truth.get(names[0], {}).get("category")


def _released_perception(root: Path, path: Path, data: list[Any], carrier: str,
                         truth: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The judge and choose question of every record (an image of the ground truth, or a pair)."""
    slots = ("image_name",) if carrier == "single" else ("image1_url", "image2_url")
    fields = _RELEASED_FIELDS[carrier]
    rows, seen = [], {}
    for row, record in enumerate(data):
        require_fields(record, (*slots, *(f for kind in fields for f in (*fields[kind], f"{kind}_answer"))), path, row)
        images, category = _images_of(root, record, slots, truth, path, row, seen)
        key = Path(images[0]).name if carrier == "single" else str(row)
        for kind, question_type in PERCEPTION_KINDS.items():
            question, options = fields[kind]
            rows.append({"benchmark": "eemo_bench", "item_id": f"{carrier}/{kind}/{key}", "carrier": carrier,
                         "images": images, "question": text_field(record, question, path, row),
                         "question_type": question_type,
                         "category": category, "source_file": str(path), "source_row": str(row),
                         **_choice(path, row, record[options], record[f"{kind}_answer"], f"{kind}_answer")})
    return rows


def _released_descriptions(root: Path, path: Path, carrier: str,
                           truth: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The open-ended questions of an ``Ebench_open_ended`` file; the release has no reference answers."""
    slots, question = (("image_name",), "open_ended_Q") if carrier == "single" else \
        (("image1_url", "image2_url"), "open_ended_question")
    rows, seen = [], {}
    for row, record in enumerate(_array(path, "open-ended questions")):
        require_fields(record, (*slots, question), path, row)
        images, category = _images_of(root, record, slots, truth, path, row, seen)
        key = Path(images[0]).name if carrier == "single" else str(row)
        rows.append({"benchmark": "eemo_bench", "item_id": f"description/{carrier}/{key}", "task": "description",
                     "carrier": carrier, "images": images, "question": text_field(record, question, path, row),
                     "question_type": "Open_ended", "category": category, "answer": None,
                     "source_file": str(path), "source_row": str(row)})
    return rows


def _read_released(root: Path) -> list[dict[str, Any]]:
    truth_path, pairs_path = root / EEMO_BENCH_GROUND_TRUTH, root / EEMO_BENCH_PAIRS
    images = _array(truth_path, "images")
    truth = _ground_truth(truth_path, images)
    return (_released_perception(root, truth_path, images, "single", truth)
            + _released_perception(root, pairs_path, _array(pairs_path, "image pairs"), "pair", truth)
            + _task_items(root, truth_path, truth)
            + _released_descriptions(root, root / EEMO_BENCH_OPEN_SINGLE, "single", truth)
            + _released_descriptions(root, root / EEMO_BENCH_OPEN_PAIR, "pair", truth))


# --------------------------------------------------------------------------------------- questions layout


def _questions(root: Path, carrier: str, truth: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    path = root / (EEMO_BENCH_SINGLE if carrier == "single" else EEMO_BENCH_PAIR)
    slots = ("",) if carrier == "single" else ("1", "2")
    rows = []
    for row, record in enumerate(_array(path, "questions")):
        require_fields(record, ("question", "correct_answer", "question_type",
                                *(f"image{slot}_url" for slot in slots)), path, row)
        images, category = [], None
        for slot in slots:
            name = text_field(record, f"image{slot}_url", path, row)
            # the Windows-style "image"/"image1" path ("images\\579.jpg") wins when present
            windows = text_field(record, f"image{slot}", path, row) if record.get(f"image{slot}") else None
            images.append(local_image(root, windows or f"images/{name}", path, row))
            found = truth.get(name, {}).get("category")
            if found is None and record.get(f"image{slot}_label"):
                match = _CATEGORY.search(str(record[f"image{slot}_label"]))
                found = match.group(1).strip() if match else None
            category = category or found
        question_type = text_field(record, "question_type", path, row)
        item = {"benchmark": "eemo_bench", "item_id": f"{carrier}/{record.get('id', row)}", "carrier": carrier,
                "images": images, "question": text_field(record, "question", path, row),
                "question_type": question_type, "category": category,
                "answer": text_field(record, "correct_answer", path, row),
                "source_file": str(path), "source_row": str(row)}
        if question_type == "Open_ended":
            item.update(task="description", dimension=record.get("describing_dimension"))
        elif question_type in PERCEPTION_KINDS.values():
            item.update(**_choice(path, row, record.get("options"), record["correct_answer"], "correct_answer"),
                        dimension=record.get("perceptual_dimension"), concern=record.get("question_concern"))
        else:
            raise BenchmarkFormatError(path, row, f"unknown question_type {question_type!r}")
        rows.append(item)
    return rows


def _read_questions(root: Path) -> list[dict[str, Any]]:
    truth_path = root / EEMO_BENCH_GROUND_TRUTH
    truth = _ground_truth(truth_path, _array(truth_path, "images"))
    return (_questions(root, "single", truth) + _questions(root, "pair", truth)
            + _task_items(root, truth_path, truth))


def read_eemo_bench(root: Path, layout: str | None = None) -> pl.DataFrame:
    """EEmo-Bench's perception, description, ranking and VAD items from ``root`` in ``layout`` (default: the
    one its files show, ``eemo_bench_layout``).

    ``released``, the authors' ``test_data/`` files: ``Ebench_1_data(jac_en_check).json`` (per image
    ``image_name, category, emotion_list`` [[emotion, votes] x 3], ``Valence/Arousal/Dominance`` [mean, sd,
    range] on 1-9, ``judge_Q, judge_A`` (options as a JSON object), ``judge_answer``, ``choose_Q, choose_A,
    choose_answer``); ``Ebench_imgpir(en).json`` (per pair ``image1_url, image2_url, judge_question,
    judge_options, judge_answer, choose_question, choose_options, choose_answer``); ``Ebench_open_ended(en).json``
    (``image_name, open_ended_Q``) and ``Ebench_open_ended(en_pair).json`` (``image1_url, image2_url,
    open_ended_question``), which the authors' description script reads. Judge questions are the paper's
    Yes-or-No type, choose questions What/How. The open-ended questions have no reference answer in the
    release, so their items' ``answer`` is null (the judge cannot score them); the ``open_ended_Q`` and
    ``open_ended_question`` fields of the first two files are earlier wordings and are not read.

    ``questions``: ``EEmo-Bench(single).json`` and ``EEmo-Bench(pair).json`` (``id, image_url`` (pair:
    ``image1_url, image2_url``, optional Windows-style ``image1``/``image2`` paths and ``image1_label``
    strings), ``question``, ``options`` as a Python dict repr string, ``correct_answer``, ``question_type``
    Yes-or-No / What/How / Open_ended, ``perceptual_dimension``, ``question_concern``, ``describing_dimension``)
    and the same ground-truth file.

    In both, the registered tasks' items (ranking, VAD) are the images of the ground-truth file, and a question's content category
    is its (first) image's ground-truth category (else, in the question files, the one in its label string).
    """
    layout = layout or eemo_bench_layout(root)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown EEmo-Bench layout {layout!r}; use one of {LAYOUTS}")
    return items_frame(_read_released(root) if layout == "released" else _read_questions(root))
