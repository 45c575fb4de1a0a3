from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources import SourceFormatError, affection
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.reading import read_source, remember_files
from eemo_pipeline.sources.validate import contract_violations

HEADER = "workerid,utterance,emotion,dataset,image_name\n"
RAW = "affection_raw_public_version_0.csv"


def write_csv(root: Path, text: str, name: str = RAW) -> Path:
    path = root / name
    path.write_bytes(text.encode("utf-8"))
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based physical line of the first line holding ``needle`` (an oracle independent of the reader)."""
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1) if needle in line)


def test_sample_ingests_with_the_image_of_an_unknown_emotion_quarantined_whole(source_dir: Path) -> None:
    """An image's utterances are its vote distribution: the one labelled 'bliss' takes the other three with it
    (before: they were kept, a distribution of three of the image's four votes)."""
    affection.write_sample(source_dir)
    result = ingest("affection", source_dir)
    assert contract_violations(result.annotations, "affection") == []
    # 12 images, 39 utterances; the image with the utterance labelled 'bliss' is quarantined whole (4 utterances).
    assert result.counts == {"rows_read": 39, "rows_kept": 35, "rows_quarantined": 4}
    image = "flickr30k_affective/10002456.jpg"
    bad = result.quarantine.filter(pl.col("reason").str.starts_with("unknown label")).row(0, named=True)
    assert bad["file"] == RAW
    assert bad["line"] == line_of(source_dir / RAW, "So happy for them.") == 23
    assert bad["reason"] == "unknown label 'bliss' (not in the affection vocabulary)"
    assert json.loads(bad["record"])["image_id"] == image
    others = result.quarantine.filter(~pl.col("reason").str.starts_with("unknown label"))
    assert set(others["reason"]) == {
        f"image '{image}' quarantined whole, no partial distribution kept: {RAW} line 23, label_choice bliss: "
        "unknown label 'bliss' (not in the affection vocabulary)"}
    assert {json.loads(r)["image_id"] for r in others["record"]} == {image} and others.height == 3
    kept = result.annotations
    assert kept["image_id"].n_unique() == 11 and image not in set(kept["image_id"])
    assert set(kept["measure"]) == {"label_choice"} and set(kept["value"]) == {1.0}
    assert kept["label"].is_in(sorted(affection_labels())).all()


def affection_labels() -> set[str]:
    return {"amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness", "something else"}


def test_sample_quirks_survive_with_exact_text_and_lines(source_dir: Path) -> None:
    affection.write_sample(source_dir)
    path = source_dir / RAW
    rows = affection.read(source_dir).rows
    by_text = {r["text"]: r for r in rows.iter_rows(named=True) if r["text"] is not None}
    quoted = by_text['Her "umbrella face" is funny.']
    assert (quoted["annotator"], quoted["label"], quoted["source_line"]) == ("w02", "amusement", 3)
    multiline = by_text["It feels like a lazy afternoon\nwith nothing to worry about."]
    assert multiline["source_line"] == 4
    # The record after the two-line utterance starts on line 6, not 5.
    after = by_text["Horses running on the road, lots of energy!"]
    assert after["source_line"] == line_of(path, "Horses running") == 6
    # Every record's line is where its worker id starts a physical line.
    physical = path.read_text(encoding="utf-8").split("\n")
    assert all(physical[r["source_line"] - 1].startswith(r["annotator"] + ",") for r in rows.iter_rows(named=True))
    # The empty utterance keeps its row, without a comment.
    empty = rows.filter(pl.col("text").is_null())
    assert empty.select("annotator", "label", "image_id").rows() == [("w05", "awe", "coco_affective/COCO_train2014_000000000049.jpg")]
    # image_path is <dataset>/<image_name>; a name without a suffix stays as is (the manifest matches by stem).
    no_suffix = rows.filter(pl.col("image_id").str.starts_with("you_aaai_affective/fear"))
    assert set(no_suffix["image_path"]) == {"you_aaai_affective/fear_0107"}
    assert (source_dir / "you_aaai_affective" / "fear_0107.jpg").is_file()
    for image_path in rows.filter(pl.col("image_path").str.ends_with(".jpg"))["image_path"].unique():
        assert (source_dir / image_path).is_file(), image_path


def test_commas_quotes_newlines_and_crlf(source_dir: Path) -> None:
    text = (
        HEADER.replace("\n", "\r\n")
        + 'a1,"one, two, ""three""",awe,coco_affective,img1.jpg\r\n'
        + 'a2,"first line\r\nsecond line\r\nthird, last line",fear,coco_affective,img1.jpg\r\n'
        + "a3,plain,sadness,flickr30k_affective,img2.jpg\r\n"
    )
    write_csv(source_dir, text)
    rows = ingest("affection", source_dir).annotations.sort("source_line")
    # Line ends inside the quoted utterance are LF like every other (before: the CRLF file kept "\r\n").
    assert rows.select("annotator", "source_line", "text").rows() == [
        ("a1", 2, 'one, two, "three"'),
        ("a2", 3, "first line\nsecond line\nthird, last line"),
        ("a3", 6, "plain"),
    ]
    assert rows["image_path"].to_list() == ["coco_affective/img1.jpg", "coco_affective/img1.jpg", "flickr30k_affective/img2.jpg"]


def test_missing_fields_and_unknown_values_are_quarantined_with_lines(source_dir: Path) -> None:
    text = (
        HEADER
        + "w1,fine,awe,coco_affective,a.jpg\n"
        + 'w2,"no emotion,\nat all",,coco_affective,b.jpg\n'
        + "w3,no dataset,fear,,c.jpg\n"
        + "w4,no image,fear,coco_affective,\n"
        + "w5,odd dataset,fear,imagenet_affective,d.jpg\n"
        + "w6,odd label,joy,coco_affective,e.jpg\n"
        + ",no worker is fine,sadness,coco_affective,f.jpg\n"
        + "\n"
    )
    write_csv(source_dir, text)
    result = ingest("affection", source_dir)
    reasons = dict(zip(result.quarantine["line"], result.quarantine["reason"]))
    assert reasons == {
        3: "missing emotion",
        5: "missing dataset",
        6: "missing image_name",
        7: "unknown dataset 'imagenet_affective' (expected one of coco_affective, visual_genome_affective, "
        "flickr30k_affective, you_aaai_affective, emotional_machines_affective)",
        8: "unknown label 'joy' (not in the affection vocabulary)",
    }
    assert set(result.quarantine["file"]) == {RAW}
    assert json.loads(result.quarantine.filter(pl.col("line") == 3)["record"][0]) == {
        "workerid": "w2", "utterance": "no emotion,\nat all", "emotion": None, "dataset": "coco_affective", "image_name": "b.jpg",
    }
    kept = result.annotations.sort("source_line")
    assert kept.select("source_line", "annotator", "label").rows() == [(2, "w1", "awe"), (9, None, "sadness")]
    assert contract_violations(kept, "affection") == []
    assert result.counts == {"rows_read": 7, "rows_kept": 2, "rows_quarantined": 5}


def test_path_traversal_is_quarantined(source_dir: Path) -> None:
    text = (
        HEADER
        + "w1,ok,awe,coco_affective,a.jpg\n"
        + "w2,escape,awe,coco_affective,../../../etc/passwd\n"
        + "w3,escape via dataset,awe,..,a.jpg\n"
    )
    write_csv(source_dir, text)
    result = ingest("affection", source_dir)
    reasons = dict(zip(result.quarantine["line"], result.quarantine["reason"]))
    assert reasons[3] == "image path 'coco_affective/../../../etc/passwd' escapes the source root"
    assert reasons[4].startswith("unknown dataset '..'")
    assert result.annotations["image_path"].to_list() == ["coco_affective/a.jpg"]


@pytest.mark.parametrize("spelling", ["./a.jpg", ".//a.jpg", "x/../a.jpg", "/a.jpg", "a.jpg/", "x/./../a.jpg"])
def test_every_spelling_of_an_image_is_that_image(source_dir: Path, spelling: str) -> None:
    """Hostile tester: ``x/../a.jpg`` was quarantined as escaping the root while the image's other records were kept;
    ``./a.jpg`` became a second image beside ``a.jpg``. A path is kept in its one spelling, and a record rejected
    under another spelling takes the image's other rows with it."""
    write_csv(source_dir, HEADER + "w1,one,awe,coco_affective,a.jpg\n" + f"w2,two,fear,coco_affective,{spelling}\n"
              + "w3,three,awe,coco_affective,b.jpg\n")
    result = ingest("affection", source_dir)
    assert result.quarantine.is_empty()
    assert result.annotations.group_by("image_id", "image_path").len().sort("image_id").rows() == [
        ("coco_affective/a.jpg", "coco_affective/a.jpg", 2), ("coco_affective/b.jpg", "coco_affective/b.jpg", 1)]
    write_csv(source_dir, HEADER + "w1,one,awe,coco_affective,a.jpg\n" + f"w2,t\x01wo,fear,coco_affective,{spelling}\n"
              + "w3,three,awe,coco_affective,b.jpg\n")
    result = ingest("affection", source_dir)
    assert result.annotations["image_id"].to_list() == ["coco_affective/b.jpg"]
    assert sorted(result.quarantine["line"].to_list()) == [2, 3]
    assert result.counts == {"rows_read": 3, "rows_kept": 1, "rows_quarantined": 2}


def test_an_image_name_climbing_out_of_its_data_set_folder_is_refused(source_dir: Path) -> None:
    write_csv(source_dir, HEADER + "w1,one,awe,coco_affective,a.jpg\nw2,two,awe,coco_affective,x/../../a.jpg\n")
    result = ingest("affection", source_dir)
    assert result.quarantine.select("line", "reason").rows() == [
        (3, "image path 'coco_affective/x/../../a.jpg' escapes the source root")]
    assert result.annotations["image_id"].to_list() == ["coco_affective/a.jpg"]


def test_truncated_file_quarantines_the_cut_row(source_dir: Path, tmp_path: Path) -> None:
    # The download stopped inside the last record's dataset cell: no image_name, no final newline. The whole file
    # was read before, so the cut shows (a two-record file is no release: its count is no evidence).
    whole = HEADER + "w1,ok,awe,coco_affective,a.jpg\nw2,cut here,fear,coco_affective,b.jpg\n"
    write_csv(source_dir, whole)
    last_read = tmp_path / "last_read"
    remember_files(last_read, source_dir, read_source("affection", source_dir).files)
    write_csv(source_dir, whole[: whole.index("coco_affective,b.jpg") + len("coco_aff")])
    result = ingest("affection", source_dir, last_read)
    assert result.annotations["source_line"].to_list() == [2]
    bad = result.quarantine.row(0, named=True)
    assert (bad["file"], bad["line"]) == (RAW, 3)
    assert "missing image_name" in bad["reason"]
    assert "record cut short: the file ends mid-row (truncated file?)" in bad["reason"]


def test_truncated_inside_a_quoted_utterance_names_the_file(source_dir: Path) -> None:
    write_csv(source_dir, HEADER + 'w1,ok,awe,coco_affective,a.jpg\nw2,"an utterance that was cut')
    with pytest.raises(SourceFormatError, match=rf"{RAW}: not a readable delimited text file .*truncated download"):
        affection.read(source_dir)


def test_missing_column_names_the_file(source_dir: Path) -> None:
    write_csv(source_dir, "workerid,utterance,emotion,image_name\nw1,hi,awe,a.jpg\n")
    with pytest.raises(SourceFormatError, match=rf"{RAW}: missing columns \['dataset'\]"):
        affection.read(source_dir)


def test_missing_file_names_what_was_expected(source_dir: Path) -> None:
    with pytest.raises(SourceFormatError, match=rf"{RAW}: file not found"):
        affection.read(source_dir)


PREPROCESSED_HEADER = "workerid,utterance,emotion,dataset,image_name,utterance_spelled,tokens,tokens_len,tokens_encoded,split\n"


def test_preprocessed_variant_keeps_split(source_dir: Path) -> None:
    write_csv(
        source_dir,
        PREPROCESSED_HEADER
        + "w1,\"Calm, quiet\",contentment,coco_affective,a.jpg,\"calm, quiet\",\"['calm', ',', 'quiet']\",3,\"[1, 5, 6, 7, 2]\",train\n"
        + "w2,Scary,fear,flickr30k_affective,b.jpg,scary,['scary'],1,\"[1, 9, 2]\",test\n",
        name="affection_preprocessed.csv",
    )
    rows = ingest("affection", source_dir).annotations.sort("source_line")
    assert rows.select("annotator", "split", "text", "source_file").rows() == [
        ("w1", "train", "Calm, quiet", "affection_preprocessed.csv"),
        ("w2", "test", "Scary", "affection_preprocessed.csv"),
    ]


def test_raw_file_is_preferred_over_a_preprocessed_one(source_dir: Path) -> None:
    write_csv(source_dir, HEADER + "w1,raw,awe,coco_affective,a.jpg\n")
    write_csv(source_dir, PREPROCESSED_HEADER + "w1,pre,awe,coco_affective,a.jpg,pre,['pre'],1,[1],val\n", name="affection_preprocessed.csv")
    rows = affection.read(source_dir).rows
    assert rows.select("text", "split", "source_file").rows() == [("raw", None, RAW)]


def test_several_preprocessed_files_are_ambiguous(source_dir: Path) -> None:
    for name in ("a_preprocessed.csv", "b_preprocessed.csv"):
        write_csv(source_dir, PREPROCESSED_HEADER, name=name)
    with pytest.raises(SourceFormatError, match="a_preprocessed.csv, b_preprocessed.csv"):
        affection.read(source_dir)
