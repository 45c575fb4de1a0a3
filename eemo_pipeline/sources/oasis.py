"""OASIS: ``OASIS.csv`` (900 images, valence and arousal on 1-7) and ``images/<Theme>.jpg``.

Columns ``"",Theme,Category,Source,Valence_mean,Valence_SD,Valence_N,Arousal_mean,Arousal_SD,Arousal_N``.
Two variants are in circulation: fully double-quoted with LF line ends and category ``Scene``, and
unquoted with CR-only (old Mac) line ends and category ``Scenery``. Line ends are normalised before
parsing and ``Scenery`` is read as ``Scene`` so both variants give identical rows. Some Themes carry
trailing spaces; the image file name uses the stripped Theme. A Theme on two lines is one image: an
exact repeat is dropped, a repeat with other values quarantines both lines (never averaged). A row with a
control character in a cell is quarantined whole.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eemo_pipeline.sources.base import (
    CUT_REASON,
    SourceRead,
    clean_header,
    control_characters,
    cut_last_record,
    find_image,
    line_numbers,
    read_csv_text,
    read_text,
    rejects,
    repeated_records,
    require_columns,
    require_file,
    require_rows,
)
from eemo_pipeline.sources.sample_images import write_image

CSV = "OASIS.csv"
MEASURES: dict[str, str] = {"valence": "Valence", "arousal": "Arousal"}
_NUMBERS = [f"{prefix}_{stat}" for prefix in MEASURES.values() for stat in ("mean", "SD", "N")]
_COLUMNS = ["Theme", "Category", "Source", *_NUMBERS]
_CATEGORY_ALIASES = {"Scenery": "Scene"}


def _cut_last_line(text: str) -> tuple[str, tuple[int, str] | None]:
    """Split off a last line that was cut inside a quoted cell (no final newline, odd number of quotes)."""
    if text.endswith("\n") or text.count('"') % 2 == 0:
        return text, None
    head, _, last = text.rpartition("\n")
    if last.count('"') % 2 == 0:
        return text, None  # the unbalanced quote is elsewhere: let the parser name the file
    return head + "\n", (head.count("\n") + 2, last)


def read(root: Path) -> SourceRead:
    path = require_file(root, CSV, f"the OASIS ratings CSV with columns {['', *_COLUMNS]}")
    text, cut = _cut_last_line(read_text(path))
    table = read_csv_text(path, text=text)
    table = clean_header(table, path, str.strip)
    require_columns(table, _COLUMNS, path)
    records: list[dict] = []
    if cut is not None:
        line, raw = cut
        reason = "incomplete last row: cut inside a quoted cell"
        records.append({"file": CSV, "line": line, "reason": reason, "record": {"text": raw}})

    cells = [pl.col(c).str.strip_chars() for c in _COLUMNS]
    table = table.with_columns(
        line_numbers(table, first_line=2).alias("source_line"), control_characters(table, table.columns).alias("_control"), *cells
    )
    # Blank lines (polars keeps them as all-null rows) carry nothing.
    table = table.filter(~pl.all_horizontal(pl.col(_COLUMNS).is_null() | (pl.col(_COLUMNS) == "")))
    if cut is None:
        require_rows(table, path)
    # A last row without its final newline may end inside a number (N 101 cut to 10): not kept.
    table = table.with_columns((cut_last_record(table, path) if cut is None else pl.lit(False)).alias("_cut"))
    records += [
        {"file": CSV, "line": r["source_line"], "reason": r["_control"], "record": {c: r[c] for c in _COLUMNS}}
        for r in table.filter(pl.col("_control").is_not_null()).iter_rows(named=True)
    ]
    table = table.filter(pl.col("_control").is_null())
    required = ["Theme", *_NUMBERS]
    empty = [pl.when(pl.col(c).is_null() | (pl.col(c) == "")).then(pl.lit(c)) for c in required]
    table = table.with_columns(pl.concat_str(empty, separator=", ", ignore_nulls=True).alias("_empty"))
    incomplete = table.filter(pl.col("_empty") != "")
    records += [
        {
            "file": CSV,
            "line": r["source_line"],
            "reason": f"incomplete row: no {r['_empty']} (truncated?)",
            "record": {c: r[c] for c in _COLUMNS},
        }
        for r in incomplete.iter_rows(named=True)
    ]
    table = table.filter(pl.col("_empty") == "")
    records += [
        {"file": CSV, "line": r["source_line"], "reason": CUT_REASON, "record": {c: r[c] for c in _COLUMNS}}
        for r in table.filter(pl.col("_cut")).iter_rows(named=True)
    ]
    table, repeats = repeated_records(table.filter(~pl.col("_cut")), ["Theme"], _COLUMNS[1:], CSV, _COLUMNS)
    records += repeats
    table = table.with_columns(
        pl.col("Theme").alias("image_id"),
        ("images/" + pl.col("Theme") + ".jpg").alias("image_path"),
        pl.struct(
            category=pl.col("Category").replace(_CATEGORY_ALIASES),
            source=pl.col("Source"),
        ).struct.json_encode().alias("attributes"),
    )
    long = pl.concat(
        [
            table.select(
                "image_id",
                "image_path",
                "source_line",
                "attributes",
                pl.lit(measure).alias("measure"),
                pl.col(f"{prefix}_mean").alias("value_text"),
                pl.col(f"{prefix}_SD").alias("sd_text"),
                pl.col(f"{prefix}_N").alias("n_text"),
                pl.lit(f"{prefix}_SD").alias("_sd_column"),
                pl.lit(f"{prefix}_N").alias("_n_column"),
            )
            for measure, prefix in MEASURES.items()
        ],
        how="vertical",
    ).sort("source_line", maintain_order=True)

    n = pl.col("n_text").cast(pl.Float64, strict=False)
    long = long.with_columns(
        pl.col("sd_text").cast(pl.Float64, strict=False).alias("sd"),
        pl.when(n == n.round()).then(n).cast(pl.Int32, strict=False).alias("n_raters"),
    )
    # A standard deviation or rater count that is not a number cannot be kept silently as null.
    problem = pl.concat_str(
        [
            pl.when(pl.col("sd").is_null()).then(
                pl.format("{} '{}' is not a number", pl.col("_sd_column"), pl.col("sd_text"))
            ),
            pl.when(pl.col("n_raters").is_null()).then(
                pl.format("{} '{}' is not a whole number", pl.col("_n_column"), pl.col("n_text"))
            ),
        ],
        separator="; ",
        ignore_nulls=True,
    )
    long = long.with_columns(problem.alias("_problem"))
    broken = long.filter(pl.col("_problem") != "")
    records += [
        {
            "file": CSV,
            "line": r["source_line"],
            "reason": r["_problem"],
            "record": {k: r[k] for k in ("image_id", "measure", "value_text", "sd_text", "n_text")},
        }
        for r in broken.iter_rows(named=True)
    ]
    rows = long.filter(pl.col("_problem") == "")
    found = {p: find_image(root, p) or p for p in rows["image_path"].unique().to_list()}
    rows = rows.with_columns(
        pl.col("image_path").replace_strict(found, return_dtype=pl.String),
        pl.lit(CSV).alias("source_file"),
    ).drop("sd_text", "n_text", "_sd_column", "_n_column", "_problem")
    return SourceRead(rows=rows, rejects=rejects(sorted(records, key=lambda r: r["line"])))


# ---------------------------------------------------------------------------------------------------
# Sample: eight rows with the native quirks.

# (Theme as shipped, Category in the quoted variant, Source, Valence mean/SD/N, Arousal mean/SD/N);
# "Lake 2  " carries trailing spaces and Fire 9's arousal of 7.31 is beyond the 1-7 scale.
_SAMPLE_ROWS: list[tuple[str, str, str, str, str, str, str, str, str]] = [
    ("Acorns 1", "Object", "Pixabay", "4.686275", "0.9101821", "102", "2.346535", "1.5301534", "101"),
    ("Baby 4", "Person", "Pixabay", "6.087379", "0.9992506", "103", "3.861386", "1.9170442", "101"),
    ("Cat 2", "Animal", "Flickr", "5.623762", "1.1287421", "101", "3.211538", "1.7762214", "104"),
    ("Lake 2  ", "Scene", "Pixabay", "5.872549", "1.0218336", "102", "2.590000", "1.6645232", "100"),
    ("Fire 9", "Scene", "Wikimedia", "2.970297", "1.3527048", "101", "7.310000", "1.2244894", "100"),
    ("Dog 6", "Animal", "Pixabay", "5.950980", "1.0584793", "102", "3.643564", "1.8425331", "101"),
    ("Garbage dump 3", "Scene", "Flickr", "1.940594", "0.9773508", "101", "4.019802", "1.9838316", "101"),
    ("Wedding 3", "Person", "Pixabay", "6.176471", "0.9471232", "102", "3.960396", "1.7651483", "101"),
]


def _csv_text(quoted: bool) -> str:
    header = ["", *_COLUMNS]
    lines = []
    rows = [
        [str(number), theme, category if quoted else {"Scene": "Scenery"}.get(category, category), *rest]
        for number, (theme, category, *rest) in enumerate(_SAMPLE_ROWS, 1)
    ]
    for cells in [header, *rows]:
        lines.append(",".join(f'"{c}"' for c in cells) if quoted else ",".join(cells))
    newline = "\n" if quoted else "\r"
    return newline.join(lines) + newline


def _write_images(root: Path) -> None:
    for offset, (theme, *_) in enumerate(_SAMPLE_ROWS):
        write_image(root / "images" / f"{theme.strip()}.jpg", 30 + 3 * offset)


def write_sample(root: Path) -> None:
    """A small OASIS in the unquoted, CR-only variant with ``Scenery``, a Theme with trailing spaces and
    one arousal of 7.31 (quarantined)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / CSV).write_bytes(_csv_text(quoted=False).encode("utf-8"))
    _write_images(root)


def _write_quoted_sample(root: Path) -> None:
    """The same rows in the fully double-quoted LF variant with ``Scene`` (for tests)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / CSV).write_bytes(_csv_text(quoted=True).encode("utf-8"))
    _write_images(root)
