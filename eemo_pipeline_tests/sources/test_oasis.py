from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources import SourceFormatError, oasis
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.validate import contract_violations

HEADER = (
    '"","Theme","Category","Source","Valence_mean","Valence_SD","Valence_N","Arousal_mean","Arousal_SD","Arousal_N"\n'
)


def write_csv(root: Path, *rows: str, header: str = HEADER, newline: str = "\n", encoding: str = "utf-8") -> None:
    text = header + "".join(r + "\n" for r in rows)
    (root / "OASIS.csv").write_bytes(text.replace("\n", newline).encode(encoding))


def measure(rows: pl.DataFrame, image_id: str, name: str) -> dict:
    return rows.filter((pl.col("image_id") == image_id) & (pl.col("measure") == name)).row(0, named=True)


def test_sample_reads_with_quirks(source_dir: Path) -> None:
    oasis.write_sample(source_dir)
    data = (source_dir / "OASIS.csv").read_bytes()
    assert b"\n" not in data and data.count(b"\r") == 9 and b'"' not in data and b"Scenery" in data
    result = ingest("oasis", source_dir)
    assert contract_violations(result.annotations, "oasis") == []
    # 8 rows x (valence, arousal); Fire 9's arousal of 7.31 is the only quarantined fact.
    assert result.counts == {"rows_read": 16, "rows_kept": 15, "rows_quarantined": 1}
    bad = result.quarantine.row(0, named=True)
    assert (bad["file"], bad["line"]) == ("OASIS.csv", 6)
    assert "arousal 7.31 outside its scale 1.0..7.0" in bad["reason"]
    assert json.loads(bad["record"])["image_id"] == "Fire 9"
    kept = result.annotations
    assert (kept["scale_min"].unique().to_list(), kept["scale_max"].unique().to_list()) == ([1.0], [7.0])
    assert all((source_dir / p).is_file() for p in kept["image_path"].unique())


def test_rows_carry_sd_raters_and_attributes(source_dir: Path) -> None:
    oasis.write_sample(source_dir)
    rows = ingest("oasis", source_dir).annotations
    acorns = measure(rows, "Acorns 1", "valence")
    assert (acorns["value"], acorns["sd"], acorns["n_raters"], acorns["source_line"]) == (4.686275, 0.9101821, 102, 2)
    assert measure(rows, "Acorns 1", "arousal")["n_raters"] == 101
    assert json.loads(acorns["attributes"]) == {"category": "Object", "source": "Pixabay"}
    assert json.loads(measure(rows, "Fire 9", "valence")["attributes"]) == {"category": "Scene", "source": "Wikimedia"}


def test_both_variants_give_identical_rows(source_dir: Path, tmp_path: Path) -> None:
    oasis.write_sample(source_dir)
    quoted = tmp_path / "quoted"
    oasis._write_quoted_sample(quoted)
    data = (quoted / "OASIS.csv").read_bytes()
    assert b"\r" not in data and data.startswith(b'"","Theme"') and b'"Scene"' in data and b"Scenery" not in data
    unquoted_rows, quoted_rows = oasis.read(source_dir).rows, oasis.read(quoted).rows
    assert unquoted_rows.height == 16
    assert unquoted_rows.equals(quoted_rows)
    assert ingest("oasis", source_dir).annotations.equals(ingest("oasis", quoted).annotations)


def test_trailing_space_theme_gives_stripped_id_and_path(source_dir: Path) -> None:
    oasis.write_sample(source_dir)
    assert b",Lake 2  ,Scenery," in (source_dir / "OASIS.csv").read_bytes()
    lake = measure(oasis.read(source_dir).rows, "Lake 2", "valence")
    assert lake["image_path"] == "images/Lake 2.jpg" and (source_dir / lake["image_path"]).is_file()
    assert lake["source_line"] == 5


def test_cr_only_line_numbers(source_dir: Path) -> None:
    write_csv(
        source_dir,
        "1,Acorns 1,Object,Pixabay,4.69,0.91,102,2.35,1.53,101",
        "",
        "2,Baby 4,Person,Pixabay,6.09,1.0,103,3.86,1.92,101",
        "3,Cat 2,Animal,Flickr,5.62,1.13,101,8.5,1.78,104",
        header=HEADER.replace('"', ""),
        newline="\r",
    )
    result = ingest("oasis", source_dir)
    lines = dict(zip(result.annotations["image_id"], result.annotations["source_line"]))
    assert lines == {"Acorns 1": 2, "Baby 4": 4, "Cat 2": 5}  # the blank line 3 is skipped but counted
    assert result.quarantine.select("file", "line").row(0) == ("OASIS.csv", 5)


def test_cp1252_file_is_decoded(source_dir: Path) -> None:
    row = '"1","Caf\u00e9 1","Scene","Flickr","4.1","1.2","99","3.3","1.4","98"'
    write_csv(source_dir, row, encoding="cp1252")
    rows = oasis.read(source_dir).rows
    assert rows["image_id"].to_list() == ["Caf\u00e9 1", "Caf\u00e9 1"]
    assert rows["image_path"][0] == "images/Caf\u00e9 1.jpg"


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        ('"3","Cat 2","Animal","Flickr","5.62","1.1', "incomplete last row: cut inside a quoted cell"),
        (
            '"3","Cat 2","Animal","Flickr","5.62","1.13"',
            "incomplete row: no Valence_N, Arousal_mean, Arousal_SD, Arousal_N",
        ),
    ],
)
def test_truncated_file_keeps_earlier_rows(source_dir: Path, last: str, reason: str) -> None:
    text = HEADER + (
        '"1","Acorns 1","Object","Pixabay","4.69","0.91","102","2.35","1.53","101"\n'
        '"2","Baby 4","Person","Pixabay","6.09","1.0","103","3.86","1.92","101"\n'
    ) + last  # the file ends mid-row, without a final newline
    (source_dir / "OASIS.csv").write_text(text, encoding="utf-8")
    result = ingest("oasis", source_dir)
    assert sorted(result.annotations["image_id"].unique()) == ["Acorns 1", "Baby 4"]
    assert result.annotations.height == 4
    cut = result.quarantine.row(0, named=True)
    assert (cut["file"], cut["line"]) == ("OASIS.csv", 4) and reason in cut["reason"]
    assert result.quarantine.height == 1


def test_missing_column_names_the_file(source_dir: Path) -> None:
    row = '"1","Acorns 1","Object","Pixabay","4.69","0.91","102","2.35","101"'
    write_csv(source_dir, row, header=HEADER.replace(',"Arousal_SD"', ""))
    with pytest.raises(SourceFormatError, match=r"OASIS.csv: missing columns \['Arousal_SD'\]"):
        oasis.read(source_dir)


def test_missing_file_names_what_was_expected(source_dir: Path) -> None:
    with pytest.raises(SourceFormatError, match="OASIS.csv: file not found"):
        oasis.read(source_dir)


def test_out_of_range_and_non_numbers_are_quarantined(source_dir: Path) -> None:
    write_csv(
        source_dir,
        '"1","Acorns 1","Object","Pixabay","4.69","0.91","102","2.35","1.53","101"',
        '"2","Baby 4","Person","Pixabay","0.5","1.0","103","3.86","1.92","101"',
        '"3","Cat 2","Animal","Flickr","n/a","1.13","101","3.21","1.78","104"',
        '"4","Dog 6","Animal","Pixabay","5.95","wide","102","3.64","1.84","10.5"',
    )
    result = ingest("oasis", source_dir)
    quarantine = {(r["line"], r["reason"]) for r in result.quarantine.iter_rows(named=True)}
    assert {r["file"] for r in result.quarantine.iter_rows(named=True)} == {"OASIS.csv"}
    assert (3, "valence 0.5 outside its scale 1.0..7.0") in quarantine
    assert any(line == 4 and "valence value 'n/a' is not a number" in reason for line, reason in quarantine)
    assert (5, "Valence_SD 'wide' is not a number") in quarantine
    assert (5, "Arousal_N '10.5' is not a whole number") in quarantine
    assert result.counts == {"rows_read": 8, "rows_kept": 4, "rows_quarantined": 4}
    assert measure(result.annotations, "Cat 2", "arousal")["n_raters"] == 104
