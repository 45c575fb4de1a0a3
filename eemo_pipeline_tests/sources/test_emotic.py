from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.io
from scipy.io.matlab import mat_struct

from eemo_pipeline.sources import SourceFormatError, emotic
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.validate import contract_violations

MAT = emotic.ANNOTATIONS


def _image(filename: str, folder: str, *persons: tuple) -> dict:
    return {"filename": filename, "folder": folder, "database": folder.split("/")[0], "persons": list(persons)}


TRAIN_PERSON = ([1, 2, 30, 40], ["Peace"], (5, 5, 5), "Male", "Adult")
VAL_PERSON = (
    [1, 2, 30, 40],
    [(["Fear"], (3, 7, 3)), (["Fear", "Pain"], (2, 8, 2))],  # two annotators
    (["Fear"], (2.5, 7.5, 2.5)),  # combined
    "Male",
    "Adult",
)


def _write(root: Path, train=(), val=(), test=()) -> None:
    emotic._write_mat(root / MAT, {"train": list(train), "val": list(val), "test": list(test)})


def _facts(rows: pl.DataFrame, **where) -> pl.DataFrame:
    condition = pl.lit(True)
    for column, value in where.items():
        condition &= pl.col(column).is_null() if value is None else pl.col(column) == value
    return rows.filter(condition)


def test_sample_ingests_with_exact_counts(source_dir: Path) -> None:
    emotic.write_sample(source_dir)
    result = ingest("emotic", source_dir)
    assert contract_violations(result.annotations, "emotic") == []
    # train 20 facts (3 images, 4 persons), val 46 (2 images, 3 persons x 2-3 annotators + combined), test 20.
    assert result.counts == {"rows_read": 86, "rows_kept": 84, "rows_quarantined": 2}
    counts = dict(result.annotations.group_by("split").len().iter_rows())
    assert counts == {"train": 18, "val": 46, "test": 20}
    quarantine = {row["line"]: row for row in result.quarantine.iter_rows(named=True)}
    assert set(quarantine) == {2, 3}
    assert quarantine[3]["file"] == MAT and "valence 11.0 outside its scale 1.0..10.0" in quarantine[3]["reason"]
    valence = _facts(result.annotations, split="train", subject=0, measure="valence").sort("source_line")
    assert valence["value"].to_list() == [7.0]  # record 2 (NaN) and 3 (11) are quarantined
    assert (valence["scale_min"][0], valence["scale_max"][0]) == (1.0, 10.0)
    assert (source_dir / "mscoco/images/COCO_train2014_000000000036.jpg").is_file()
    assert (source_dir / "framesdb/images/frame_1e7a8m3vz0yq3kpd.jpg").is_file()
    paths = set(result.annotations["image_path"])
    assert "framesdb/images/frame_1e7a8m3vz0yq3kpd.jpg" in paths and all(not p.startswith("/") for p in paths)


def test_sample_mat_has_emotic_shapes_and_squeeze_quirks(source_dir: Path) -> None:
    emotic.write_sample(source_dir)
    raw = scipy.io.loadmat(source_dir / MAT)
    assert (raw["train"].shape, raw["val"].shape, raw["test"].shape) == ((1, 3), (1, 2), (1, 1))
    first = raw["train"][0, 0]
    assert first["person"].shape == (1, 2) and first["image_size"][0, 0]["n_row"][0, 0] == 96
    assert first["person"][0, 0]["annotations_categories"][0, 0]["categories"].shape == (1, 3)
    assert raw["val"][0, 0]["person"][0, 0]["annotations_continuous"].shape == (1, 3)

    squeezed = scipy.io.loadmat(source_dir / MAT, squeeze_me=True, struct_as_record=False)
    train = squeezed["train"]
    assert isinstance(train[0].person, np.ndarray) and len(train[0].person) == 2
    assert isinstance(train[1].person, mat_struct)  # a single person is a bare struct
    assert train[0].person[1].annotations_categories.categories == "Peace"  # a single category is a bare string
    assert isinstance(squeezed["test"], mat_struct)  # a single image too
    assert squeezed["val"][1].person[0].combined_categories == "Fear"


def test_train_single_category_string_and_single_annotator(source_dir: Path) -> None:
    emotic.write_sample(source_dir)
    rows = emotic.read(source_dir).rows
    peace = _facts(rows, split="train", source_line=1, subject=1)
    assert peace.select("measure", "label", "value", "annotator").rows() == [
        ("label_choice", "Peace", 1.0, "0"),
        ("valence", None, 6.0, "0"),
        ("arousal", None, 3.0, "0"),
        ("dominance", None, 7.0, "0"),
    ]
    assert peace["image_id"][0] == "train/mscoco/images/COCO_train2014_000000000036.jpg"
    attributes = json.loads(peace["attributes"][0])
    assert attributes == {
        "bbox": [50, 20, 94, 95],
        "gender": "Male",
        "age": "Teenager",
        "image_size": {"n_row": 96, "n_col": 96},
        "original_database": "mscoco",
        "record": "train(1).person(2)",
    }
    assert set(_facts(rows, split="train")["annotator"]) == {"0"}
    assert _facts(rows, split="train", measure="label_combined").is_empty()


def test_val_and_test_per_annotator_and_combined(source_dir: Path) -> None:
    emotic.write_sample(source_dir)
    rows = ingest("emotic", source_dir).annotations
    person = _facts(rows, split="val", source_line=4, subject=0)  # val(1): records are numbered train, val, test
    choices = _facts(person, measure="label_choice").group_by("annotator").agg(pl.col("label")).sort("annotator")
    assert choices.rows() == [
        ("0", ["Engagement", "Happiness"]),
        ("1", ["Happiness"]),
        ("2", ["Engagement", "Confidence"]),
    ]
    valence = _facts(person, measure="valence").sort("annotator", nulls_last=True)
    assert valence["value"].to_list() == [6.0, 7.0, 6.0, 6.3333]
    combined = _facts(person, annotator=None)
    assert combined.select("measure", "label").rows() == [
        ("label_combined", "Engagement"),
        ("label_combined", "Happiness"),
        ("valence", None),
        ("arousal", None),
        ("dominance", None),
    ]
    assert combined["value"].to_list() == [1.0, 1.0, 6.3333, 5.0, 6.6667]
    assert all(json.loads(a)["combined"] is True for a in combined["attributes"])
    assert not any("combined" in json.loads(a) for a in _facts(person, annotator="0")["attributes"])
    # val(2) has two persons; its first person's combined categories were a single (bare) string.
    second = _facts(rows, split="val", source_line=5, measure="label_combined")
    assert _facts(second, subject=0)["label"].to_list() == ["Fear"]
    assert _facts(second, subject=1)["label"].to_list() == ["Sympathy", "Sadness"]
    test = _facts(rows, split="test", source_line=6)
    assert test["image_id"][0] == "test/mscoco/images/COCO_val2014_000000000285.jpg"
    assert sorted(set(test["annotator"].drop_nulls())) == ["0", "1", "2"]
    assert _facts(test, annotator=None, measure="label_combined")["label"].to_list() == ["Suffering", "Sadness", "Pain"]
    assert json.loads(test["attributes"][0])["record"] == "test(1).person(1)"


def test_nan_rating_is_quarantined_with_its_record_index(source_dir: Path) -> None:
    emotic.write_sample(source_dir)
    read = emotic.read(source_dir)
    nan = _facts(read.rows, measure="valence", source_line=2)
    assert nan.height == 1 and math.isnan(nan["value"][0])  # emitted, not dropped
    quarantine = ingest("emotic", source_dir).quarantine.filter(pl.col("line") == 2).row(0, named=True)
    assert quarantine["file"] == MAT and quarantine["reason"].startswith("missing value")
    record = json.loads(quarantine["record"])
    assert (record["image_id"], record["measure"], record["subject"]) == (
        "train/framesdb/images/frame_0f3lbfbvnpxnuet0.jpg",
        "valence",
        0,
    )
    assert json.loads(record["attributes"])["record"] == "train(2).person(1)"


def test_single_annotator_and_empty_values_in_val(source_dir: Path) -> None:
    single = (
        [1, 2, 30, 40],
        [(["Esteem", "Esteem", "Confidence"], (6, 6, math.nan))],  # one annotator, a repeated category
        (["Confidence"], (6, 6, math.nan)),
        "Female",
        "Adult",
    )
    _write(
        source_dir,
        train=[_image("t.jpg", "mscoco/images", TRAIN_PERSON)],
        val=[_image("v.jpg", "ade20k/images", single)],
    )
    squeezed = scipy.io.loadmat(source_dir / MAT, squeeze_me=True, struct_as_record=False)
    assert isinstance(squeezed["val"].person.annotations_categories, mat_struct)  # one annotator: a bare struct
    result = ingest("emotic", source_dir)
    val = _facts(emotic.read(source_dir).rows, split="val")
    # The repeated category counts once.
    assert _facts(val, annotator="0", measure="label_choice")["label"].to_list() == ["Esteem", "Confidence"]
    assert _facts(val, annotator=None, measure="label_combined")["label"].to_list() == ["Confidence"]
    assert result.counts == {"rows_read": 4 + 9, "rows_kept": 11, "rows_quarantined": 2}
    assert sorted(result.quarantine["line"].to_list()) == [2, 2]
    assert all(r.startswith("missing value") for r in result.quarantine["reason"])
    assert contract_violations(result.annotations, "emotic") == []


def test_unparseable_person_and_image_are_quarantined(source_dir: Path) -> None:
    bad_bbox = ([1, 2, 3], ["Pain"], (2, 6, 3), "Male", "Adult")
    _write(
        source_dir,
        train=[
            _image("a.jpg", "mscoco/images", TRAIN_PERSON, bad_bbox),
            _image("b.jpg", "mscoco/images", ([1, 2, 3, 4], ["Peace", 7.0], (5, 5, 5), "Male", "Adult")),
            _image("c.jpg", "mscoco/images", TRAIN_PERSON),
        ],
        val=[_image("d.jpg", "mscoco/images", VAL_PERSON)],
    )
    result = ingest("emotic", source_dir)
    person = "train(1).person(2): body_bbox [1.0, 2.0, 3.0] is not four numbers [x1 y1 x2 y2]"
    reasons = dict(zip(result.quarantine["reason"], result.quarantine["line"]))
    assert reasons == {
        person: 1,
        "train(2).person(1): annotations_categories.categories holds 7.0, not a category name": 2,
        # An image's selections are kept whole or not at all: the other person of a.jpg goes with it (before: kept).
        "image 'train/mscoco/images/a.jpg' quarantined whole, no partial distribution kept: "
        f"Annotations/Annotations.mat line 1: {person}": 1,
    }
    kept = result.annotations
    assert _facts(kept, source_line=1).is_empty()
    assert result.quarantine.filter(pl.col("line") == 1).height == 1 + 4  # the rejected person, the other's 4 facts
    assert _facts(kept, source_line=3)["image_id"][0] == "train/mscoco/images/c.jpg"
    assert _facts(kept, source_line=4).height == 3 + 6 + 1 + 3
    assert json.loads(result.quarantine["record"][0]) == {
        "split": "train", "record": "train(1).person(2)", "image_path": "mscoco/images/a.jpg", "subject": 1,
    }


def test_path_traversal_folder_is_quarantined(source_dir: Path) -> None:
    _write(
        source_dir,
        train=[_image("evil.jpg", "../../x", TRAIN_PERSON), _image("ok.jpg", "mscoco/images", TRAIN_PERSON)],
        val=[_image("v.jpg", "..\\..\\y", VAL_PERSON)],
    )
    result = ingest("emotic", source_dir)
    assert result.counts == {"rows_read": 4 + 4 + 13, "rows_kept": 4, "rows_quarantined": 17}
    assert set(result.quarantine["line"]) == {1, 3}
    assert all("escapes the source root" in r for r in result.quarantine["reason"])
    assert "image path '../../x/evil.jpg' escapes the source root" in result.quarantine["reason"][0]
    assert set(result.annotations["image_path"]) == {"mscoco/images/ok.jpg"}


def _csv_row(folder: str, filename: str, bbox, categories, ratings, gender="Male", age="Adult") -> dict:
    return {"Folder": folder, "Filename": filename, "Image Size": [640, 480], "BBox": bbox,
            "Categorical_Labels": categories, "Continuous_Labels": ratings, "Gender": gender, "Age": age}


def test_csv_variant(source_dir: Path) -> None:
    emotic._write_csv(
        source_dir / "annot_arrs_train.csv",
        [
            _csv_row("mscoco/images", "a.jpg", [10, 20, 300, 400], ["Peace", "Happiness"], [6, 4, 7], "Female"),
            _csv_row("mscoco/images", "a.jpg", [310, 20, 600, 420], ["Engagement"], [5, 5, 5]),
            _csv_row("mscoco/images", "b.jpg", "[1, 2, 3", ["Pain"], [2, 6, 3]),  # malformed list string
            _csv_row("framesdb/images", "c.jpg", [1, 2, 3, 4], ["Sadness"], "[nan, 5, 6]"),
            _csv_row("mscoco/images", "a.jpg", [0, 0, 9, 9], "['Fear']", "[3, 7, 4]"),
        ],
    )
    emotic._write_csv(
        source_dir / "csv" / "annot_arrs_val.csv",
        [_csv_row("emodb_small/images", "d.jpg", [1, 1, 50, 50], ["Fear", "Surprise"], [2.5, 8.0, 3.5])],
    )
    result = ingest("emotic", source_dir)
    # facts: 5 + 4 + (rejected row) + 4 + 4 in train, 5 in val; the reject and the NaN valence are quarantined.
    assert result.counts == {"rows_read": 22 + 1, "rows_kept": 21, "rows_quarantined": 2}
    quarantine = {(r["file"], r["line"]): r for r in result.quarantine.iter_rows(named=True)}
    assert set(quarantine) == {("annot_arrs_train.csv", 4), ("annot_arrs_train.csv", 5)}
    malformed = quarantine[("annot_arrs_train.csv", 4)]
    assert malformed["reason"] == "BBox '[1, 2, 3' is not a Python list (SyntaxError)"
    assert json.loads(malformed["record"])["Filename"] == "b.jpg"
    nan = quarantine[("annot_arrs_train.csv", 5)]
    assert nan["reason"].startswith("missing value")
    assert json.loads(nan["record"])["image_id"] == "train/framesdb/images/c.jpg"
    rows = result.annotations
    assert contract_violations(rows, "emotic") == []
    train = _facts(rows, split="train", image_id="train/mscoco/images/a.jpg")
    assert sorted(set(zip(train["source_line"], train["subject"]))) == [(2, 0), (3, 1), (6, 2)]
    first = _facts(train, source_line=2)
    assert first.select("measure", "label", "value", "annotator").rows() == [
        ("label_choice", "Peace", 1.0, "0"),
        ("label_choice", "Happiness", 1.0, "0"),
        ("valence", None, 6.0, "0"),
        ("arousal", None, 4.0, "0"),
        ("dominance", None, 7.0, "0"),
    ]
    assert json.loads(first["attributes"][0]) == {
        "bbox": [10, 20, 300, 400], "gender": "Female", "age": "Adult", "image_size": [640, 480], "index": "0",
    }
    assert _facts(rows, source_line=6, measure="label_choice")["label"].to_list() == ["Fear"]  # bare string cell
    val = _facts(rows, source_file="csv/annot_arrs_val.csv")
    assert val.select("split", "image_id", "annotator", "measure", "label", "value").rows() == [
        ("val", "val/emodb_small/images/d.jpg", None, "label_combined", "Fear", 1.0),
        ("val", "val/emodb_small/images/d.jpg", None, "label_combined", "Surprise", 1.0),
        ("val", "val/emodb_small/images/d.jpg", None, "valence", None, 2.5),
        ("val", "val/emodb_small/images/d.jpg", None, "arousal", None, 8.0),
        ("val", "val/emodb_small/images/d.jpg", None, "dominance", None, 3.5),
    ]
    assert json.loads(val["attributes"][0])["combined"] is True


def test_csv_missing_column_names_the_file(source_dir: Path) -> None:
    columns = [c for c in emotic.CSV_COLUMNS if c != "Categorical_Labels"]
    row = _csv_row("m", "a.jpg", [1, 2, 3, 4], ["Pain"], [1, 2, 3])
    emotic._write_csv(source_dir / "annot_arrs_test.csv", [row], columns)
    missing = r"annot_arrs_test.csv: missing columns \['Categorical_Labels'\]"
    with pytest.raises(SourceFormatError, match=missing) as error:
        emotic.read(source_dir)
    assert error.value.file.endswith("annot_arrs_test.csv")


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("annot_arrs_train.csv", "train"),
        ("val.csv", "val"),
        ("emotic_testing.csv", "test"),
        ("values.csv", None),
        ("latest.csv", None),
    ],
)
def test_split_from_file_name(name: str, split: str | None) -> None:
    assert emotic.split_from_name(name) == split


def test_truncated_or_foreign_mat_raises(source_dir: Path) -> None:
    emotic.write_sample(source_dir)
    path = source_dir / MAT
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceFormatError, match=r"Annotations.mat: not a readable MATLAB v5 file") as error:
        emotic.read(source_dir)
    assert error.value.file == str(path)
    path.write_bytes(b"Index,Folder,Filename\n" * 20)
    with pytest.raises(SourceFormatError, match=r"Annotations.mat: not a readable MATLAB v5 file"):
        emotic.read(source_dir)


def test_mat_without_top_level_structs_raises(source_dir: Path) -> None:
    emotic._write_mat(source_dir / MAT, {"train": [_image("a.jpg", "mscoco/images", TRAIN_PERSON)]})
    with pytest.raises(SourceFormatError, match=r"Annotations.mat: missing top-level struct arrays \['val', 'test'\]"):
        emotic.read(source_dir)
    scipy.io.savemat(source_dir / MAT, {"train": np.zeros((1, 2)), "val": np.zeros((1, 1)), "test": np.zeros((1, 1))})
    with pytest.raises(SourceFormatError, match=r"Annotations.mat: top-level 'train' is not a struct array"):
        emotic.read(source_dir)


def test_no_annotations_names_the_root_and_mat_wins_over_csv(source_dir: Path) -> None:
    expected = r"no EMOTIC annotations found; expected Annotations/Annotations.mat"
    with pytest.raises(SourceFormatError, match=expected) as error:
        emotic.read(source_dir)
    assert error.value.file == str(source_dir)
    emotic._write_csv(source_dir / "annot_arrs_train.csv", [_csv_row("m", "a.jpg", [1, 2, 3, 4], ["Pain"], [1, 2, 3])])
    assert set(emotic.read(source_dir).rows["source_file"]) == {"annot_arrs_train.csv"}
    _write(source_dir, train=[_image("t.jpg", "mscoco/images", TRAIN_PERSON)])
    assert set(emotic.read(source_dir).rows["source_file"]) == {MAT}


def test_image_without_person_and_empty_splits(source_dir: Path) -> None:
    _write(source_dir, train=[_image("a.jpg", "mscoco/images"), _image("b.jpg", "mscoco/images", TRAIN_PERSON)])
    read = emotic.read(source_dir)
    assert read.rejects.select("file", "line", "reason").rows() == [(MAT, 1, "train(1): image has no annotated person")]
    assert read.rows["source_line"].unique().to_list() == [2] and read.rows.height == 4
