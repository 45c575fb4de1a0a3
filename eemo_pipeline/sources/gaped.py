"""GAPED: one TAB-separated rating file per category and images ``<cat>/<id>.bmp``.

Rating files ``A.txt H.txt N.txt P.txt Sn.txt Sp.txt`` start with a header whose first cell is empty
(the image name column) followed by ``Valence, Arousal`` and, for A and H, ``Internal norms, External
norms``; all ratings are on 0-100. The files name the images ``A001.jpg`` although the images ship as
``A/A001.bmp``, so images are matched by stem. The ``"<cat>_with SD.txt"`` variant puts an ``(sd)`` cell
after each mean, adds empty spacer columns and ends with lines of tabs only; it is read (with its
standard deviations) for a category whose plain file is absent. Files may have CRLF line ends and the
shipped readme is cp1252, so text is decoded as UTF-8 with a cp1252 fallback. An image named twice in a
file (``A001.jpg`` twice, or ``A001.jpg`` and ``A001.bmp``) keeps one row when the ratings agree and is
quarantined on both lines when they differ. A row with a control character in a cell is quarantined whole.

An ``(sd)`` cell is ``(12.30)`` or a bare number; one with unbalanced parentheses (``(18``, ``))21.8((``) is
quarantined with its rating, and on the last record of a file that ends without its line break it is
evidence that the file was cut there (the record is quarantined as cut short). A plain file cut inside its
last mean (``15.88`` to ``1``) shows nothing of the kind: its twin file is compared when present; without
one the record is kept and named unchecked (a known limit, docs/reliability.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from eemo_pipeline.sources.base import (
    CONTROL_CHARACTERS,
    CONTROL_NAMES,
    CUT_REASON,
    SourceFormatError,
    SourceRead,
    cut_last_record,
    find_image,
    optional_file,
    read_text,
    rejects,
    repeated_records,
    require_plain_header,
    require_rows,
)
from eemo_pipeline.sources.sample_images import write_image

CATEGORIES: dict[str, str] = {
    "A": "animal mistreatment",
    "H": "human rights",
    "N": "neutral",
    "P": "positive",
    "Sn": "snakes",
    "Sp": "spiders",
}
MEASURES: dict[str, str] = {
    "valence": "Valence",
    "arousal": "Arousal",
    "internal_norms": "Internal norms",
    "external_norms": "External norms",
}
_NORMS_CATEGORIES = ("A", "H")
_SD_SUFFIX = "_with SD.txt"
_STEM = re.compile(r"\.[^./\\]*$")  # the suffix of an image name: A001.jpg and A001.bmp are one image
_SD_HEADER = re.compile(r"^\(?\s*(sd|s\.d\.|std)\s*\)?$", re.IGNORECASE)
_SD_CELL = r"^\([^()]*\)$|^[^()]*$"  # "(12.30)" or a bare value: anything else has unbalanced parentheses


def rating_files(category: str) -> tuple[str, str]:
    """The plain rating file of a category and its "with SD" variant (relative to the root)."""
    return f"{category}.txt", f"{category}{_SD_SUFFIX}"


def _required(category: str) -> list[str]:
    return list(MEASURES) if category in _NORMS_CATEGORIES else ["valence", "arousal"]


def _header_layout(header: list[str], path: Path, category: str, with_sd: bool) -> list[tuple[str, int, int | None]]:
    """``(measure, mean column, sd column or None)`` for each rating column named in the header."""
    names = [re.sub(r"\s+", "_", cell.strip().lower()) for cell in header]
    layout: list[tuple[str, int, int | None]] = []
    for index, name in enumerate(names):
        if index == 0 or name not in MEASURES:
            continue
        earlier = next((mean for measure, mean, _ in layout if measure == name), None)
        if earlier is not None:
            raise SourceFormatError(
                path,
                f"columns {earlier + 1} [{header[earlier]}] and {index + 1} [{header[index]}] both read as "
                f"'{MEASURES[name]}' in the header {header}",
                line=1,
                column=index + 1,
            )
        sd: int | None = None
        if index + 1 < len(header):
            following = header[index + 1].strip()
            if _SD_HEADER.match(following) or (with_sd and following == "" and names[index + 1] not in MEASURES):
                sd = index + 1
        layout.append((name, index, sd))
    found = [measure for measure, _, _ in layout]
    missing = [MEASURES[m] for m in _required(category) if m not in found]
    if missing:
        expected = ["", *(MEASURES[m] for m in _required(category))]
        raise SourceFormatError(
            path,
            f"missing columns {missing}; expected a TAB-separated header {expected} "
            f"(first cell empty{', an (sd) cell after each mean' if with_sd else ''}), found {header}",
            line=1,
        )
    return layout


def _read_file(root: Path, relative: str, category: str, with_sd: bool) -> tuple[pl.DataFrame, list[dict]]:
    path = root / relative
    lines = read_text(path).split("\n")
    header = lines[0].split("\t")
    require_plain_header(header, path)
    layout = _header_layout(header, path, category, with_sd)
    needed = max(max(mean, sd or 0) for _, mean, sd in layout) + 1
    table = pl.DataFrame({"text": lines[1:]}, schema={"text": pl.String}).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).add(2).alias("source_line"),
        pl.col("text").str.split("\t").alias("cells"),
    )
    # Blank lines and the trailing all-tab lines of the "with SD" files carry nothing.
    table = table.filter(pl.col("text").str.replace_all(r"[\t ]", "") != "")
    require_rows(table, path)
    name = pl.col("cells").list.get(0, null_on_oob=True).str.strip_chars()
    sd_cells = [pl.col("cells").list.get(sd, null_on_oob=True).str.strip_chars() for _, _, sd in layout if sd is not None]
    table = table.with_columns(
        name.alias("name"),
        pl.col("cells").list.len().alias("fields"),
        pl.col("cells").list.slice(1).list.eval(pl.element().str.strip_chars()).alias("_values"),
        _control_characters().alias("_control"),
        pl.any_horizontal([~cell.str.contains(_SD_CELL) for cell in sd_cells] or [pl.lit(False)])
        .fill_null(False).alias("_unbalanced"),
    )
    # Complete in fields, but the file ends without a newline: the last value may be cut (15.88 -> 1). An unclosed
    # "(sd)" cell shows the cut; else the twin file ("with SD" of a plain file and back) tells.
    unclosed = "has an (sd) cell with unbalanced parentheses" if table["_unbalanced"][-1] else None
    cut = cut_last_record(table, path, twin=lambda: _agrees_with_twin(root, category, with_sd, layout, table),
                          evidence=unclosed)
    problem = (
        pl.when(pl.col("_control").is_not_null())
        .then(pl.col("_control"))
        .when(pl.col("name").is_null() | (pl.col("name") == ""))
        .then(pl.lit("row without an image name in the first column"))
        .when(pl.col("fields") < needed)
        .then(pl.format("incomplete row: {} of {} TAB-separated fields (truncated?)", pl.col("fields"), pl.lit(needed)))
        .when(cut)
        .then(pl.lit(CUT_REASON))
    )
    table = table.with_columns(problem.alias("problem"))
    bad = table.filter(pl.col("problem").is_not_null())
    records = [
        {"file": relative, "line": line, "reason": reason, "record": {"text": text}}
        for line, reason, text in bad.select("source_line", "problem", "text").iter_rows()
    ]
    stem = pl.col("name").str.replace(r"\.[^./\\]*$", "")
    good = table.filter(pl.col("problem").is_null()).with_columns(
        (pl.lit(f"{category}/") + stem).alias("image_id"),
        (pl.lit(f"{category}/") + stem + pl.lit(".bmp")).alias("image_path"),
    )
    # A001.jpg on two lines (or A001.jpg and A001.bmp) is one image: never two sets of ratings for it.
    good, repeats = repeated_records(good, ["image_id"], ["_values"], relative, ["text"])
    records += repeats
    attributes = json.dumps(
        {"category": category, "category_name": CATEGORIES[category]}, ensure_ascii=False, separators=(",", ":")
    )
    parts = [
        good.select(
            "image_id",
            "image_path",
            "source_line",
            pl.lit(measure).alias("measure"),
            pl.col("cells").list.get(mean, null_on_oob=True).alias("value_text"),
            (pl.col("cells").list.get(sd, null_on_oob=True) if sd is not None else pl.lit(None, pl.String)).alias(
                "sd_text"
            ),
        )
        for measure, mean, sd in layout
    ]
    # One row per measure, in file order (a stable sort keeps the measures in column order).
    rows = pl.concat(parts, how="vertical").sort("source_line", maintain_order=True).with_columns(
        pl.lit(relative).alias("source_file"), pl.lit(attributes).alias("attributes")
    )
    return rows, records


def _control_characters() -> pl.Expr:
    """Why a line's cells hold a control character (``base.CONTROL_CHARACTERS``), naming its TAB-separated column."""
    text = pl.col("text")
    before = text.str.extract(f"^([^{CONTROL_CHARACTERS[1:-1]}]*)")
    column = before.str.count_matches("\t") + 1
    return pl.when(text.str.contains(CONTROL_CHARACTERS)).then(pl.format(
        "column {} holds control character {} at character {} of the cell: damaged?", column,
        text.str.extract(f"({CONTROL_CHARACTERS})").replace_strict(CONTROL_NAMES, default="?"),
        before.str.replace(r"^.*\t", "").str.len_chars() + 1,
    ))


def _agrees_with_twin(
    root: Path, category: str, with_sd: bool, layout: list[tuple[str, int, int | None]], table: pl.DataFrame
) -> bool | None:
    """Whether the last record of a category's rating file gives the same means as the same image in its twin
    (the "with SD" file of a plain one, and back); None when there is no twin or it lacks the image."""
    twin = optional_file(root, rating_files(category)[0 if with_sd else 1])
    if twin is None:
        return None
    cells = table["cells"][-1].to_list()
    try:
        lines = read_text(twin).split("\n")
        twin_layout = {m: mean for m, mean, _ in _header_layout(lines[0].split("\t"), twin, category, not with_sd)}
    except SourceFormatError:
        return None  # a damaged twin is no evidence
    rows = (line.split("\t") for line in lines[1:])
    match = next((row for row in rows if _STEM.sub("", row[0].strip()) == _STEM.sub("", cells[0].strip())), None)
    if match is None:
        return None
    for measure, mean, _ in layout:
        if measure in twin_layout:
            ours = cells[mean].strip() if mean < len(cells) else ""
            theirs = match[twin_layout[measure]].strip() if twin_layout[measure] < len(match) else ""
            try:
                if float(ours) != float(theirs):
                    return False
            except ValueError:
                return False
    return True


def read(root: Path) -> SourceRead:
    chosen: list[tuple[str, str, bool]] = []
    for category in CATEGORIES:
        plain, with_sd = rating_files(category)
        # Either file replaced by a directory, a FIFO or a broken link is an error, never a category left out.
        if optional_file(root, plain) is not None:
            chosen.append((plain, category, False))
            optional_file(root, with_sd)
        elif optional_file(root, with_sd) is not None:
            chosen.append((with_sd, category, True))
    if not chosen:
        expected = [rating_files(c)[0] for c in CATEGORIES] + [f'"{rating_files(c)[1]}"' for c in CATEGORIES]
        raise SourceFormatError(root, f"no GAPED rating file found; expected some of {', '.join(expected)}")
    frames: list[pl.DataFrame] = []
    records: list[dict] = []
    for relative, category, with_sd in chosen:
        rows, bad = _read_file(root, relative, category, with_sd)
        frames.append(rows)
        records += bad
    rows = pl.concat(frames, how="vertical")

    # The files name A001.jpg; the image is A/A001.bmp, or the same stem with another suffix.
    paths = rows["image_path"].unique().to_list()
    found = {p: find_image(root, p) or p for p in paths}
    raw_sd = pl.col("sd_text").str.strip_chars()
    balanced = raw_sd.str.contains(_SD_CELL)
    sd_text = raw_sd.str.replace_all(r"[()]", "").str.strip_chars()
    rows = rows.with_columns(
        pl.col("image_path").replace_strict(found, return_dtype=pl.String),
        pl.when(balanced).then(sd_text.cast(pl.Float64, strict=False)).alias("sd"),
        balanced.fill_null(True).alias("_balanced"),
    )
    # A standard deviation that is present but not a number (or half a bracket) cannot be kept silently as null.
    bad_sd = sd_text.is_not_null() & (sd_text != "") & pl.col("sd").is_null()
    broken = rows.filter(bad_sd)
    records += [
        {
            "file": r["source_file"],
            "line": r["source_line"],
            "reason": f"{r['measure']} standard deviation '{r['sd_text'].strip()}' "
            + ("is not a number" if r["_balanced"] else "has unbalanced parentheses (cut or damaged?)"),
            "record": {k: r[k] for k in ("image_id", "measure", "value_text", "sd_text")},
        }
        for r in broken.iter_rows(named=True)
    ]
    rows = rows.drop("_balanced")
    rows = rows.filter(~bad_sd).drop("sd_text")
    return SourceRead(rows=rows, rejects=rejects(sorted(records, key=lambda r: (r["file"], r["line"]))))


# ---------------------------------------------------------------------------------------------------
# Sample: all six categories, two images each, with the native quirks.

# (category, [(image number, ratings in the category's column order, sds)])
_SAMPLE: dict[str, list[tuple[int, tuple[float, ...], tuple[float, ...]]]] = {
    "A": [
        (1, (18.43, 67.25, 12.10, 15.88), (14.2, 20.1, 11.7, 13.0)),
        (2, (9.71, 74.02, 5.36, 7.94), (8.5, 18.3, 6.2, 7.1)),
    ],
    "H": [
        (1, (22.15, 58.40, 19.62, 21.03), (16.0, 21.4, 14.9, 15.5)),
        (2, (14.80, 62.77, 10.45, 12.60), (12.3, 19.8, 9.9, 10.2)),
    ],
    "N": [(1, (53.92, 21.36), (9.8, 17.2)), (2, (50.11, 18.74), (7.4, 15.6))],
    "P": [(1, (86.47, 44.05), (11.0, 24.7)), (2, (79.30, 104.0), (13.6, 22.9))],  # arousal 104: beyond 0-100
    "Sn": [(1, (27.64, 55.19), (19.5, 23.3)), (2, (31.08, 49.90), (21.1, 24.0))],
    "Sp": [(1, (24.35, 60.72), (18.2, 22.6)), (2, (29.86, 52.41), (20.4, 21.8))],
}
_SD_SAMPLE_CATEGORY = "Sp"  # ships only as "Sp_with SD.txt"
_CRLF_SAMPLE_CATEGORY = "H"
_README = (
    "GAPED - Geneva Affective PicturE Database\n"
    "Dan-Glauser, E. S. & Scherer, K. R. (2011). Universit\u00e9 de Gen\u00e8ve \u2013 CISA.\n"
    "Ratings on 0\u2013100 scales; \u00abInternal norms\u00bb and \u00abExternal norms\u00bb for A and H only.\n"
)


def _plain_text(category: str) -> str:
    measures = _required(category)
    lines = ["\t".join(["", *(MEASURES[m] for m in measures)])]
    for number, ratings, _ in _SAMPLE[category]:
        lines.append("\t".join([f"{category}{number:03d}.jpg", *(f"{v:.2f}" for v in ratings)]))
    return "\n".join(lines) + "\n"


def _with_sd_text(category: str) -> str:
    measures = _required(category)
    header = [""]
    for m in measures:
        header += [MEASURES[m], "(sd)", ""]
    lines = ["\t".join(header)]
    for number, ratings, sds in _SAMPLE[category]:
        cells = [f"{category}{number:03d}.jpg"]
        for value, sd in zip(ratings, sds):
            cells += [f"{value:.2f}", f"({sd:.2f})", ""]
        lines.append("\t".join(cells))
    lines += ["\t" * (len(header) - 1)] * 3  # trailing all-tab lines, as shipped
    return "\n".join(lines) + "\n"


def write_sample(root: Path) -> None:
    """A small GAPED in its native layout: six categories of two ``.bmp`` images named ``.jpg`` in the
    rating files, Sp only as the "with SD" variant (trailing all-tab lines), H.txt with CRLF, one arousal
    of 104 (quarantined) and a cp1252 readme."""
    root.mkdir(parents=True, exist_ok=True)
    image_index = 20
    for category, images in _SAMPLE.items():
        for number, _, _ in images:
            write_image(root / category / f"{category}{number:03d}.bmp", image_index)
            image_index += 3
        plain, with_sd = rating_files(category)
        if category == _SD_SAMPLE_CATEGORY:
            (root / with_sd).write_bytes(_with_sd_text(category).encode("utf-8"))
            continue
        text = _plain_text(category)
        if category == _CRLF_SAMPLE_CATEGORY:
            text = text.replace("\n", "\r\n")
        (root / plain).write_bytes(text.encode("utf-8"))
    (root / "GAPED_readme.txt").write_bytes(_README.replace("\n", "\r\n").encode("cp1252"))
