"""How files end and how their lines end (issue #19 and the source-reader probes after it).

A row is quarantined as cut only on evidence: the version read before (a strict prefix of it was cut), the
release's record count declared in sources.yaml when the file claims to be the release (at least
``release_share`` of its records), GAPED's twin file or an unclosed "(sd)" cell; without any, the row is kept
and the read says it could not be checked. NUL padding at the end is refused with its byte offset. Every text
reader reads LF, CRLF and CR-only files alike, and refuses UTF-16 and UTF-32 naming the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.contracts import source_facts
from eemo_pipeline.sources import SOURCES, SourceFormatError, gaped, oasis, source_module
from eemo_pipeline.sources.base import CUT_REASON
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.reading import read_source, remember_files
from eemo_pipeline_tests.sources.truncation import facts


def _without_final_line_breaks(root: Path, files: list[str]) -> list[str]:
    """Strip the final line break of every text file among ``files``; returns the files changed."""
    changed = []
    for relative in files:
        data = (root / relative).read_bytes()
        if data.endswith((b"\n", b"\r")) and b"\0" not in data:
            (root / relative).write_bytes(data.rstrip(b"\r\n"))
            changed.append(relative)
    return changed


@pytest.mark.parametrize("source", SOURCES)
def test_a_file_without_its_final_newline_and_no_evidence_keeps_every_row(source: str, tmp_path: Path) -> None:
    source_module(source).write_sample(tmp_path)
    whole = read_source(source, tmp_path)
    changed = _without_final_line_breaks(tmp_path, list(whole.files))
    read = read_source(source, tmp_path, release={})  # no release count, no earlier version, no twin
    assert facts(read.rows) == facts(whole.rows) and read.rows.height == whole.rows.height
    assert CUT_REASON not in read.rejects["reason"].to_list()
    assert set(read.unchecked) <= set(changed) and bool(read.unchecked) == bool(changed)  # JSON has no records
    assert all("kept, unchecked" in note for note in read.notes)


@pytest.mark.parametrize("source", SOURCES)
def test_the_sample_without_its_final_newline_keeps_every_row_as_a_subset_of_the_release(
    source: str, tmp_path: Path
) -> None:
    """Before: Affection, Emotion6, FindingEmo, OASIS and Abstract-8 quarantined their complete last record as
    "cut short" because the sample holds fewer records than the release declares."""
    source_module(source).write_sample(tmp_path)
    whole = ingest(source, tmp_path)
    changed = _without_final_line_breaks(tmp_path, list(whole.files))
    result = ingest(source, tmp_path)  # the declared release counts apply
    assert facts(result.annotations) == facts(whole.annotations) and result.counts == whole.counts
    assert CUT_REASON not in result.quarantine["reason"].to_list()
    assert set(result.unchecked) == set(changed) - {"dataset_urls_exploded.json"}
    release = source_facts(source).release
    for file in release:
        if file in changed:
            assert any(note.startswith(f"{file}: ends without a line break and holds ") and "a subset" in note
                       for note in result.notes), result.notes


def _oasis_rows(count: int) -> list[str]:
    return [f"{n},Theme {n},Object,Pixabay,4.5,1.1,101,3.25,1.5,102" for n in range(1, count + 1)]


def test_the_release_count_is_evidence_only_for_a_file_that_claims_to_be_the_release(tmp_path: Path) -> None:
    """90% of OASIS's 900 records (release_share) and the last one cut: cut; one record fewer: a subset, kept."""
    header = ",Theme,Category,Source,Valence_mean,Valence_SD,Valence_N,Arousal_mean,Arousal_SD,Arousal_N"
    path = tmp_path / oasis.CSV
    path.write_text("\n".join([header, *_oasis_rows(810)])[:-1], encoding="utf-8")
    read = read_source("oasis", tmp_path)
    assert read.rejects.select("line", "reason").rows() == [(811, CUT_REASON)] and read.unchecked == ()
    path.write_text("\n".join([header, *_oasis_rows(809)])[:-1], encoding="utf-8")
    read = read_source("oasis", tmp_path)
    assert read.rejects.is_empty() and read.rows["image_id"].n_unique() == 809 and read.unchecked == ("OASIS.csv",)
    assert read.notes == ("OASIS.csv: ends without a line break and holds 809 records, under 90% of the release's "
                          "900 (release_share): a subset, not the release, so the count is no evidence: its last "
                          "record is kept, unchecked",)


def _text_files(source: str, root: Path) -> list[str]:
    files = [f for f in read_source(source, root).files if not f.endswith(".mat")]
    if not files:
        pytest.skip(f"{source}: its sample has no text annotation file")
    return files


@pytest.mark.parametrize("source", SOURCES)
def test_nul_padding_at_the_end_of_a_file_is_refused_naming_its_byte_offset(source: str, tmp_path: Path) -> None:
    """Before: OASIS with 100 trailing NULs quarantined its complete last record as cut, and the NUL line vanished."""
    source_module(source).write_sample(tmp_path)
    for relative in _text_files(source, tmp_path):
        path = tmp_path / relative
        data = path.read_bytes()
        for padding in (b"\0" * 100, b"\0" * 50 + b"\n" + b"\0" * 50):
            path.write_bytes(data + padding)
            with pytest.raises(SourceFormatError, match=rf"ends in NUL padding: 100 NUL bytes from byte offset "
                               rf"{len(data):,} \(line \d+\) to the end of the file") as error:
                read_source(source, tmp_path)
            assert error.value.file == str(path) and error.value.line is not None
        path.write_bytes(data)


def _line_ends(data: bytes, end: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", end)


@pytest.mark.parametrize("source", SOURCES)
def test_lf_crlf_and_cr_only_files_read_alike(source: str, tmp_path: Path) -> None:
    """Before: Affection, Abstract-8, Emotion6 and FindingEmo refused CR-only files with "missing columns" (Emotion6
    quoting the whole file as its header), and Affection kept "\\r\\n" inside quoted utterances."""
    source_module(source).write_sample(tmp_path)
    files = {relative: (tmp_path / relative).read_bytes() for relative in _text_files(source, tmp_path)}
    read = {}
    for end in (b"\n", b"\r\n", b"\r"):
        for relative, data in files.items():
            (tmp_path / relative).write_bytes(_line_ends(data, end))
        result = ingest(source, tmp_path)
        read[end] = (facts(result.annotations), result.quarantine.select("file", "line", "reason").sort(pl.all()).rows())
    assert read[b"\n"] == read[b"\r\n"] == read[b"\r"]
    assert not any("\r" in (text or "") for *_, text in read[b"\r\n"][0])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("source", SOURCES)
def test_a_utf16_or_utf32_file_is_refused_naming_the_file(source: str, encoding: str, tmp_path: Path) -> None:
    """Before: "truncated download?" or "missing columns"."""
    source_module(source).write_sample(tmp_path)
    for relative in _text_files(source, tmp_path):
        path = tmp_path / relative
        data = path.read_bytes()
        path.write_bytes(data.decode("utf-8").encode(encoding))
        wide = "UTF-32" if encoding == "utf-32" else "UTF-16"
        with pytest.raises(SourceFormatError, match=rf"{wide} encoded .*: convert it to UTF-8") as error:
            read_source(source, tmp_path)
        assert error.value.file == str(path)
        path.write_bytes(data)


def test_a_format_error_quotes_a_capped_excerpt_of_a_long_header(tmp_path: Path) -> None:
    source_module("emotion6").write_sample(tmp_path)
    path = tmp_path / "ground_truth.txt"
    path.write_text("\t".join(f"[column {n}]" for n in range(20_000)) + "\n" + "x\t" * 19_999 + "x\n")
    with pytest.raises(SourceFormatError, match="missing columns") as error:
        read_source("emotion6", tmp_path)
    assert len(str(error.value)) < 1500 and "more characters]" in str(error.value)


def test_the_release_record_count_decides(tmp_path: Path) -> None:
    """OASIS declares 900 records: a file of 900 without its final newline is whole, one of 899 was cut."""
    assert source_facts("oasis").release == {"OASIS.csv": 900}
    header = ",Theme,Category,Source,Valence_mean,Valence_SD,Valence_N,Arousal_mean,Arousal_SD,Arousal_N"
    rows = [f"{n},Theme {n},Object,Pixabay,4.5,1.1,101,3.25,1.5,102" for n in range(1, 901)]
    path = tmp_path / oasis.CSV
    path.write_text("\n".join([header, *rows]), encoding="utf-8")
    read = read_source("oasis", tmp_path)
    assert read.rows["image_id"].n_unique() == 900 and read.rejects.is_empty() and read.unchecked == ()
    assert read.notes == ("OASIS.csv: ends without a line break and holds the release's 900 records: its last "
                          "record is kept",)
    path.write_text("\n".join([header, *rows[:899]])[:-1], encoding="utf-8")  # 899 records, '10' of '102'
    read = read_source("oasis", tmp_path)
    assert read.rows["image_id"].n_unique() == 898
    assert read.rejects.select("line", "reason").rows() == [(900, CUT_REASON)]
    assert read.notes == ("OASIS.csv: holds 899 of the release's 900 records and ends without a line break: its "
                          "last record is quarantined as cut short",)


def test_a_conflicting_repeat_on_the_last_line_is_seen(tmp_path: Path) -> None:
    """OASIS's 900 records, the last a repeat of line 2 with another mean, and no final newline: both lines are
    quarantined as a conflict (before, the last line was dropped as cut and line 2 kept)."""
    header = '"","Theme","Category","Source","Valence_mean","Valence_SD","Valence_N","Arousal_mean","Arousal_SD","Arousal_N"'
    rows = [f'"{n}","Theme {n}","Object","Pixabay","4.5","1.1","101","3.25","1.5","102"' for n in range(1, 900)]
    rows.append(rows[0].replace('"4.5"', '"5.5"'))
    (tmp_path / oasis.CSV).write_text("\n".join([header, *rows]), encoding="utf-8")
    read = read_source("oasis", tmp_path)
    conflict = read.rejects.filter(pl.col("reason").str.contains("with other values"))
    assert sorted(set(conflict["line"])) == [2, 901]
    assert "Theme 1" not in set(read.rows["image_id"])


def test_the_version_read_before_tells_a_cut_from_a_missing_newline(tmp_path: Path) -> None:
    root = tmp_path / "emotion6"
    source_module("emotion6").write_sample(root)
    last_read = tmp_path / "last_read"
    whole = read_source("emotion6", root, last_read, release={})
    remember_files(last_read, root, whole.files)
    path = root / "ground_truth.txt"
    data = path.read_bytes()

    path.write_bytes(data[:-1])  # only the final newline lost: the last record is whole
    read = read_source("emotion6", root, last_read, release={})
    assert facts(read.rows) == facts(whole.rows) and read.unchecked == ()
    assert "the last record is whole and kept" in read.notes[0]

    path.write_bytes(data[:-4])  # cut inside the last value: quarantined, not kept shortened
    read = read_source("emotion6", root, last_read, release={})
    assert read.rejects.filter(pl.col("reason") == CUT_REASON)["line"].to_list() == [11]
    assert facts(read.rows) < facts(whole.rows)
    assert "inside its last record: that record is quarantined as cut short" in read.notes[0]

    remember_files(last_read, root, read.files)  # a cut version never replaces the whole one as evidence
    read = read_source("emotion6", root, last_read, release={})
    assert read.rejects.filter(pl.col("reason") == CUT_REASON).height == 1

    path.write_bytes(data.replace(b"3.1\t6.2", b"3.3\t6.2")[:-4])  # another version: no longer evidence
    read = read_source("emotion6", root, last_read, release={})
    assert CUT_REASON not in read.rejects["reason"].to_list() and read.unchecked == ("ground_truth.txt",)


def test_gaped_compares_a_file_without_its_final_newline_with_its_twin(tmp_path: Path) -> None:
    gaped.write_sample(tmp_path)
    (tmp_path / "A_with SD.txt").write_bytes(gaped._with_sd_text("A").encode("utf-8"))
    path = tmp_path / "A.txt"
    data = path.read_bytes()
    assert data.endswith(b"\t15.88\n") is False and data.endswith(b"7.94\n")
    path.write_bytes(data.rstrip(b"\n"))  # whole: the twin gives the same means
    read = read_source("gaped", tmp_path)
    assert read.rows.filter(pl.col("image_id") == "A/A002").height == 4 and read.unchecked == ()
    assert read.notes == ("A.txt: ends without a line break; its last record agrees with the twin file: kept",)
    assert "A_with SD.txt" in read.files  # the evidence was read, and is part of what the build read
    path.write_bytes(data.rstrip(b"\n")[:-1])  # 7.94 cut to 7.9: the twin disagrees
    read = read_source("gaped", tmp_path)
    assert read.rows.filter(pl.col("image_id") == "A/A002").is_empty()
    assert read.rejects.filter(pl.col("file") == "A.txt").select("line", "reason").rows() == [(3, CUT_REASON)]
    (tmp_path / "A_with SD.txt").unlink()  # no twin, nothing else: kept, and said so
    read = read_source("gaped", tmp_path)
    assert read.rows.filter(pl.col("image_id") == "A/A002").height == 4 and read.unchecked == ("A.txt",)


def test_the_real_findingemo_file_without_its_final_newline_keeps_all_25869_images(tmp_path: Path) -> None:
    package = pytest.importorskip("findingemo_light")
    shutil.copyfile(Path(package.__file__).parent / "data" / "annotations_single.ann", tmp_path / "annotations_single.ann")
    path = tmp_path / "annotations_single.ann"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    result = ingest("findingemo", tmp_path)
    assert result.annotations["image_id"].n_unique() == 25_869 and result.quarantine.is_empty()
    assert result.unchecked == () and "holds the release's 25,869 records" in result.notes[0]
