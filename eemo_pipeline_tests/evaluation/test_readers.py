"""Benchmark readers on the sample files, which carry the real files' quirks."""

import json
import os
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.evaluation import eemo_bench as e
from eemo_pipeline.evaluation import readers as b
from eemo_pipeline.evaluation.samples import (
    SAMPLE_AESBENCH_ANSWER_KEY,
    write_sample_benchmarks,
    write_sample_eemo_bench_released,
)
from eemo_pipeline.tasks.registry import TASKS


def image_tasks() -> list[str]:
    """The registered tasks that make an EEmo-Bench item of every image of the ground truth (ranking, vad)."""
    truth = {"category": "Animal", "labels": list(e.EKMAN7), "ranking": ["joy", "fear", "anger"], "valence": 0.5,
             "arousal": 0.5, "dominance": 0.5}
    return [name for name, task in TASKS.items() if task.eemo_bench_item(truth) is not None]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return write_sample_benchmarks(tmp_path_factory.mktemp("benchmarks"))


def test_eemo_bench_items(roots):
    items = b.read_eemo_bench(roots["eemo_bench"])
    assert items.schema == pl.Schema(b.ITEM_SCHEMA)
    counts = dict(items.group_by("task").len().iter_rows())
    assert counts == {"perception": 8, "description": 3, **dict.fromkeys(image_tasks(), 6)}
    assert {"ranking", "vad"} <= set(image_tasks())
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
    records = json.loads((root / e.EEMO_BENCH_SINGLE).read_text())
    records[2]["options"] = "{'A': 'Yes', 'B': }"
    (root / e.EEMO_BENCH_SINGLE).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match=r"EEmo-Bench\(single\)\.json, row 2: options are not a dict"):
        b.read_eemo_bench(root)
    records[2]["options"] = "{'A': 'Yes', 'B': 'No'}"
    records[2]["correct_answer"] = "D"
    (root / e.EEMO_BENCH_SINGLE).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match="row 2: correct_answer 'D' is not an option"):
        b.read_eemo_bench(root)


@pytest.fixture(scope="module")
def released_eemo(tmp_path_factory) -> Path:
    return write_sample_eemo_bench_released(tmp_path_factory.mktemp("eemo_bench_released"))


def test_eemo_bench_in_the_authors_released_layout(released_eemo):
    root = released_eemo
    assert e.eemo_bench_layout(root) == "released"
    items = b.read_eemo_bench(root)
    assert items.schema == pl.Schema(b.ITEM_SCHEMA) and items["item_id"].n_unique() == items.height
    counts = {(task, carrier): n for task, carrier, n in items.group_by("task", "carrier").len().iter_rows()}
    # per image a judge and a choose question, per pair the same; ranking and VAD per image; the open-ended files
    assert counts == {("perception", "single"): 12, ("perception", "pair"): 8, ("description", "single"): 3,
                      ("description", "pair"): 2, **{(task, "single"): 6 for task in image_tasks()}}
    files = {task: set(part["source_file"]) for (task,), part in items.group_by("task")}
    assert all(files[task] == {str(root / e.EEMO_BENCH_GROUND_TRUTH)} for task in image_tasks())
    assert files["perception"] == {str(root / e.EEMO_BENCH_GROUND_TRUTH), str(root / e.EEMO_BENCH_PAIRS)}
    assert files["description"] == {str(root / e.EEMO_BENCH_OPEN_SINGLE), str(root / e.EEMO_BENCH_OPEN_PAIR)}
    by_id = {row["item_id"]: row for row in items.iter_rows(named=True)}
    judge, choose = by_id["single/judge/1.jpg"], by_id["single/choose/1.jpg"]
    assert judge["question_type"] == "Yes-or-No" and choose["question_type"] == "What/How"
    assert judge["option_keys"] == ["A", "B"] and judge["option_texts"] == ["No", "Yes"] and judge["answer"] == "B"
    assert choose["answer"] == "A" and choose["option_texts"][0] == "A strong sense of dominance"
    assert judge["images"] == [str((root / "images" / "1.jpg").resolve())] and judge["category"] == "Animal"
    pair = by_id["pair/choose/1"]
    assert [Path(p).name for p in pair["images"]] == ["2.jpg", "5.jpg"] and pair["answer"] == "B"
    assert pair["category"] == "Abstract/Cartoon image" and pair["source_row"] == "1"
    # the open-ended files' wording, not the older one in the ground-truth and pair records; no reference answer
    described = by_id["description/single/1.jpg"]
    assert described["question"].startswith("Which specific elements") and described["answer"] is None
    assert by_id["description/pair/1"]["question"].startswith("Analyze the two images")
    assert by_id["ranking/2.jpg"]["ranking"] == ["fear", "disgust", "sadness"]
    assert by_id["vad/1.jpg"]["valence"] == pytest.approx((6.0 - 1) / 8)


@pytest.mark.parametrize(("file", "row", "change", "message"), [
    (e.EEMO_BENCH_GROUND_TRUTH, 2, {"judge_answer": "C"}, "judge_answer 'C' is not an option"),
    (e.EEMO_BENCH_GROUND_TRUTH, 4, {"choose_A": "{'A': 'x', 'B': }"}, "options are not a dict literal"),
    (e.EEMO_BENCH_GROUND_TRUTH, 1, {"choose_Q": ""}, "missing choose_Q"),
    (e.EEMO_BENCH_PAIRS, 3, {"choose_answer": "E"}, "choose_answer 'E' is not an option"),
    (e.EEMO_BENCH_PAIRS, 0, {"image2_url": "99.jpg"}, r"image 'images/99\.jpg' not found"),
    (e.EEMO_BENCH_OPEN_PAIR, 1, {"open_ended_question": None}, "missing open_ended_question"),
    (e.EEMO_BENCH_OPEN_SINGLE, 0, {"image_name": "98.jpg"}, r"image 'images/98\.jpg' not found"),
])
def test_released_eemo_bench_bad_records_name_file_and_row(released_eemo, tmp_path, file, row, change, message):
    root = shutil.copytree(released_eemo, tmp_path / "eemo")
    records = json.loads((root / file).read_text())
    records[row] |= change
    (root / file).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{file}, row {row}: ") + message):
        b.read_eemo_bench(root)


def test_released_eemo_bench_needs_all_four_files_and_a_known_layout(released_eemo, tmp_path):
    root = shutil.copytree(released_eemo, tmp_path / "eemo")
    (root / e.EEMO_BENCH_OPEN_PAIR).unlink()
    with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{e.EEMO_BENCH_OPEN_PAIR}: file not found")):
        b.read_eemo_bench(root)
    with pytest.raises(b.BenchmarkFormatError, match=re.escape(f"{e.EEMO_BENCH_SINGLE}: file not found")):
        b.read_eemo_bench(root, layout="questions")  # the question files' layout, asked for explicitly
    with pytest.raises(ValueError, match="unknown EEmo-Bench layout 'mixed'"):
        b.read_eemo_bench(root, layout="mixed")


def test_artphoto_released_list(roots, tmp_path):
    items = b.read_artphoto(roots["artphoto"])
    assert items.height == 8 and set(items["source_file"]) == {str(roots["artphoto"] / b.ARTPHOTO_RELEASED)}
    assert items["source_row"].to_list() == [str(i) for i in range(8)]  # the released ids, in file order
    assert items.filter(pl.col("item_id") == "sad_0008.jpg")["answer"].item() == "sad"
    root = shutil.copytree(roots["artphoto"], tmp_path / "artphoto")
    records = json.loads((root / b.ARTPHOTO_RELEASED).read_text())
    records[2]["emotion"] = "joy"
    (root / b.ARTPHOTO_RELEASED).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match=r"test_Artphoto\.json, row 2: emotion 'joy' is not one of"):
        b.read_artphoto(root)


def test_artphoto_folder_scan_skips_non_images_and_keeps_sad(roots, tmp_path):
    root = shutil.copytree(roots["artphoto"], tmp_path / "artphoto")
    (root / b.ARTPHOTO_RELEASED).unlink()  # without the released list, the folder is the item list
    items = b.read_artphoto(root)
    assert items.height == 8 and "readme.txt" not in items["item_id"].to_list()
    assert items.filter(pl.col("item_id") == "sad_0008.jpg")["answer"].item() == "sad"
    assert set(items["source_file"]) == {str(root)}
    (root / "joy_0001.jpg").write_bytes(b"x")
    with pytest.raises(b.BenchmarkFormatError, match="joy_0001.jpg: file name prefix 'joy'"):
        b.read_artphoto(root)


def test_artemis_released_file_and_its_image_paths(roots):
    root = roots["artemis"]
    items = b.read_artemis(root)  # the released test_ArtEmis.json wins over the CSV
    assert items["answer"].to_list() == ["amusement", "excitement", "fear"]
    assert items["item_id"].to_list()[0] == "Post_Impressionism/vincent-van-gogh_zouave-1888(1)"
    # img_path "./test_dominant_images\\00000.jpg", then original_img_path, then the wikiart/ layout
    assert [Path(i[0]).relative_to(root.resolve()).as_posix() for i in items["images"]] == [
        "test_dominant_images/00000.jpg", "images/Ukiyo_e/utagawa-kuniyoshi_saito-oniwakamaru.jpg",
        "wikiart/Romanticism/caspar-david-friedrich_the-sea-of-ice.jpg"]
    assert set(items["source_file"]) == {str(root / b.ARTEMIS_RELEASED)}
    assert items["labels"].to_list() == [list(b.ARTEMIS_LABELS)] * 3  # the authors' 8, no "something else"
    assert len(b.ARTEMIS_LABELS) == 8 and "something else" not in b.ARTEMIS_LABELS


@pytest.mark.parametrize(("change", "message"), [
    ({"dominant_emotion": "something else"}, "dominant_emotion 'something else' is not one of"),
    ({"emotion": "amusement"}, "emotion must list the annotators' choices"),
    ({"emotion": ["awe", "awe"]}, "emotion must list the annotators' choices"),
    ({"utterance": ["only one"]}, "utterance must be a list with one entry per emotion"),
    ({"img_path": "./missing\\1.jpg", "original_img_path": "./missing\\2.jpg", "painting": "x"},
     r"image '\./missing\\\\1\.jpg' / '\./missing\\\\2\.jpg' / 'wikiart/Post_Impressionism/x\.jpg' not found at "),
])
def test_artemis_released_bad_records_name_file_and_row(roots, tmp_path, change, message):
    root = shutil.copytree(roots["artemis"], tmp_path / "artemis")
    records = json.loads((root / b.ARTEMIS_RELEASED).read_text())
    records[0] |= change
    (root / b.ARTEMIS_RELEASED).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match=r"test_ArtEmis\.json, row 0: " + message):
        b.read_artemis(root)


def test_artemis_majority_vote_and_non_nfc_names(roots):
    items = b.read_artemis(roots["artemis"], b.ARTEMIS_CSV)  # the full CSV, chosen explicitly
    answers = dict(zip(items["item_id"].str.split("/").list.first(), items["answer"]))
    # the tie (Cubism) and the "something else" winner (Pop_Art) have no dominant emotion
    assert answers == {"Impressionism": "contentment", "Romanticism": "fear", "Baroque": "awe", "Expressionism": "fear"}
    monet = items.filter(pl.col("dimension") == "Impressionism")["images"].item()[0]
    assert monet.endswith("é.jpg")  # the NFD name in the CSV found the NFC file


def test_uniaa_keeps_sentiment_and_letters_by_position(roots):
    items = b.read_uniaa(roots["uniaa"])
    assert items.height == 4 and items["answer"].to_list() == ["A", "A", "B", "B"]
    assert items["question_type"].to_list() == ["what", "yes_no", "how", "yes_no"]
    assert items["images"].to_list()[0][0].endswith("uniaa/images/emotion_images/000000000.jpg")
    assert set(items["source_file"]) == {str(roots["uniaa"] / b.UNIAA_RELEASED)}


def test_uniaa_released_fields_must_agree(roots, tmp_path):
    root = shutil.copytree(roots["uniaa"], tmp_path / "uniaa")
    records = json.loads((root / b.UNIAA_RELEASED).read_text())
    records[2]["answer"] = "C"
    (root / b.UNIAA_RELEASED).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match="row 2: answer 'C' is not correct_ans's letter B"):
        b.read_uniaa(root)
    records[2]["answer"] = "B"
    records[2]["options"] = {"A": "Sad and uneasy.", "B": "Calm and relaxed.", "C": "Excited and happy."}
    (root / b.UNIAA_RELEASED).write_text(json.dumps(records))
    with pytest.raises(b.BenchmarkFormatError, match="row 2: options .* are not the candidates in order"):
        b.read_uniaa(root)
    # without options and answer (a UNIAA-QA style file), images directly under the root
    for record in records:
        del record["options"], record["answer"]
    (root / "qa.json").write_text(json.dumps(records))
    shutil.move(root / "images" / "emotion_images", root / "emotion_images")
    items = b.read_uniaa(root, "qa.json")
    assert items["answer"].to_list() == ["A", "A", "B", "B"]
    assert all("/uniaa/emotion_images/" in images[0] for images in items["images"].to_list())


def test_aesbench_original_file_name(roots, tmp_path):
    root = shutil.copytree(roots["aesbench"], tmp_path / "aesbench")
    (root / b.AESBENCH_RELEASED).rename(root / b.AESBENCH_FILE)
    items = b.read_aesbench(root)
    assert items.height == 4 and set(items["source_file"]) == {str(root / b.AESBENCH_FILE)}
    (root / b.AESBENCH_FILE).unlink()
    with pytest.raises(b.BenchmarkFormatError, match="neither test_AesBench_AesE.json nor AesBench_evaluation.json"):
        b.read_aesbench(root)


def test_aesbench_newline_options_and_answer_key(roots):
    root = roots["aesbench"]
    without = b.read_aesbench(root)
    assert without["answer"].null_count() == without.height  # the public file has no answers
    items = b.read_aesbench(root, root / SAMPLE_AESBENCH_ANSWER_KEY)
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


def test_benchmark_root_is_given_and_its_variable_named_when_missing(roots, monkeypatch):
    from eemo_pipeline.settings import Settings

    monkeypatch.setenv("EEMO_UNIAA_ROOT", str(roots["uniaa"]))
    assert b.benchmark_root("uniaa", Settings.from_env().root("uniaa")) == roots["uniaa"]
    with pytest.raises(b.BenchmarkFormatError, match="set EEMO_UNIAA_ROOT"):
        b.benchmark_root("uniaa", None)  # the environment is read at the edge, not here


RELEASED_TEST_DATA = os.environ.get("EEMO_RELEASED_TEST_DATA")  # the authors' test_data/ folder, when at hand


def _stand_in_images(root: Path, paths: list[str]) -> None:
    for path in paths:
        image = root / path.removeprefix("./").replace("\\", "/")
        image.parent.mkdir(parents=True, exist_ok=True)
        image.touch()


@pytest.mark.skipif(not RELEASED_TEST_DATA, reason="set EEMO_RELEASED_TEST_DATA to the authors' test_data/ folder")
def test_the_authors_released_eemo_bench_files_read_whole(tmp_path):
    """The authors' four EEmo-Bench files as they ship (images are empty stand-ins under images/)."""
    released = Path(RELEASED_TEST_DATA)
    root = tmp_path / "eemo_bench"
    root.mkdir()
    for file in (e.EEMO_BENCH_GROUND_TRUTH, e.EEMO_BENCH_PAIRS, e.EEMO_BENCH_OPEN_SINGLE, e.EEMO_BENCH_OPEN_PAIR):
        shutil.copy(released / file, root / file)
    truth = json.loads((root / e.EEMO_BENCH_GROUND_TRUTH).read_text(encoding="utf-8"))
    _stand_in_images(root, [f"images/{record['image_name']}" for record in truth])
    items = b.read_eemo_bench(root)
    counts = {(task, carrier): n for task, carrier, n in items.group_by("task", "carrier").len().iter_rows()}
    assert counts == {("perception", "single"): 3920, ("perception", "pair"): 2012, ("description", "single"): 501,
                      ("description", "pair"): 300, **{(task, "single"): 1960 for task in image_tasks()}}
    assert items["item_id"].n_unique() == items.height and items["source_file"].null_count() == 0
    perception = items.filter(pl.col("task") == "perception")
    assert dict(perception.group_by("question_type").len().iter_rows()) == {"Yes-or-No": 2966, "What/How": 2966}
    assert perception["category"].null_count() == 0


@pytest.mark.skipif(not RELEASED_TEST_DATA, reason="set EEMO_RELEASED_TEST_DATA to the authors' test_data/ folder")
def test_the_authors_released_test_files(tmp_path):
    """The real released files, as is (images are empty stand-ins at the paths the files name)."""
    released = Path(RELEASED_TEST_DATA)
    roots = {name: tmp_path / name for name in ("artemis", "artphoto", "uniaa", "aesbench")}
    for name, file in (("artemis", b.ARTEMIS_RELEASED), ("artphoto", b.ARTPHOTO_RELEASED),
                       ("uniaa", b.UNIAA_RELEASED), ("aesbench", b.AESBENCH_RELEASED)):
        roots[name].mkdir()
        shutil.copy(released / file, roots[name] / file)
    artemis = json.loads((released / b.ARTEMIS_RELEASED).read_text(encoding="utf-8"))
    _stand_in_images(roots["artemis"], [r["original_img_path"] for r in artemis])  # the WikiArt layout
    _stand_in_images(roots["artphoto"], [r["image_path"] for r in json.loads((released / b.ARTPHOTO_RELEASED).read_text())])
    _stand_in_images(roots["uniaa"], [f"images/{r['img_path']}"
                                      for r in json.loads((released / b.UNIAA_RELEASED).read_text(encoding="utf-8"))])
    _stand_in_images(roots["aesbench"], [f"images/{name}"
                                         for name in json.loads((released / b.AESBENCH_RELEASED).read_text(encoding="utf-8"))])
    items = b.read_artemis(roots["artemis"])
    assert items.height == 1920 and items["item_id"].n_unique() == 1920
    assert dict(items.group_by("answer").len().iter_rows()) == dict.fromkeys(b.ARTEMIS_LABELS, 240)
    artphoto = b.read_artphoto(roots["artphoto"])
    assert artphoto.height == 806 and set(artphoto["answer"]) == set(b.ARTPHOTO_LABELS)
    uniaa = b.read_uniaa(roots["uniaa"])
    assert uniaa.height == 464 and uniaa["answer"].is_not_null().all()
    aesbench = b.read_aesbench(roots["aesbench"])
    assert aesbench.height == 2800 and aesbench["answer"].is_null().all()  # the public file has no answers
