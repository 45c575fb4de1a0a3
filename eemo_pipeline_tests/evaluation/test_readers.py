"""Benchmark readers on the sample files, which carry the real files' quirks."""

import json
import shutil

import polars as pl
import pytest

from eemo_pipeline.evaluation import readers as b


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return b.write_sample_benchmarks(tmp_path_factory.mktemp("benchmarks"))


def test_eemo_bench_items(roots):
    items = b.read_eemo_bench(roots["eemo_bench"])
    assert items.schema == pl.Schema(b.ITEM_SCHEMA)
    counts = dict(items.group_by("task").len().iter_rows())
    assert counts == {"perception": 8, "description": 3, "ranking": 6, "vad": 6}
    first = items.filter(pl.col("item_id") == "single/0").row(0, named=True)
    # Python-dict option string and a Windows-style image path ("images\\1.jpg")
    assert first["option_keys"] == ["A", "B"] and first["option_texts"] == ["No", "Yes"]
    assert first["images"] == [str((roots["eemo_bench"] / "images" / "1.jpg").resolve())]
    assert first["category"] == "Animal" and first["dimension"] == "Emotion perception"
    pair = items.filter(pl.col("item_id") == "pair/2").row(0, named=True)
    assert len(pair["images"]) == 2 and pair["images"][1].endswith("6.jpg") and pair["answer"] == "C"
    ranking = items.filter(pl.col("item_id") == "ranking/2.jpg").row(0, named=True)
    assert ranking["ranking"] == ["fear", "disgust", "sadness"]
    vad = items.filter(pl.col("item_id") == "vad/1.jpg").row(0, named=True)
    assert vad["valence"] == pytest.approx((6.0 - 1) / 8) and vad["category"] == "Animal"


def test_eemo_bench_bad_options_name_file_and_row(roots, tmp_path):
    root = shutil.copytree(roots["eemo_bench"], tmp_path / "eemo")
    records = json.loads((root / b.EEMO_BENCH_SINGLE).read_text())
    records[2]["options"] = "{'A': 'Yes', 'B': }"
    (root / b.EEMO_BENCH_SINGLE).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match=r"EEmo-Bench\(single\)\.json, row 2: options are not a dict"):
        b.read_eemo_bench(root)
    records[2]["options"] = "{'A': 'Yes', 'B': 'No'}"
    records[2]["correct_answer"] = "D"
    (root / b.EEMO_BENCH_SINGLE).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match="row 2: correct_answer 'D' is not an option"):
        b.read_eemo_bench(root)


def test_artphoto_skips_non_images_and_keeps_sad(roots):
    items = b.read_artphoto(roots["artphoto"])
    assert items.height == 8 and "readme.txt" not in items["item_id"].to_list()
    assert items.filter(pl.col("item_id") == "sad_0008.jpg")["answer"].item() == "sad"
    (roots["artphoto"] / "joy_0001.jpg").write_bytes(b"x")
    try:
        with pytest.raises(b.BenchmarkFormatError, match="joy_0001.jpg: file name prefix 'joy'"):
            b.read_artphoto(roots["artphoto"])
    finally:
        (roots["artphoto"] / "joy_0001.jpg").unlink()


def test_artemis_majority_vote_and_non_nfc_names(roots):
    items = b.read_artemis(roots["artemis"])
    answers = dict(zip(items["item_id"].str.split("/").list.first(), items["answer"]))
    # the tie (Cubism) and the "something else" winner (Pop_Art) have no dominant emotion
    assert answers == {"Impressionism": "contentment", "Romanticism": "fear", "Baroque": "awe", "Expressionism": "fear"}
    monet = items.filter(pl.col("dimension") == "Impressionism")["images"].item()[0]
    assert monet.endswith("é.jpg")  # the NFD name in the CSV found the NFC file


def test_uniaa_keeps_sentiment_and_letters_by_position(roots):
    items = b.read_uniaa(roots["uniaa"])
    assert items.height == 4 and items["answer"].to_list() == ["A", "A", "B", "B"]
    assert items["question_type"].to_list() == ["what", "yes_no", "how", "yes_no"]


def test_aesbench_newline_options_and_answer_key(roots):
    root = roots["aesbench"]
    without = b.read_aesbench(root)
    assert without["answer"].null_count() == without.height  # the public file has no answers
    items = b.read_aesbench(root, root / b.SAMPLE_AESBENCH_ANSWER_KEY)
    row = items.filter(pl.col("item_id") == "43957.jpg").row(0, named=True)
    # "D)A feeling of boredom" without the space, and "C) A vibrant and lively\nambiance" over two lines
    assert row["option_keys"] == ["A", "B", "C", "D"] and row["option_texts"][3] == "A feeling of boredom"
    assert row["option_texts"][2] == "A vibrant and lively ambiance"
    assert row["answer"] == "D" and row["dimension"] == "Vibe" and row["question_type"] == "what"
    assert items.filter(pl.col("item_id") == "44252.jpg")["question_type"].item() == "yes-no"
    bad = root.parent / "bad_key.csv"
    bad.write_text("image,answer\n43957.jpg,E\n")
    with pytest.raises(b.BenchmarkFormatError, match="bad_key.csv, row 43957.jpg: answer 'E' is not an option"):
        b.read_aesbench(root, bad)


def test_benchmark_root_from_environment(roots, monkeypatch):
    monkeypatch.setenv("EEMO_UNIAA_ROOT", str(roots["uniaa"]))
    assert b.benchmark_root("uniaa") == roots["uniaa"]
    monkeypatch.delenv("EEMO_UNIAA_ROOT")
    with pytest.raises(b.BenchmarkFormatError, match="set EEMO_UNIAA_ROOT"):
        b.benchmark_root("uniaa")
