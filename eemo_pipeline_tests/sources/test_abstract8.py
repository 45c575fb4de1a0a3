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


WHOLE = "image '{}' quarantined whole, no partial distribution kept: " + TRUTH + " line {}: {}"


def test_sample_ingests_with_the_image_of_an_out_of_range_vote_quarantined_whole(source_dir: Path) -> None:
    """Before: abstract_0009 kept its seven other votes, and its dominant emotion became Fear."""
    abstract8.write_sample(source_dir)
    result = ingest("abstract8", source_dir)
    assert contract_violations(result.annotations, "abstract8") == []
    # 10 images x 8 emotions; the 14 votes for Sad on abstract_0009 (line 10) quarantine its whole vote set.
    assert result.counts == {"rows_read": 80, "rows_kept": 72, "rows_quarantined": 8}
    assert "abstract_0009" not in set(result.annotations["image_id"])
    bad = result.quarantine.filter(pl.col("reason") == "Sad vote 14 outside 0..13").row(0, named=True)
    assert (bad["file"], bad["line"]) == (TRUTH, 10)
    assert json.loads(bad["record"]) == {
        "image_id": "abstract_0009",
        "image_path": "testImages_abstract/abstract_0009.jpg",
        "measure": "label_vote",
        "label": "Sad",
        "value_text": "14",
    }
    others = result.quarantine.filter(pl.col("reason") != "Sad vote 14 outside 0..13")
    assert set(others.select("file", "line", "reason").rows()) == {
        (TRUTH, 10, WHOLE.format("abstract_0009", 10, "Sad vote 14 outside 0..13"))}
    assert sorted(json.loads(r)["label"] for r in others["record"]) == sorted(e for e in EMOTIONS if e != "Sad")
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
    # abstract_0009's vote for Sad is out of range: none of its votes is kept.
    assert votes(rows, "abstract_0009") == {}


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


def test_a_bad_vote_quarantines_the_image_whole_naming_the_cell(source_dir: Path) -> None:
    """Before: each bad vote was quarantined alone and the image's other seven votes were kept (a 6.5 for Sad
    turned abstract_0001's dominant emotion from Sad into Content)."""
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
    assert set(result.annotations["image_id"]) == {"abstract_0001"}
    assert result.counts == {"rows_read": 40, "rows_kept": 8, "rows_quarantined": 32}
    assert set(result.quarantine["file"]) == {TRUTH}
    by_line = {line: set(group["reason"]) for (line,), group in result.quarantine.group_by("line")}
    assert sorted(by_line) == [3, 4, 5, 6] and all(len(result.quarantine.filter(pl.col("line") == n)) == 8 for n in by_line)
    cells = {3: "label_vote Amusement: label_vote value 'x' is not a number", 4: "Anger vote -1 outside 0..13",
             5: "Awe vote 2.5 is not a whole number", 6: "label_vote Sad: missing value"}
    for line, cell in cells.items():
        whole = [r for r in by_line[line] if r.startswith("image '")]
        assert len(whole) == 1 and f"{TRUTH} line {line}" in whole[0] and cell in whole[0], (line, by_line[line])
        assert len(by_line[line]) == 2  # the cell's own reason, and the same whole-image reason on the seven others


def test_path_traversal_is_quarantined(source_dir: Path) -> None:
    write_truth(source_dir, HEADER + "'abstract_0001.jpg',1,1,1,1,1,1,1,6\n'../abstract_0099.jpg',1,1,1,1,1,1,1,6\n")
    write_image(source_dir / "abstract_0099.jpg", 4)  # a file of that name must not launder the path
    result = ingest("abstract8", source_dir)
    assert result.quarantine.height == 8
    assert set(result.quarantine["line"]) == {3}
    assert set(result.quarantine["reason"]) == {"image path '../abstract_0099.jpg' escapes the source root"}
    assert set(result.annotations["image_id"]) == {"abstract_0001"}


def _rows(count: int) -> str:
    return "".join(f"'abstract_{n:04d}.jpg',1,1,1,1,1,1,1,6\n" for n in range(1, count + 1))


def test_truncated_file_quarantines_the_cut_row(source_dir: Path) -> None:
    # 270 of the release's 280 records: the file claims to be the release, so the count shows the cut.
    write_truth(source_dir, HEADER + _rows(269) + "'abstract_0270.jpg',0,2,1")
    result = ingest("abstract8", source_dir)
    assert result.annotations["image_id"].n_unique() == 269 and "abstract_0270" not in set(result.annotations["image_id"])
    assert result.quarantine.select("file", "line", "reason").rows() == [
        (TRUTH, 271, "record cut short: the file ends mid-row (truncated file?)")
    ]
    assert json.loads(result.quarantine["record"][0])["Anger"] == "2"


def test_a_subset_without_its_final_newline_keeps_its_last_row_unchecked(source_dir: Path) -> None:
    """Before: any file of fewer than 280 records lost its last record as cut short, the project's own sample too."""
    write_truth(source_dir, HEADER + _rows(2).rstrip("\n"))
    result = ingest("abstract8", source_dir)
    assert set(result.annotations["image_id"]) == {"abstract_0001", "abstract_0002"} and result.quarantine.is_empty()
    assert result.unchecked == (TRUTH,)
    assert "holds 2 records, under 90% of the release's 280 (release_share): a subset" in result.notes[0]


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
