from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources import SourceFormatError, gaped
from eemo_pipeline.sources.base import CUT_REASON
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.sample_images import write_image
from eemo_pipeline.sources.validate import contract_violations

NORMS_HEADER = "\tValence\tArousal\tInternal norms\tExternal norms\n"
PLAIN_HEADER = "\tValence\tArousal\n"


def write(root: Path, name: str, text: str, encoding: str = "utf-8") -> None:
    (root / name).write_bytes(text.encode(encoding))


def value(rows: pl.DataFrame, image_id: str, measure: str) -> dict:
    return rows.filter((pl.col("image_id") == image_id) & (pl.col("measure") == measure)).row(0, named=True)


def test_sample_reads_with_quirks(source_dir: Path) -> None:
    gaped.write_sample(source_dir)
    result = ingest("gaped", source_dir)
    assert contract_violations(result.annotations, "gaped") == []
    # A and H: 2 images x 4 ratings; N, P, Sn, Sp: 2 images x 2 ratings; P002's arousal of 104 is quarantined.
    assert result.counts == {"rows_read": 32, "rows_kept": 31, "rows_quarantined": 1}
    bad = result.quarantine.row(0, named=True)
    assert (bad["file"], bad["line"]) == ("P.txt", 3)
    assert "arousal 104.0 outside its scale 0.0..100.0" in bad["reason"]
    assert json.loads(bad["record"])["image_id"] == "P/P002"
    kept = result.annotations
    assert sorted(kept["source_file"].unique()) == ["A.txt", "H.txt", "N.txt", "P.txt", "Sn.txt", "Sp_with SD.txt"]
    assert kept.group_by("image_id").len().height == 12
    assert (kept["scale_min"].unique().to_list(), kept["scale_max"].unique().to_list()) == ([0.0], [100.0])
    # Every image path points at a real file of the sample.
    assert all((source_dir / p).is_file() for p in kept["image_path"].unique())


def test_jpg_names_match_bmp_images_by_stem(source_dir: Path) -> None:
    write(source_dir, "N.txt", PLAIN_HEADER + "N001.jpg\t50.5\t20\nN002.jpg\t48\t22\nN003.jpg\t52\t19\n")
    write_image(source_dir / "N" / "N001.bmp", 3)
    write_image(source_dir / "N" / "N002.png", 4)  # another suffix: found by stem
    rows = gaped.read(source_dir).rows
    paths = dict(zip(rows["image_id"], rows["image_path"]))
    assert paths == {"N/N001": "N/N001.bmp", "N/N002": "N/N002.png", "N/N003": "N/N003.bmp"}
    assert json.loads(rows["attributes"][0]) == {"category": "N", "category_name": "neutral"}


def test_empty_first_header_cell_and_two_versus_four_rating_columns(source_dir: Path) -> None:
    write(source_dir, "A.txt", NORMS_HEADER + "A001.jpg\t18.43\t67.25\t12.1\t15.88\n")
    write(source_dir, "Sn.txt", PLAIN_HEADER + "Sn001.jpg\t27.64\t55.19\n")
    rows = ingest("gaped", source_dir).annotations
    a = rows.filter(pl.col("image_id") == "A/A001")
    assert a["measure"].to_list() == ["valence", "arousal", "internal_norms", "external_norms"]
    assert a["value"].to_list() == [18.43, 67.25, 12.1, 15.88]
    assert set(a["source_line"]) == {2} and set(a["sd"].to_list()) == {None}
    sn = rows.filter(pl.col("image_id") == "Sn/Sn001")
    assert sn["measure"].to_list() == ["valence", "arousal"] and sn["value"].to_list() == [27.64, 55.19]
    assert json.loads(sn["attributes"][0]) == {"category": "Sn", "category_name": "snakes"}


def test_with_sd_variant_gives_sd_and_skips_trailing_tab_lines(source_dir: Path) -> None:
    write(
        source_dir,
        "H_with SD.txt",
        "\tValence\t(sd)\t\tArousal\t(sd)\t\tInternal norms\t(sd)\t\tExternal norms\t(sd)\t\n"
        "H001.jpg\t22.15\t(16.04)\t\t58.40\t(21.37)\t\t19.62\t(14.90)\t\t21.03\t(15.51)\t\n"
        "H002.jpg\t14.80\t(12.30)\t\t62.77\t(19.80)\t\t10.45\t(9.90)\t\t12.60\t(10.20)\t\n"
        + "\t" * 12 + "\n" + "\t" * 12 + "\n" + "\t" * 12 + "\n",
    )
    read = gaped.read(source_dir)
    assert read.rejects.is_empty()
    rows = read.rows
    assert rows.height == 8 and set(rows["source_file"]) == {"H_with SD.txt"}
    h1 = rows.filter(pl.col("image_id") == "H/H001")
    assert h1["measure"].to_list() == ["valence", "arousal", "internal_norms", "external_norms"]
    assert h1["value_text"].to_list() == ["22.15", "58.40", "19.62", "21.03"]
    assert h1["sd"].to_list() == [16.04, 21.37, 14.90, 15.51]
    assert value(rows, "H/H002", "external_norms")["sd"] == 10.20
    assert value(rows, "H/H002", "external_norms")["source_line"] == 3


SD_HEADER = "\tValence\t(sd)\t\tArousal\t(sd)\t\n"


def test_an_sd_cell_with_unbalanced_parentheses_is_quarantined(source_dir: Path) -> None:
    """Before: ``strip_chars("()")`` read ``(18`` as 18.0 and ``))21.8((`` as 21.8."""
    write(source_dir, "N_with SD.txt", SD_HEADER + "N001.jpg\t53.92\t(18\t\t21.36\t))21.8((\t\n"
          "N002.jpg\t50.11\t(7.40)\t\t18.74\t15.60\t\n")
    result = ingest("gaped", source_dir)
    bad = sorted(result.quarantine.select("line", "reason").rows())
    assert bad == [(2, "arousal standard deviation '))21.8((' has unbalanced parentheses (cut or damaged?)"),
                   (2, "valence standard deviation '(18' has unbalanced parentheses (cut or damaged?)")]
    assert result.annotations.filter(pl.col("image_id") == "N/N001").is_empty()
    # "(7.40)" and a bare 15.60 are whole.
    assert result.annotations.filter(pl.col("image_id") == "N/N002")["sd"].to_list() == [7.4, 15.6]


def test_an_unclosed_sd_cell_at_the_end_of_a_file_shows_the_cut(source_dir: Path) -> None:
    """The probe: "Sp_with SD.txt" cut after "(2" of "(22.60)", with no twin and no release count. Before: kept as
    sd 2.0, every check passing, with a warning "kept, unchecked"."""
    gaped.write_sample(source_dir)
    path = source_dir / "Sp_with SD.txt"
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"(22.60)") + 2])
    result = ingest("gaped", source_dir)
    assert result.annotations.filter(pl.col("image_id") == "Sp/Sp001").is_empty()
    assert ("Sp_with SD.txt", 2, CUT_REASON) in result.quarantine.select("file", "line", "reason").rows()
    assert result.unchecked == () and result.notes == (
        "Sp_with SD.txt: ends without a line break and its last record has an (sd) cell with unbalanced "
        "parentheses: quarantined as cut short",)


def test_plain_file_is_preferred_over_with_sd_variant(source_dir: Path) -> None:
    write(source_dir, "P.txt", PLAIN_HEADER + "P001.jpg\t86.47\t44.05\n")
    write(source_dir, "P_with SD.txt", "\tValence\t(sd)\t\tArousal\t(sd)\t\nP001.jpg\t1\t(1)\t\t2\t(2)\t\n")
    rows = gaped.read(source_dir).rows
    assert set(rows["source_file"]) == {"P.txt"} and rows["value_text"].to_list() == ["86.47", "44.05"]


def test_sample_with_sd_file_has_trailing_tab_lines_and_sds(source_dir: Path) -> None:
    gaped.write_sample(source_dir)
    lines = (source_dir / "Sp_with SD.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-2] == "\t" * 6 and not (source_dir / "Sp.txt").exists()
    rows = ingest("gaped", source_dir).annotations.filter(pl.col("source_file") == "Sp_with SD.txt")
    assert rows.height == 4 and sorted(rows["source_line"].unique()) == [2, 3]
    assert value(rows, "Sp/Sp001", "valence")["sd"] == 18.2 and value(rows, "Sp/Sp002", "arousal")["sd"] == 21.8


def test_crlf_file_reads_like_lf(source_dir: Path) -> None:
    gaped.write_sample(source_dir)
    assert b"\r\n" in (source_dir / "H.txt").read_bytes()
    rows = gaped.read(source_dir).rows.filter(pl.col("source_file") == "H.txt")
    assert value(rows, "H/H002", "external_norms")["value_text"] == "12.60"
    assert value(rows, "H/H002", "external_norms")["source_line"] == 3
    assert not rows["value_text"].str.contains("\r").any() and not rows["image_id"].str.contains("\r").any()


def test_cp1252_readme_and_cp1252_rating_file(source_dir: Path) -> None:
    gaped.write_sample(source_dir)
    readme = (source_dir / "GAPED_readme.txt").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        readme.decode("utf-8")
    assert "Genève" in readme.decode("cp1252")
    # A rating file saved in cp1252 (a non-ASCII image name) is decoded by the fallback.
    write(source_dir, "N.txt", PLAIN_HEADER + "N\u00e9001.jpg\t50\t20\n", encoding="cp1252")
    rows = gaped.read(source_dir).rows
    assert "N/N\u00e9001" in set(rows["image_id"])


def test_truncated_file_keeps_earlier_rows(source_dir: Path) -> None:
    write(source_dir, "P.txt", PLAIN_HEADER + "P001.jpg\t86.47\t44.05\nP002.jpg\t79.3")  # cut mid-row
    result = ingest("gaped", source_dir)
    assert result.annotations["image_id"].to_list() == ["P/P001", "P/P001"]
    cut = result.quarantine.row(0, named=True)
    assert (cut["file"], cut["line"]) == ("P.txt", 3)
    assert "incomplete row: 2 of 3 TAB-separated fields" in cut["reason"]
    assert json.loads(cut["record"]) == {"text": "P002.jpg\t79.3"}
    assert result.counts == {"rows_read": 3, "rows_kept": 2, "rows_quarantined": 1}


def test_missing_column_names_the_file(source_dir: Path) -> None:
    write(source_dir, "A.txt", PLAIN_HEADER + "A001.jpg\t18\t67\n")  # A must carry the norms
    with pytest.raises(SourceFormatError, match=r"A.txt: missing columns \['Internal norms', 'External norms'\]"):
        gaped.read(source_dir)
    write(source_dir, "A.txt", "\tValence\nA001.jpg\t18\n")
    with pytest.raises(SourceFormatError, match=r"A.txt: missing columns \['Arousal'"):
        gaped.read(source_dir)


def test_no_rating_file_names_root_and_expected_files(source_dir: Path) -> None:
    write(source_dir, "readme.txt", "nothing here\n")
    with pytest.raises(SourceFormatError, match=r"no GAPED rating file found; expected some of A.txt, H.txt") as error:
        gaped.read(source_dir)
    assert error.value.file == str(source_dir) and '"Sp_with SD.txt"' in str(error.value)


def test_out_of_range_and_non_number_are_quarantined_with_file_and_line(source_dir: Path) -> None:
    write(source_dir, "Sn.txt", PLAIN_HEADER + "Sn001.jpg\t27.6\t55.2\nSn002.jpg\t-3\t49.9\nSn003.jpg\tabc\t50\n")
    write(source_dir, "Sp_with SD.txt", "\tValence\t(sd)\t\tArousal\t(sd)\t\nSp001.jpg\t24\t(x.y)\t\t60\t(22)\t\n")
    result = ingest("gaped", source_dir)
    quarantine = {(r["file"], r["line"]): r["reason"] for r in result.quarantine.iter_rows(named=True)}
    assert "valence -3.0 outside its scale 0.0..100.0" in quarantine[("Sn.txt", 3)]
    assert "valence value 'abc' is not a number" in quarantine[("Sn.txt", 4)]
    assert quarantine[("Sp_with SD.txt", 2)] == "valence standard deviation '(x.y)' is not a number"
    assert len(quarantine) == 3
    kept = result.annotations
    assert value(kept, "Sn/Sn002", "arousal")["value"] == 49.9  # the other rating of the row flows on
    assert value(kept, "Sp/Sp001", "arousal")["sd"] == 22.0
    assert result.counts == {"rows_read": 8, "rows_kept": 5, "rows_quarantined": 3}
