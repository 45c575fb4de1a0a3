"""Damaged benchmark records: every one raises ``BenchmarkFormatError`` naming the file and the record, none
yields a wrong item (an image listed twice, a VAD string read by character, a ranking that repeats an emotion,
merged option keys). Image folders that are links are read; a path whose ``..`` leaves the root is not."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from eemo_pipeline.evaluation import eemo_bench as e
from eemo_pipeline.evaluation import readers as b
from eemo_pipeline.evaluation.benchmark_files import local_image, parse_options_dict
from eemo_pipeline.evaluation.samples import write_sample_benchmarks, write_sample_eemo_bench_released

PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=150)
TRUTH = e.EEMO_BENCH_GROUND_TRUTH


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    return write_sample_eemo_bench_released(tmp_path_factory.mktemp("eemo_bench_released"))


def _copy_with(released: Path, target: Path, file: str, change) -> Path:
    root = shutil.copytree(released, target)
    records = json.loads((root / file).read_text(encoding="utf-8"))
    (root / file).write_text(json.dumps(change(records)), encoding="utf-8")
    return root


def _set(row: int, **fields):
    def change(records):
        records[row] |= fields
        return records
    return change


@pytest.mark.parametrize(("file", "row", "change", "message"), [
    (TRUTH, 6, lambda r: r + [copy.deepcopy(r[5])], "image_name '6.jpg' repeats row 5"),
    (TRUTH, 5, lambda r: r[:4] + [r[4] | {"emotion_list": [["anger", 9], ["fear", 5], ["joy", 1]]}] + r[4:],
     "image_name '5.jpg' repeats row 4"),  # a conflicting copy: neither ranking wins
    (TRUTH, 3, _set(3, Valence="6.5"), r"Valence must be a \[mean, sd, range\] triple of numbers, got '6.5'"),
    (TRUTH, 3, _set(3, Valence="7.9, 0.8, 1"), "Valence must be a .* triple of numbers"),
    (TRUTH, 3, _set(3, Valence=[True, 0, 0]), "Valence must be a .* triple of numbers"),
    (TRUTH, 3, _set(3, Arousal={"mean": 5}), "Arousal must be a .* triple of numbers"),  # was a bare KeyError: 0
    (TRUTH, 3, _set(3, Dominance=["6", 1, 1]), "Dominance must be a .* triple of numbers"),
    (TRUTH, 3, _set(3, Valence=[9.5, 1, 1]), "Valence mean 9.5 is outside 1-9"),
    (TRUTH, 2, _set(2, emotion_list=[["joy", 5], ["joy", 4], ["fear", 1]]), "emotion_list repeats 'joy'"),
    (TRUTH, 2, _set(2, emotion_list=[["joy", "nan"], ["fear", 4], ["anger", 1]]),
     r"emotion_list entry \['joy', 'nan'\] is not \[emotion, votes >= 0\]"),
    (TRUTH, 2, _set(2, emotion_list=[["joy", -5], ["fear", 4], ["anger", 1]]), "emotion_list entry .* is not"),
    (TRUTH, 2, _set(2, emotion_list=[["joy", True], ["fear", False], ["anger", False]]), "emotion_list entry .* is not"),
    (TRUTH, 2, _set(2, emotion_list=[["joy", 5, 1], ["fear", 4, 1], ["anger", 1, 1]]), "emotion_list entry .* is not"),
    (TRUTH, 2, _set(2, emotion_list=[["joy", 5], ["fear", 4]]), "emotion_list must be three"),
    (TRUTH, 2, _set(2, emotion_list=[["joy", 5], ["awe", 4], ["fear", 1]]), "emotion_list names 'awe'"),
    (TRUTH, 1, _set(1, category=["a"]), r"category must be a non-empty string, got \['a'\]"),
    (TRUTH, 1, _set(1, image_name="../Ebench_imgpir(en).json"),
     r"image_name '\.\./Ebench_imgpir\(en\)\.json' is not a file name under images/"),
    (TRUTH, 1, _set(1, judge_A="{1: 'No', '1': 'Yes'}"), "option 1: 'No' is not a letter and a text"),
    (TRUTH, 1, _set(1, judge_A={" A ": "No", "A": "Yes"}), "option key 'A' repeats"),
    (TRUTH, 1, _set(1, judge_A="{'A': 'No', 'A': 'Yes', 'B': 'x'}"), "option key 'A' repeats"),
    (TRUTH, 1, _set(1, choose_A={"A": {"x": 1}, "B": None}), "option 'A': {'x': 1} is not a letter and a text"),
    (TRUTH, 1, _set(1, judge_A="[" * 5000 + "]" * 5000), "options are not a dict literal"),
    (TRUTH, 1, _set(1, judge_answer=1), "judge_answer 1 is not an option letter"),
    (e.EEMO_BENCH_PAIRS, 4, lambda r: r + [r[0]], "images '1.jpg' and '4.jpg' repeat row 0"),
    (e.EEMO_BENCH_OPEN_SINGLE, 3, lambda r: r + [r[0]], "image '1.jpg' repeats row 0"),
    (e.EEMO_BENCH_PAIRS, 2, _set(2, choose_question=["?"]), "choose_question must be a non-empty string"),
])
def test_a_damaged_eemo_bench_record_names_file_and_row(released, tmp_path, file, row, change, message):
    root = _copy_with(released, tmp_path / "eemo", file, change)
    with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{root / file}, row {row}: ") + message):
        b.read_eemo_bench(root)


@pytest.mark.parametrize("file", [TRUTH, e.EEMO_BENCH_PAIRS, e.EEMO_BENCH_OPEN_SINGLE, e.EEMO_BENCH_OPEN_PAIR])
def test_an_empty_eemo_bench_file_is_refused(released, tmp_path, file):
    root = _copy_with(released, tmp_path / "eemo", file, lambda records: [])
    with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{root / file}: an empty array: no ")):
        b.read_eemo_bench(root)


# ------------------------------------------------------------------------- any value in a record's field

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6) | st.sampled_from(["joy", "Fear ", "awe", "6.5"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=8,
)


def _triple_mean(value) -> float | None:
    numbers = isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf") for v in value)
    return float(value[0]) if numbers and 1 <= value[0] <= 9 else None


@pytest.fixture(scope="module")
def scratch(released, tmp_path_factory) -> Path:
    return shutil.copytree(released, tmp_path_factory.mktemp("scratch") / "eemo")


@PROPERTY
@given(value=st.one_of(_JSON, st.lists(st.floats(0, 10), min_size=3, max_size=3)))
def test_any_vad_value_is_read_as_its_triples_mean_or_refused_naming_the_row(scratch, value):
    records = json.loads((scratch / TRUTH).read_text())
    original = copy.deepcopy(records)
    records[2]["Valence"] = value
    (scratch / TRUTH).write_text(json.dumps(records))
    try:
        mean = _triple_mean(value)
        event("refused" if mean is None else "read")
        if mean is None:
            with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{scratch / TRUTH}, row 2: ") + "(missing )?Valence"):
                b.read_eemo_bench(scratch)
        else:
            items = b.read_eemo_bench(scratch)
            got = items.filter(items["item_id"] == "vad/3.jpg")["valence"].item()
            assert got == pytest.approx((mean - 1) / 8)
    finally:
        (scratch / TRUTH).write_text(json.dumps(original))


_PAIR = st.tuples(st.sampled_from([*e.EKMAN7, " Joy", "FEAR", "awe"]),
                  st.one_of(st.integers(-2, 60), st.floats(-1, 60), st.booleans(), st.text(max_size=3))).map(list)
_RANKED = st.tuples(st.permutations([*e.EKMAN7]), st.lists(st.integers(0, 60) | st.floats(0, 60), min_size=3,
                                                            max_size=3)).map(
    lambda drawn: [[emotion, votes] for emotion, votes in zip(drawn[0], drawn[1])])
_ONE_OFF = st.tuples(_RANKED, st.integers(0, 2), st.one_of(_PAIR, _JSON)).map(
    lambda drawn: [drawn[2] if i == drawn[1] else pair for i, pair in enumerate(drawn[0])])
_EMOTION_LISTS = st.one_of(_RANKED, _ONE_OFF, st.lists(st.one_of(_PAIR, _JSON), max_size=4))


@PROPERTY
@given(emotion_list=_EMOTION_LISTS)
def test_any_emotion_list_is_a_ranking_of_three_distinct_emotions_or_refused(scratch, emotion_list):
    records = json.loads((scratch / TRUTH).read_text())
    original = copy.deepcopy(records)
    records[2]["emotion_list"] = emotion_list
    (scratch / TRUTH).write_text(json.dumps(records))

    def valid(pair) -> bool:
        return (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                and pair[0].strip().lower() in e.EKMAN7 and isinstance(pair[1], int | float)
                and not isinstance(pair[1], bool) and pair[1] >= 0)

    try:
        emotions = [pair[0].strip().lower() for pair in emotion_list if valid(pair)]
        readable = len(emotion_list) == 3 and len(emotions) == 3 and len(set(emotions)) == 3
        event("read" if readable else "refused")
        if readable:
            items = b.read_eemo_bench(scratch)
            ranking = items.filter(items["item_id"] == "ranking/3.jpg")["ranking"].item().to_list()
            by_votes = sorted(range(3), key=lambda i: -emotion_list[i][1])
            assert ranking == [emotions[i] for i in by_votes]
        else:
            with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{scratch / TRUTH}, row 2: ") + "(missing )?emotion_list"):
                b.read_eemo_bench(scratch)
    finally:
        (scratch / TRUTH).write_text(json.dumps(original))


@PROPERTY
@given(options=st.one_of(_JSON, st.dictionaries(st.sampled_from(["A", " A", "B", "B ", "C"]),
                                                st.one_of(st.text(max_size=4), st.none()), max_size=4)))
def test_options_are_letters_and_texts_or_refused_naming_the_row(options):
    try:
        parsed = parse_options_dict(options, Path("f.json"), 7)
    except b.BenchmarkFormatError as error:
        event("refused")
        assert str(error).startswith("f.json, row 7: ")
        return
    event("read")
    assert isinstance(options, dict) and len(parsed) == len(options) >= 1
    assert all(isinstance(value, str) for value in options.values())
    assert parsed == {key.strip(): value.strip() for key, value in options.items()}


# -------------------------------------------------------------------------------------- image folders

def test_an_images_folder_or_root_that_is_a_link_is_read(released, tmp_path):
    elsewhere = shutil.copytree(released / "images", tmp_path / "disk" / "images")
    root = tmp_path / "eemo"
    root.mkdir()
    for file in (TRUTH, e.EEMO_BENCH_PAIRS, e.EEMO_BENCH_OPEN_SINGLE, e.EEMO_BENCH_OPEN_PAIR):
        shutil.copy(released / file, root / file)
    (root / "images").symlink_to(elsewhere, target_is_directory=True)
    items = b.read_eemo_bench(root)
    assert items.height == b.read_eemo_bench(released).height
    assert items.filter(items["item_id"] == "vad/1.jpg")["images"].item().to_list() == [str(root / "images" / "1.jpg")]
    (tmp_path / "link").symlink_to(root, target_is_directory=True)
    assert b.read_eemo_bench(tmp_path / "link").height == items.height  # the root itself a link


def test_a_path_out_of_the_root_is_still_refused(released, tmp_path):
    (tmp_path / "outside.jpg").write_bytes(b"x")
    root = _copy_with(released, tmp_path / "eemo", e.EEMO_BENCH_PAIRS, lambda r: r)
    with pytest.raises(b.BenchmarkFormatError, match=r"image path '\.\./outside\.jpg' escapes the root"):
        local_image(root, "../outside.jpg", root / e.EEMO_BENCH_PAIRS, 0)
    with pytest.raises(b.BenchmarkFormatError, match="escapes the root"):
        local_image(root, "images/../../outside.jpg", root / e.EEMO_BENCH_PAIRS, 0)


# ------------------------------------------------------------------------------------------- ArtEmis

@pytest.mark.parametrize("new_id", [None, "missing", 99])
def test_an_artemis_artwork_listed_twice_is_refused(tmp_path, new_id):
    root = write_sample_benchmarks(tmp_path)["artemis"]
    records = json.loads((root / b.ARTEMIS_RELEASED).read_text(encoding="utf-8"))
    copy_ = copy.deepcopy(records[1]) | {"dominant_emotion": "fear", "emotion": ["fear"], "utterance": ["x"]}
    if new_id == "missing":
        copy_.pop("new_id", None)
    elif new_id is not None:
        copy_["new_id"] = new_id
    (root / b.ARTEMIS_RELEASED).write_text(json.dumps(records + [copy_]), encoding="utf-8")
    with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{b.ARTEMIS_RELEASED}, row {len(records)}: artwork ")
                       + r".* repeats row 1"):
        b.read_artemis(root)


def test_any_reader_refuses_an_item_listed_twice(tmp_path):
    root = write_sample_benchmarks(tmp_path)["artphoto"]
    records = json.loads((root / b.ARTPHOTO_RELEASED).read_text(encoding="utf-8"))
    (root / b.ARTPHOTO_RELEASED).write_text(json.dumps(records + [records[2] | {"id": 50}]), encoding="utf-8")
    with pytest.raises(b.BenchmarkFormatError, match=r"test_Artphoto\.json, row 50: item .* repeats the one of row 2"):
        b.read_artphoto(root)
