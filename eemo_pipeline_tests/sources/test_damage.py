"""Damaged, emptied and conflicting annotation files, for every source's sample (issue #14).

The truncation sweep's counts per source are printed (``pytest -s``) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources import SOURCES, SourceFormatError, source_module
from eemo_pipeline.sources.base import open_quote
from eemo_pipeline.sources.validate import rebuild_shrink
from eemo_pipeline_tests.sources.truncation import annotation_files, facts, sweep


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_a_file_cut_at_any_offset_keeps_no_shortened_value(source: str, tmp_path: Path) -> None:
    counts = sweep(source, tmp_path / source)
    print(
        f"\n{source}: {counts.cuts} cuts, {counts.format_errors} format errors, {counts.quarantined_rows} rows "
        f"quarantined, {counts.kept_but_wrong} kept but wrong, {counts.other_exceptions} other exceptions"
    )
    assert counts.examples == []
    assert counts.kept_but_wrong == 0 and counts.other_exceptions == 0
    assert counts.cuts == counts.planned > 0 and counts.format_errors > 0


@pytest.mark.slow
def test_the_quoted_oasis_variant_cut_at_any_offset_keeps_no_shortened_value(tmp_path: Path) -> None:
    oasis = source_module("oasis")
    counts = sweep("oasis", tmp_path, write=oasis._write_quoted_sample)
    assert counts.examples == [] and counts.cuts == (tmp_path / "OASIS.csv").stat().st_size


# The header line of each sample file, damaged so that two columns read as one name after trimming.
_COLLIDING = {
    "affection": ("affection_raw_public_version_0.csv", "workerid,utterance,emotion,", "workerid,emotion ,emotion,"),
    "abstract8": ("ABSTRACT_groundTruth.csv", "'Anger','Awe'", "'Anger','Anger '"),
    "emotion6": ("ground_truth.txt", "[valence]\t[arousal]", "[valence]\t[valence ]"),
    "findingemo": ("annotations_single.ann", "valence,arousal", "valence, valence"),
    "gaped": ("A.txt", "Valence\tArousal", "Valence\tValence "),
    "oasis": ("OASIS.csv", "Valence_mean,Valence_SD", "Valence_mean,Valence_mean "),
}


def _replace_once(path: Path, old: str, new: str) -> None:
    data = path.read_bytes().decode("utf-8")
    assert data.count(old) >= 1, (path, old)
    path.write_bytes(data.replace(old, new, 1).encode("utf-8"))


@pytest.mark.parametrize("source", sorted(_COLLIDING))
def test_headers_that_collide_after_trimming_name_the_file_and_both_columns(source: str, tmp_path: Path) -> None:
    module = source_module(source)
    module.write_sample(tmp_path)
    file, old, new = _COLLIDING[source]
    _replace_once(tmp_path / file, old, new)
    with pytest.raises(SourceFormatError) as error:
        module.read(tmp_path)
    message = str(error.value)
    assert file in message and error.value.line == 1
    assert "both read as" in message and error.value.column is not None, message


def _first_line_only(path: Path) -> None:
    data = path.read_bytes()
    end = min(i for i in (data.find(b"\n"), data.find(b"\r")) if i != -1)
    path.write_bytes(data[: end + 1])


@pytest.mark.parametrize("source", [s for s in SOURCES if s != "emotic"])
def test_a_header_only_file_is_a_format_error_not_an_empty_partition(source: str, tmp_path: Path) -> None:
    module = source_module(source)
    module.write_sample(tmp_path)
    file = annotation_files(source, tmp_path)[0]
    _first_line_only(tmp_path / file)
    with pytest.raises(SourceFormatError, match=rf"{file}: no data rows") as error:
        module.read(tmp_path)
    assert error.value.line == 2


def test_an_emotic_mat_without_any_image_is_a_format_error(tmp_path: Path) -> None:
    emotic = source_module("emotic")
    emotic.write_sample(tmp_path)
    emotic._write_mat(tmp_path / emotic.ANNOTATIONS, {"train": [], "val": [], "test": []})
    with pytest.raises(SourceFormatError, match=r"Annotations.mat: no data rows"):
        emotic.read(tmp_path)
    emotic._write_csv(tmp_path / "annot_arrs_train.csv", [])
    (tmp_path / emotic.ANNOTATIONS).unlink()
    with pytest.raises(SourceFormatError, match=r"annot_arrs_train.csv: no data rows"):
        emotic.read(tmp_path)


def test_a_truncated_mat_file_is_a_format_error(tmp_path: Path) -> None:
    emotic = source_module("emotic")
    emotic.write_sample(tmp_path)
    path = tmp_path / emotic.ANNOTATIONS
    data = path.read_bytes()
    for offset in (0, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:offset])
        with pytest.raises(SourceFormatError, match="Annotations.mat"):
            emotic.read(tmp_path)


# (file, first data line's text to change, changed text): the repeat of that line with another value.
_REPEATED = {
    "affection": ("affection_raw_public_version_0.csv", "contentment", "awe"),
    "abstract8": ("ABSTRACT_groundTruth.csv", ",1,6", ",1,5"),
    "emotion6": ("ground_truth.txt", "\t3.1\t", "\t3.4\t"),
    "findingemo": ("annotations_single.ann", ",Trust,", ",Joy,"),
    "gaped": ("A.txt", "18.43", "19.00"),
    "oasis": ("OASIS.csv", "4.686275", "4.9"),
}


def _repeat_first_row(path: Path, old: str | None = None, new: str | None = None) -> int:
    """Append the first data line again (changed when ``old`` is given); returns its new line number."""
    lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
    repeat = lines[1] if old is None else lines[1].replace(old, new, 1)
    assert old is None or repeat != lines[1]
    path.write_bytes("".join([*lines, repeat]).encode("utf-8"))
    return len(lines) + 1


@pytest.mark.parametrize("source", sorted(_REPEATED))
def test_a_repeat_with_other_values_is_quarantined_on_both_lines(source: str, tmp_path: Path) -> None:
    module = source_module(source)
    module.write_sample(tmp_path)
    full = module.read(tmp_path).rows
    # The repeated record: its image (and annotator, where each annotator gives one annotation per image).
    first = full.filter(pl.col("source_line") == 2).row(0, named=True)
    same = pl.col("image_id") == first["image_id"]
    if "annotator" in full.columns:
        same &= pl.col("annotator") == first["annotator"]
    file, old, new = _REPEATED[source]
    line = _repeat_first_row(tmp_path / file, old, new)
    read = module.read(tmp_path)
    assert read.rows.filter(same).is_empty()  # neither line is kept, nothing is averaged or summed
    assert facts(read.rows) == facts(full.filter(~same))
    repeats = read.rejects.filter(pl.col("reason").str.contains("with other values"))
    assert sorted(repeats["line"]) == [2, line]
    assert all(f"appears on lines 2, {line} with other values" in reason for reason in repeats["reason"])


@pytest.mark.parametrize("source", sorted(_REPEATED))
def test_an_exact_repeat_is_dropped_with_a_quarantine_record(source: str, tmp_path: Path) -> None:
    module = source_module(source)
    module.write_sample(tmp_path)
    full = module.read(tmp_path)
    line = _repeat_first_row(tmp_path / _REPEATED[source][0])
    read = module.read(tmp_path)
    assert read.rows.height == full.rows.height and facts(read.rows) == facts(full.rows)
    dropped = read.rejects.filter(pl.col("reason").str.starts_with("exact repeat of line 2"))
    assert dropped["line"].to_list() == [line]
    assert json.loads(dropped["record"][0])


def test_abstract8_votes_above_the_documented_annotators_are_quarantined(tmp_path: Path) -> None:
    abstract8 = source_module("abstract8")
    abstract8.write_sample(tmp_path)
    reasons = abstract8.read(tmp_path).rejects["reason"].to_list()
    assert reasons == ["Sad vote 14 outside 0..13"]


def test_a_record_with_more_fields_than_the_header_is_located(tmp_path: Path) -> None:
    emotion6 = source_module("emotion6")
    emotion6.write_sample(tmp_path)
    path = tmp_path / "ground_truth.txt"
    lines = path.read_text().splitlines()
    lines[3] += "\t0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceFormatError, match="ground_truth.txt: not a readable delimited text file") as error:
        emotion6.read(tmp_path)
    assert (error.value.line, error.value.column) == (4, 11)


def test_an_unclosed_quote_is_located() -> None:
    assert open_quote('a,b\n1,"x""y"\n2,"cut') == (3, 3)
    assert open_quote('a,b\n1,"x"\n') is None


@pytest.mark.parametrize("source", ["affection", "findingemo", "abstract8"])
def test_a_cut_inside_a_quoted_field_names_file_line_and_column(source: str, tmp_path: Path) -> None:
    module = source_module(source)
    module.write_sample(tmp_path)
    path = tmp_path / annotation_files(source, tmp_path)[0]
    data = path.read_bytes()
    quote = b"'" if source == "abstract8" else b'"'
    opening = data.rfind(quote, 0, data.rfind(quote))  # the last quoted field's opening quote
    path.write_bytes(data[: opening + 2])
    with pytest.raises(SourceFormatError, match="never closed") as error:
        module.read(tmp_path)
    line = data[:opening].count(b"\n") + 1
    assert (error.value.line, error.value.column) == (line, opening - data.rfind(b"\n", 0, opening))


def test_rebuild_shrink_holds_back_a_build_under_the_share_of_the_last_good_one() -> None:
    assert rebuild_shrink(89, None, 0.5) is None  # no earlier good build
    assert rebuild_shrink(45, 89, 0.5) is None
    assert rebuild_shrink(0, 0, 0.5) is None
    problem = rebuild_shrink(0, 89, 0.5)
    assert problem is not None and problem.startswith("kept 0 rows where the last good build kept 89 (under 50%")
    assert rebuild_shrink(80, 89, 0.95) is not None
