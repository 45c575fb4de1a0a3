from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources import SourceFormatError, abstract8
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.sample_images import write_image
from eemo_pipeline.sources.validate import contract_violations

TRUTH = "ABSTRACT_groundTruth.csv"
HEADER = "'','Amusement','Anger','Awe','Content','Disgust','Excitement','Fear','Sad'\n"
EMOTIONS = ["Amusement", "Anger", "Awe", "Content", "Disgust", "Excitement", "Fear", "Sad"]


def write_truth(root: Path, text: str) -> None:
    (root / TRUTH).write_bytes(text.encode("utf-8"))


def votes(rows: pl.DataFrame, image_id: str) -> dict[str, float]:
    picked = rows.filter(pl.col("image_id") == image_id)
    return dict(zip(picked["label"], picked["value"]))


def test_sample_ingests_with_one_out_of_range_vote(source_dir: Path) -> None:
    abstract8.write_sample(source_dir)
    result = ingest("abstract8", source_dir)
    assert contract_violations(result.annotations, "abstract8") == []
    # 10 images x 8 emotions; the 14 votes for Sad on abstract_0009 (line 10) is the only rejected fact.
    assert result.counts == {"rows_read": 80, "rows_kept": 79, "rows_quarantined": 1}
    bad = result.quarantine.row(0, named=True)
    assert (bad["file"], bad["line"], bad["reason"]) == (TRUTH, 10, "Sad vote 14 outside 0..13")
    assert json.loads(bad["record"]) == {
        "image_id": "abstract_0009",
        "image_path": "testImages_abstract/abstract_0009.jpg",
        "measure": "label_vote",
        "label": "Sad",
        "value_text": "14",
    }
    assert set(result.annotations["measure"]) == {"label_vote"}
    assert sorted(set(result.annotations["label"])) == sorted(EMOTIONS)


def test_single_quoted_csv_and_ties(source_dir: Path) -> None:
    abstract8.write_sample(source_dir)
    rows = ingest("abstract8", source_dir).annotations
    # Labels keep the file's spelling (Content, Sad), image ids are the names without quotes or suffix.
    assert votes(rows, "abstract_0001") == {
        "Amusement": 2, "Anger": 0, "Awe": 1, "Content": 3, "Disgust": 0, "Excitement": 1, "Fear": 1, "Sad": 6,
    }
    first = rows.filter(pl.col("image_id") == "abstract_0001")
    assert set(first["source_line"]) == {2} and set(first["source_file"]) == {TRUTH}
    # Ties are data, kept as they are: abstract_0003 has 4 for Amusement and Content, abstract_0007 3 x3.
    tie = votes(rows, "abstract_0003")
    assert tie["Amusement"] == tie["Content"] == max(tie.values()) == 4
    assert sorted(k for k, v in votes(rows, "abstract_0007").items() if v == 3) == ["Amusement", "Content", "Excitement"]
    # abstract_0009 keeps its seven valid votes.
    assert len(votes(rows, "abstract_0009")) == 7


def test_images_in_a_subfolder_are_found(source_dir: Path) -> None:
    abstract8.write_sample(source_dir)
    rows = abstract8.read(source_dir).rows
    paths = rows.select("image_id", "image_path").unique().sort("image_id")
    assert paths["image_path"].to_list() == [f"testImages_abstract/abstract_{n:04d}.jpg" for n in range(1, 11)]
    assert all((source_dir / p).is_file() for p in paths["image_path"])


def test_images_in_the_root_other_suffixes_and_missing_ones(source_dir: Path) -> None:
    write_image(source_dir / "abstract_0001.jpg", 1)
    write_image(source_dir / "abstract_0002.png", 2)  # the CSV says .jpg: matched by stem
    write_image(source_dir / "copies" / "abstract_0001.jpg", 3)  # deeper duplicate: the root copy wins
    write_truth(
        source_dir,
        HEADER
        + "'abstract_0001.jpg',1,1,1,1,1,1,1,6\n"
        + "'abstract_0002.jpg',0,0,0,0,0,0,13,0\n"
        + "'abstract_0003.jpg',1,1,1,1,1,1,1,6\n",
    )
    rows = abstract8.read(source_dir).rows
    paths = dict(rows.select("image_id", "image_path").unique().iter_rows())
    assert paths == {
        "abstract_0001": "abstract_0001.jpg",
        "abstract_0002": "abstract_0002.png",
        "abstract_0003": "abstract_0003.jpg",  # absent: kept as written, the manifest reports it
    }


def test_crlf_spaces_and_unquoted_cells(source_dir: Path) -> None:
    write_truth(
        source_dir,
        "'ImageName', 'Amusement','Anger','Awe','Content','Disgust','Excitement','Fear','Sad'\r\n"
        + "'abstract_0001.jpg', 2 ,0,1,3,0,1,1,6\r\n"
        + "abstract_0002.jpg,0,0,0,0,0,0,13,0\r\n",
    )
    rows = ingest("abstract8", source_dir).annotations
    assert votes(rows, "abstract_0001")["Amusement"] == 2
    assert votes(rows, "abstract_0002")["Fear"] == 13
    assert sorted(set(rows["source_line"])) == [2, 3]


def test_bad_votes_are_quarantined_fact_by_fact(source_dir: Path) -> None:
    write_truth(
        source_dir,
        HEADER
        + "'abstract_0001.jpg',1,1,1,1,1,1,1,6\n"
        + "'abstract_0002.jpg',x,1,1,1,1,1,1,6\n"
        + "'abstract_0003.jpg',1,-1,1,1,1,1,1,6\n"
        + "'abstract_0004.jpg',1,1,2.5,1,1,1,1,6\n"
        + "'abstract_0005.jpg',1,1,1,1,1,1,1,\n",
    )
    result = ingest("abstract8", source_dir)
    reasons = sorted(zip(result.quarantine["line"], result.quarantine["reason"]))
    assert reasons[0][0] == 3 and reasons[0][1].startswith("label_vote value 'x' is not a number")
    assert reasons[1:] == [
        (4, "Anger vote -1 outside 0..13"),
        (5, "Awe vote 2.5 is not a whole number"),
        (6, "missing value"),
    ]
    assert set(result.quarantine["file"]) == {TRUTH}
    assert result.counts == {"rows_read": 40, "rows_kept": 36, "rows_quarantined": 4}


def test_path_traversal_is_quarantined(source_dir: Path) -> None:
    write_truth(source_dir, HEADER + "'abstract_0001.jpg',1,1,1,1,1,1,1,6\n'../abstract_0099.jpg',1,1,1,1,1,1,1,6\n")
    write_image(source_dir / "abstract_0099.jpg", 4)  # a file of that name must not launder the path
    result = ingest("abstract8", source_dir)
    assert result.quarantine.height == 8
    assert set(result.quarantine["line"]) == {3}
    assert set(result.quarantine["reason"]) == {"image path '../abstract_0099.jpg' escapes the source root"}
    assert set(result.annotations["image_id"]) == {"abstract_0001"}


def test_truncated_file_quarantines_the_cut_row(source_dir: Path) -> None:
    write_truth(source_dir, HEADER + "'abstract_0001.jpg',1,1,1,1,1,1,1,6\n'abstract_0002.jpg',0,2,1")
    result = ingest("abstract8", source_dir)
    assert set(result.annotations["image_id"]) == {"abstract_0001"}
    assert result.quarantine.select("file", "line", "reason").rows() == [
        (TRUTH, 3, "record cut short: the file ends mid-row (truncated file?)")
    ]
    assert json.loads(result.quarantine["record"][0])["Anger"] == "2"


def test_truncated_inside_a_quoted_name_names_the_file(source_dir: Path) -> None:
    write_truth(source_dir, HEADER + "'abstract_0001.jpg',1,1,1,1,1,1,1,6\n'abstract_00")
    with pytest.raises(SourceFormatError, match=rf"{TRUTH}: not a readable delimited text file .*truncated download"):
        abstract8.read(source_dir)


def test_missing_column_names_the_file(source_dir: Path) -> None:
    write_truth(source_dir, "'','Amusement','Anger','Awe','Content','Disgust','Excitement','Fear'\n'a.jpg',1,1,1,1,1,1,1\n")
    with pytest.raises(SourceFormatError, match=rf"{TRUTH}: missing columns \['Sad'\]"):
        abstract8.read(source_dir)


def test_missing_file_names_what_was_expected(source_dir: Path) -> None:
    with pytest.raises(SourceFormatError, match=rf"{TRUTH}: file not found"):
        abstract8.read(source_dir)
