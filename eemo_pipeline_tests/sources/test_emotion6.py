from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources import SourceFormatError, emotion6
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.validate import contract_violations

HEADER = "[image_filename]\t[valence]\t[arousal]\t[prob. anger]\t[prob. disgust]\t[prob. fear]\t[prob. joy]\t[prob. sadness]\t[prob. surprise]\t[prob. neutral]\n"


def write_truth(root: Path, *rows: str) -> None:
    (root / "ground_truth.txt").write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")


def test_sample_reads_with_quirks(source_dir: Path) -> None:
    emotion6.write_sample(source_dir)
    result = ingest("emotion6", source_dir)
    assert contract_violations(result.annotations, "emotion6") == []
    # 10 rows x (2 ratings + 7 probabilities); the out-of-range valence is the only quarantined fact.
    assert result.counts == {"rows_read": 90, "rows_kept": 89, "rows_quarantined": 1}
    assert result.quarantine.row(0, named=True)["line"] == 5
    assert "valence 9.6 outside its scale" in result.quarantine["reason"][0]
    sums = result.annotations.filter(pl.col("measure") == "label_prob").group_by("image_id").agg(pl.col("value").sum())
    assert sums["value"].to_list() == pytest.approx([1.0] * 10, abs=1e-12)


def test_bracketed_header_and_renormalisation(source_dir: Path) -> None:
    write_truth(source_dir, "joy/7.jpg\t7.5\t4\t0\t0\t0\t0.600001\t0\t0.2\t0.200001")
    rows = ingest("emotion6", source_dir).annotations
    joy = rows.filter((pl.col("measure") == "label_prob") & (pl.col("label") == "joy")).row(0, named=True)
    assert joy["value"] == pytest.approx(0.600001 / 1.000002, abs=1e-12)
    assert joy["image_path"] == "images/joy/7.jpg" and joy["source_line"] == 2
    valence = rows.filter(pl.col("measure") == "valence").row(0, named=True)
    assert (valence["value"], valence["scale_min"], valence["scale_max"]) == (7.5, 1.0, 9.0)


def test_bad_rows_are_quarantined_and_good_rows_flow(source_dir: Path) -> None:
    write_truth(
        source_dir,
        "anger/1.jpg\t3\t6\t1\t0\t0\t0\t0\t0\t0",
        "anger/2.jpg\tabc\t6\t1\t0\t0\t0\t0\t0\t0",
        "anger/3.jpg\t3\t6\t0.5\t0\t0\t0\t0\t0\t0",
        "../../etc/passwd\t3\t6\t1\t0\t0\t0\t0\t0\t0",
        "anger/5.jpg\t3\t6",
    )
    result = ingest("emotion6", source_dir)
    reasons = dict(zip(result.quarantine["line"], result.quarantine["reason"]))
    assert "valence value 'abc' is not a number" in reasons[3]
    assert "sum to 0.5" in reasons[4]
    assert "escapes the source root" in reasons[5]
    assert "missing value" in reasons[6]
    kept_images = set(result.annotations["image_id"])
    assert "anger/1.jpg" in kept_images and "../../etc/passwd" not in kept_images
    assert json.loads(result.quarantine.filter(pl.col("line") == 3)["record"][0])["image_id"] == "anger/2.jpg"
    assert result.counts["rows_read"] == result.counts["rows_kept"] + result.counts["rows_quarantined"]


def test_missing_column_names_the_file(source_dir: Path) -> None:
    (source_dir / "ground_truth.txt").write_text("[image_filename]\t[valence]\nanger/1.jpg\t3\n")
    with pytest.raises(SourceFormatError, match=r"ground_truth.txt: missing columns \['arousal'"):
        emotion6.read(source_dir)


def test_missing_file_names_what_was_expected(source_dir: Path) -> None:
    with pytest.raises(SourceFormatError, match="ground_truth.txt: file not found"):
        emotion6.read(source_dir)
