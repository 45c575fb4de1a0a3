from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources import SourceFormatError, findingemo
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.reading import read_source, remember_files
from eemo_pipeline.sources.validate import contract_violations

ANN = "annotations_single.ann"
URLS = "dataset_urls_exploded.json"
HEADER = "index,user,image_path,tags,age,valence,arousal,emotion,dec_factors,ambiguity,datetime\n"
ROW = '{i},u{i},{p},Undefined,"Adults,Seniors",{v},{a},{e},"BodyLanguage,Context",{m},2023-07-04 12:55:32.182805\n'


def row(i: int, v: object = 1, a: object = 3, e: str = "Joy", m: object = 2, p: str | None = None) -> str:
    return ROW.format(i=i, v=v, a=a, e=e, m=m, p=p or f"/Run_2/Happy people park/img{i}.jpg")


def write_ann(root: Path, text: str) -> None:
    (root / ANN).write_bytes(text.encode("utf-8"))


def attributes(rows: pl.DataFrame, image_id: str) -> dict:
    values = rows.filter(pl.col("image_id") == image_id)["attributes"].unique().to_list()
    assert len(values) == 1  # every fact of the row carries the same attributes
    return json.loads(values[0])


def test_sample_ingests_with_one_out_of_range_valence(source_dir: Path) -> None:
    findingemo.write_sample(source_dir)
    result = ingest("findingemo", source_dir)
    assert contract_violations(result.annotations, "findingemo") == []
    # 10 rows x (label_choice + valence, arousal, ambiguity); valence 4 on line 7 is the only bad fact.
    assert result.counts == {"rows_read": 40, "rows_kept": 39, "rows_quarantined": 1}
    bad = result.quarantine.row(0, named=True)
    assert (bad["file"], bad["line"]) == (ANN, 7)
    assert bad["reason"] == "valence 4.0 outside its scale -3.0..3.0"
    assert json.loads(bad["record"])["image_id"] == "Run_2/Scared adolescents prison/15-hampton-roads-regional-jail-va.jpg"
    kept = result.annotations
    assert kept.group_by("measure").len().sort("measure").rows() == [
        ("ambiguity", 10), ("arousal", 10), ("label_choice", 10), ("valence", 9),
    ]
    scales = kept.filter(pl.col("measure") != "label_choice").select("measure", "scale_min", "scale_max").unique().sort("measure")
    assert scales.rows() == [("ambiguity", 0.0, 6.0), ("arousal", 0.0, 6.0), ("valence", -3.0, 3.0)]


def test_leading_slash_spaces_and_dots_in_paths(source_dir: Path) -> None:
    findingemo.write_sample(source_dir)
    rows = ingest("findingemo", source_dir).annotations
    first = rows.filter((pl.col("measure") == "label_choice") & (pl.col("source_line") == 2)).row(0, named=True)
    assert first["image_id"] == first["image_path"] == "Run_2/Loving toddlers sports/haiti-kids.jpg"
    assert (first["label"], first["value"], first["annotator"]) == ("Trust", 1.0, "5fd97d5b40332e276ea58209")
    # A run of dots inside a file name is no '..' component: kept.
    assert "Run_2/Unhappy elderly conference/pakistan.....jpg" in set(rows["image_path"])
    assert all((source_dir / p).is_file() for p in rows["image_path"].unique())


@pytest.mark.parametrize("spelling", ["/Run_2/./Happy people park/img1.jpg", "/Run_2//Happy people park//img1.jpg",
                                      "Run_2/Happy people park/img1.jpg", "/Run_2/x/../Happy people park/img1.jpg"])
def test_every_spelling_of_an_image_is_that_image(source_dir: Path, spelling: str) -> None:
    """Hostile tester: ``/Run_2/./...`` was a second image beside the real one (1 annotator beside 2)."""
    write_ann(source_dir, HEADER + row(1) + row(2, p=spelling.replace("img1", "img2")).replace("u2", "u1") + row(3, p=spelling))
    result = ingest("findingemo", source_dir)
    choices = result.annotations.filter(pl.col("measure") == "label_choice")
    assert choices.group_by("image_id", "image_path").len().sort("image_id").rows() == [
        ("Run_2/Happy people park/img1.jpg", "Run_2/Happy people park/img1.jpg", 2),
        ("Run_2/Happy people park/img2.jpg", "Run_2/Happy people park/img2.jpg", 1)]
    # A record rejected under another spelling takes the image's other rows with it.
    write_ann(source_dir, HEADER + row(1) + row(2, p=spelling.replace("img1", "img2")) + row(3, e="Bliss", p=spelling))
    result = ingest("findingemo", source_dir)
    assert set(result.annotations["image_id"]) == {"Run_2/Happy people park/img2.jpg"}
    assert sorted(set(result.quarantine["line"])) == [2, 4]


def test_quoted_lists_and_urls_go_to_attributes(source_dir: Path) -> None:
    findingemo.write_sample(source_dir)
    rows = findingemo.read(source_dir).rows
    assert attributes(rows, "Run_2/Scared adolescents prison/15-hampton-roads-regional-jail-va.jpg") == {
        "index": 12,
        "tags": ["Text", "NA"],
        "age": ["Youth", "Adults"],
        "dec_factors": ["BodyLanguage", "Context", "FacialExpression"],
        "datetime": "2023-07-04 12:59:36.656778",
        "url": None,  # not in the URL file
        "urls": None,
    }
    mall = attributes(rows, "Run_2/Guilt youth mall/0a22745c-20d2-4631-9811-289dc8c71e52_1140x641.png")
    assert (mall["tags"], mall["age"], mall["dec_factors"]) == (["Undefined"], ["Youth", "Young Adults"], ["BodyLanguage"])
    # Candidates come back in idx_url order although the file lists them newest first.
    assert mall["url"] == "https://example.org/guilt-youth-mall.png"
    assert mall["urls"] == [
        "https://example.org/guilt-youth-mall.png", "https://cdn.example.com/0a22745c.png", "https://example.net/mall.png",
    ]


def test_url_file_is_optional(source_dir: Path) -> None:
    findingemo.write_sample(source_dir)
    (source_dir / URLS).unlink()
    result = ingest("findingemo", source_dir)
    assert result.counts == {"rows_read": 40, "rows_kept": 39, "rows_quarantined": 1}
    assert set(attributes(result.annotations, "Run_2/Loving toddlers sports/haiti-kids.jpg")) == {
        "index", "tags", "age", "dec_factors", "datetime",
    }


def test_unreadable_url_file_names_the_file(source_dir: Path) -> None:
    findingemo.write_sample(source_dir)
    (source_dir / URLS).write_text('[{"rel_path": "/Run_2/x.jpg", "idx_url": 1, "url": "http://', encoding="utf-8")
    with pytest.raises(SourceFormatError, match=rf"{URLS}: not JSON .*expected a JSON array") as error:
        findingemo.read(source_dir)
    assert (error.value.line, error.value.column) == (1, 52)
    (source_dir / URLS).write_text('[{"path": "/Run_2/x.jpg", "link": "http://x"}]', encoding="utf-8")
    with pytest.raises(SourceFormatError, match=rf"{URLS}: missing columns \['rel_path', 'url'\]"):
        findingemo.read(source_dir)


def test_a_json_error_names_its_line_and_column(source_dir: Path) -> None:
    """Before: polars' "Syntax at character 0" for a NUL in mid-file, a character offset at best."""
    findingemo.write_sample(source_dir)
    path = source_dir / URLS
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"https", b"ht\x00tps", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(SourceFormatError, match=rf"{URLS}: not JSON \(Invalid control character") as error:
        findingemo.read(source_dir)
    assert (error.value.line, error.value.column) == (3, lines[2].index(b"\x00") + 1)


def test_bad_rows_are_quarantined_with_file_and_line(source_dir: Path) -> None:
    write_ann(
        source_dir,
        HEADER
        + row(0)
        + row(1, e="Happiness")
        + row(2, a="high")
        + row(3, m=7)
        + row(4, e="")
        + row(5, v=-4),
    )
    result = ingest("findingemo", source_dir)
    reasons = sorted(set(zip(result.quarantine["line"], result.quarantine["reason"])))
    assert reasons[2][0] == 4 and reasons[2][1].startswith("arousal value 'high' is not a number")
    whole = "image 'Run_2/Happy people park/img1.jpg' quarantined whole, no partial distribution kept: "
    assert reasons[:2] + reasons[3:] == [
        (3, whole + f"{ANN} line 3, label_choice Happiness: unknown label 'Happiness' (not in the findingemo vocabulary)"),
        (3, "unknown label 'Happiness' (not in the findingemo vocabulary)"),
        (5, "ambiguity 7.0 outside its scale 0.0..6.0"),
        (6, "missing emotion"),
        (7, "valence -4.0 outside its scale -3.0..3.0"),
    ]
    assert set(result.quarantine["file"]) == {ANN}
    # A bad label takes the image's ratings with it (the annotation is its distribution); a row without an emotion
    # is rejected whole (before: its ratings were kept); a bad rating goes alone.
    assert result.quarantine.filter(pl.col("line") == 3).height == 4
    assert result.annotations.filter(pl.col("source_line").is_in([3, 6])).is_empty()
    assert result.counts == {"rows_read": 21, "rows_kept": 13, "rows_quarantined": 8}
    assert contract_violations(result.annotations, "findingemo") == []


def test_path_traversal_is_quarantined(source_dir: Path) -> None:
    write_ann(
        source_dir,
        HEADER + row(0) + row(1, p="/Run_2/../../../etc/passwd") + row(2, p="//etc/shadow") + row(3, p="/Run_2/..\\x.jpg"),
    )
    result = ingest("findingemo", source_dir)
    by_line = result.quarantine.group_by("line").agg(pl.col("reason").unique()).sort("line")
    assert by_line.rows() == [
        (3, ["image path 'Run_2/../../../etc/passwd' escapes the source root"]),
        (4, ["image path '/etc/shadow' escapes the source root"]),
        (5, ["image path 'Run_2/..\\x.jpg' escapes the source root"]),
    ]
    assert result.quarantine.height == 12  # all four facts of each of the three rows
    assert set(result.annotations["image_path"]) == {"Run_2/Happy people park/img0.jpg"}


def test_truncated_file_quarantines_the_cut_row(source_dir: Path, tmp_path: Path) -> None:
    # The whole file was read before, so the cut shows (a two-record file is no release: its count is no evidence).
    write_ann(source_dir, HEADER + row(0) + row(1, v=2))
    last_read = tmp_path / "last_read"
    remember_files(last_read, source_dir, read_source("findingemo", source_dir).files)
    write_ann(source_dir, HEADER + row(0) + '1,u1,/Run_2/Happy people park/img1.jpg,Undefined,"Adults,Seniors",2,3')
    result = ingest("findingemo", source_dir, last_read)
    assert set(result.annotations["source_line"]) == {2}
    assert result.quarantine.select("file", "line", "reason").rows() == [
        (ANN, 3, "record cut short: the file ends mid-row (truncated file?)")
    ]
    assert json.loads(result.quarantine["record"][0])["arousal"] == "3"


def test_truncated_inside_a_quoted_list_names_the_file(source_dir: Path) -> None:
    write_ann(source_dir, HEADER + row(0) + '1,u1,/Run_2/Happy people park/img1.jpg,Undefined,"Adults,Sen')
    with pytest.raises(SourceFormatError, match=rf"{ANN}: not a readable delimited text file .*truncated download"):
        findingemo.read(source_dir)


def test_missing_column_names_the_file(source_dir: Path) -> None:
    write_ann(source_dir, HEADER.replace(",ambiguity", "") + "0,u0,/a.jpg,Undefined,Adults,1,3,Joy,Context,2023-07-04\n")
    with pytest.raises(SourceFormatError, match=rf"{ANN}: missing columns \['ambiguity'\]"):
        findingemo.read(source_dir)


def test_missing_file_names_what_was_expected(source_dir: Path) -> None:
    with pytest.raises(SourceFormatError, match=rf"{ANN}: file not found"):
        findingemo.read(source_dir)


def test_real_findingemo_annotations(source_dir: Path) -> None:
    """The published annotations (findingemo-light 1.0.0): 25,869 rows, one per image; ~0.5 s."""
    package = pytest.importorskip("findingemo_light")
    data = Path(package.__file__).parent / "data"
    for name in (ANN, URLS):
        shutil.copyfile(data / name, source_dir / name)
    result = ingest("findingemo", source_dir)
    assert contract_violations(result.annotations, "findingemo") == []
    # Nothing is quarantined: every emotion is one of the 24 Plutchik labels, every rating is on its scale
    # and no path escapes the root (22 file names hold '..' or longer dot runs, e.g. 'AUTOPSY..jpg', but
    # never as a path component; the leading '/' of every path is the data set's own convention).
    assert result.quarantine.height == 0
    assert result.quarantine["reason"].is_not_null().all()
    quarantined_ids = [json.loads(r).get("image_id") for r in result.quarantine["record"] if r is not None]
    images = set(result.annotations["image_id"]) | {i for i in quarantined_ids if i is not None}
    assert len(images) == 25_869
    assert result.counts == {"rows_read": 4 * 25_869, "rows_kept": 4 * 25_869, "rows_quarantined": 0}
    assert result.annotations.group_by("measure").len().sort("measure").rows() == [
        ("ambiguity", 25_869), ("arousal", 25_869), ("label_choice", 25_869), ("valence", 25_869),
    ]
    assert result.annotations["image_path"].str.starts_with("Run_").all()
    assert set(result.annotations.filter(pl.col("measure") == "label_choice")["label"]) == {
        "Joy", "Ecstasy", "Serenity", "Trust", "Admiration", "Acceptance", "Fear", "Terror", "Apprehension",
        "Surprise", "Amazement", "Distraction", "Sadness", "Grief", "Pensiveness", "Disgust", "Loathing", "Boredom",
        "Anger", "Rage", "Annoyance", "Anticipation", "Vigilance", "Interest",
    }
    first = result.annotations.filter(pl.col("source_line") == 2).sort("measure")
    assert first.select("measure", "label", "value").rows() == [
        ("ambiguity", None, 0.0), ("arousal", None, 2.0), ("label_choice", "Trust", 1.0), ("valence", None, 0.0),
    ]
    assert attributes(first, "Run_2/Loving toddlers sports/haiti-kids.jpg")["dec_factors"] == ["BodyLanguage", "FacialExpression"]
    # The URL file has candidates for 25,611 images (258 have none; 3 of its 60,554 urls are empty).
    choices = result.annotations.filter(pl.col("measure") == "label_choice")
    without_url = choices["attributes"].str.contains('"url":null', literal=True).sum()
    assert without_url == 258
