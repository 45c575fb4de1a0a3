"""FindingEmo: ``annotations_single.ann`` (a comma CSV despite its suffix), optionally ``dataset_urls_exploded.json``.

Columns ``index,user,image_path,tags,age,valence,arousal,emotion,dec_factors,ambiguity,datetime``, one row
per image and annotator. Each row becomes a ``label_choice`` fact (label = ``emotion``, one of Plutchik's 24,
capitalised; value 1) and three ratings: ``valence`` (-3..3), ``arousal`` (0..6) and ``ambiguity`` (0..6),
handed over as text so that validation names cells that are not numbers. All facts carry annotator = ``user``.

``image_path`` is written ``/Run_2/<search query with spaces>/<file>``: the leading ``/`` is the data set's
own convention for "relative to the data set root", so exactly one leading slash is removed and the rest is
both image_id and image_path, in its one spelling (``base.canonical_paths``: ``./``, ``//`` and ``x/../`` go, so
two spellings of a file are one image). A ``..`` that climbs above the data set root, a second leading slash (an
absolute path) or a backslash is left in place for validation to quarantine.

``tags``, ``age`` and ``dec_factors`` are quoted comma lists (``"BodyLanguage,FacialExpression"``); they go
to ``attributes`` as JSON lists, with ``index`` (an integer) and ``datetime``. When the URL file is present
(a JSON array of ``{rel_path, idx_url, url}``, several candidate URLs per image), ``attributes`` also gets
``url`` (the first candidate, lowest ``idx_url``) and ``urls`` (all of them in ``idx_url`` order), as
published (empty ones dropped; a few are relative paths or captions, kept as they are); images absent
from it get nulls; an error in it names its line and column. A row without ``emotion``, a row with a control
character in a cell and a last row cut short (on evidence, ``cut_last_record``) are rejected whole. An image
annotated twice by one user keeps one row when both agree and is quarantined on both lines when not. An
image's annotations are its label distribution: validation quarantines all of them when one is rejected
(``record_images``).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from eemo_pipeline.sources.base import (
    CUT_REASON,
    SourceRead,
    canonical_paths,
    clean_header,
    control_characters,
    cut_last_record,
    line_numbers,
    optional_file,
    read_csv_text,
    read_json,
    record_images,
    rejects,
    repeated_records,
    require_columns,
    require_file,
    require_rows,
)
from eemo_pipeline.sources.sample_images import write_image

ANNOTATIONS = "annotations_single.ann"
URLS = "dataset_urls_exploded.json"
COLUMNS = ["index", "user", "image_path", "tags", "age", "valence", "arousal", "emotion", "dec_factors", "ambiguity", "datetime"]
RATINGS = ("valence", "arousal", "ambiguity")
LISTS = ("tags", "age", "dec_factors")
_ANNOTATION = ["tags", "age", "valence", "arousal", "emotion", "dec_factors", "ambiguity"]  # what an annotator gave


def _split_list(column: str) -> pl.Expr:
    """``"a, b"`` -> ``["a", "b"]``; empty items dropped; a missing cell stays null."""
    items = pl.col(column).str.split(",").list.eval(pl.element().str.strip_chars())
    return items.list.eval(pl.element().filter(pl.element() != "")).alias(column)


def _urls(root: Path) -> pl.DataFrame | None:
    """``rel_path`` (no leading slash) -> ``url``, ``urls``; None when the optional file is absent."""
    path = optional_file(root, URLS)
    if path is None:
        return None
    table = read_json(path, "a JSON array of {rel_path, idx_url, url} objects")
    if table.is_empty():
        return None
    require_columns(table, ["rel_path", "url"], path)
    order = pl.col("idx_url").cast(pl.Int64, strict=False) if "idx_url" in table.columns else pl.int_range(pl.len())
    return (
        table.select(
            pl.col("rel_path").cast(pl.String).str.replace(r"^/", "").alias("_rel"),
            pl.col("url").cast(pl.String).str.strip_chars(),
            order.alias("_order"),
        )
        # A few entries of the published file have an empty url: no candidate at all.
        .filter(pl.col("_rel").is_not_null() & pl.col("url").is_not_null() & (pl.col("url") != ""))
        .sort("_rel", "_order", nulls_last=True, maintain_order=True)
        .group_by("_rel", maintain_order=True)
        .agg(pl.col("url").first().alias("url"), pl.col("url").alias("urls"))
    )


def read(root: Path) -> SourceRead:
    path = require_file(root, ANNOTATIONS, "FindingEmo's annotation CSV (index,user,image_path,...)")
    table = read_csv_text(path)
    table = clean_header(table, path, lambda c: c.strip().lstrip("\ufeff").strip())
    require_columns(table, COLUMNS, path)
    native = table.columns
    table = table.with_columns(
        line_numbers(table, first_line=2, multiline=native).alias("source_line"),
        control_characters(table, native).alias("_control"),
    ).filter(~pl.all_horizontal(pl.col(native).is_null()))
    require_rows(table, path)
    no_emotion = pl.col("emotion").is_null() | (pl.col("emotion").str.strip_chars() == "")
    table = table.with_columns(
        pl.when(cut_last_record(table, path)).then(pl.lit(CUT_REASON))
        .when(pl.col("_control").is_not_null()).then(pl.col("_control"))
        .when(no_emotion).then(pl.lit("missing emotion"))
        .alias("_problem")
    )
    table = table.with_columns(
        pl.col("image_path").str.strip_chars().str.replace(r"^/", "").alias("_rel"),
        pl.col("emotion").str.strip_chars(),
        pl.col("user").str.strip_chars(),
    )
    # A path still absolute once the convention's slash is gone names a file elsewhere: kept as written (refused).
    table = canonical_paths(table, "_rel", "_canonical").with_columns(
        pl.when(pl.col("_rel").str.starts_with("/")).then(pl.col("_rel")).otherwise(pl.col("_canonical")).alias("_rel"))
    urls = _urls(root)
    if urls is not None:
        table = table.join(urls, on="_rel", how="left", maintain_order="left")
    attributes = pl.struct(
        pl.col("index").str.strip_chars().cast(pl.Int64, strict=False).alias("index"),
        *[_split_list(c) for c in LISTS],
        pl.col("datetime").str.strip_chars().alias("datetime"),
        *([pl.col("url"), pl.col("urls")] if urls is not None else []),
    ).struct.json_encode()
    table = table.with_columns(
        pl.when(pl.col("_rel") != "").then(pl.col("_rel")).alias("image_id"),
        attributes.alias("attributes"),
    ).with_columns(pl.col("image_id").alias("image_path"))

    whole_bad = table.filter(pl.col("_problem").is_not_null()).select(
        pl.lit(ANNOTATIONS).alias("file"),
        pl.col("source_line").alias("line"),
        pl.col("_problem").alias("reason"),
        pl.struct(COLUMNS).struct.json_encode().alias("record"),
    )
    images = record_images(table, ANNOTATIONS)
    # One annotation per image and annotator: a second one with other values would be counted twice.
    table, repeats = repeated_records(
        table.filter(pl.col("_problem").is_null()), ["image_id", "user"], _ANNOTATION, ANNOTATIONS, COLUMNS
    )
    common = [
        "image_id",
        "image_path",
        pl.col("user").alias("annotator"),
        "attributes",
        pl.lit(ANNOTATIONS).alias("source_file"),
        "source_line",
    ]
    choices = table.select(
        *common,
        pl.lit("label_choice").alias("measure"),
        pl.col("emotion").alias("label"),
        pl.lit("1").alias("value_text"),
    )
    ratings = [
        table.select(*common, pl.lit(name).alias("measure"), pl.lit(None, pl.String).alias("label"), pl.col(name).alias("value_text"))
        for name in RATINGS
    ]
    rows = pl.concat([choices, *ratings], how="vertical").sort("source_line", maintain_order=True)
    empty = rejects()
    bad = pl.concat([empty, whole_bad.cast(empty.schema), rejects(repeats)], how="vertical")
    return SourceRead(rows=rows, rejects=bad.sort("line", maintain_order=True), record_images=images)


# (index, user, image path, tags, age, valence, arousal, emotion, dec_factors, ambiguity, datetime, image no.)
_SAMPLE = [
    (0, "5fd97d5b40332e276ea58209", "/Run_2/Loving toddlers sports/haiti-kids.jpg", "Undefined", "Children",
     "0", "2", "Trust", "BodyLanguage,FacialExpression", "0", "2023-09-01 00:00:00.000000", 1),
    (5, "5fd97d5b40332e276ea58209", "/Run_2/Frustrated forty-something office/team-work.jpg", "Undefined",
     "Young Adults", "0", "2", "Interest", "FacialExpression", "0", "2023-09-01 00:00:00.000000", 2),
    (6, "5985f6bdeef500000111db98", "/Run_1/Violent youth festival/1042373588.jpg", "Undefined", "Young Adults",
     "2", "2", "Interest", "BodyLanguage", "3", "2023-07-04 12:55:32.182805", 5),
    (9, "607b819f7f6f3c17b0849690", "/Run_2/Guilt youth mall/0a22745c-20d2-4631-9811-289dc8c71e52_1140x641.png",
     "Undefined", "Youth,Young Adults", "-1", "5", "Anticipation", "BodyLanguage", "3", "2023-07-04 12:57:28.291963", 6),
    (11, "5e9820b9c63c530008087a8c", "/Run_2/Joyful forty-something sports/Ann+Hobson+Pilot_01-1200x830.jpg",
     "Undefined", "Undefined", "2", "4", "Trust", "Undefined", "0", "2023-07-04 12:58:08.503636", 9),
    (12, "5fd97d5b40332e276ea58209", "/Run_2/Scared adolescents prison/15-hampton-roads-regional-jail-va.jpg",
     "Text,NA", "Youth,Adults", "4", "3", "Fear", "BodyLanguage,Context,FacialExpression", "1",
     "2023-07-04 12:59:36.656778", 10),  # valence 4 is beyond -3..3: quarantined
    (15, "5985f6bdeef500000111db98", "/Run_2/Unhappy elderly conference/pakistan.....jpg", "BadQualityPhoto",
     "Seniors", "-2", "1", "Pensiveness", "Context,FacialExpression", "2", "2023-07-04 12:59:40.569947", 13),
    (18, "607b819f7f6f3c17b0849690", "/Run_1/Ecstatic children beach/kids-jumping.jpg", "NoInteraction",
     "Children,Adults", "3", "6", "Ecstasy", "BodyLanguage,Context,FacialExpression,Staging", "1",
     "2023-07-04 12:59:59.473512", 14),
    (21, "5e9820b9c63c530008087a8c", "/Run_2/Grieving students sports/Fr-Taylor-chatting-to-local-men..jpg",
     "Undefined", "Young Adults,Adults", "-3", "4", "Grief", "FacialExpression", "5", "2023-07-04 13:00:12.253808", 17),
    (24, "5fd97d5b40332e276ea58209", "/Run_1/Accepting adults protest/web.ns_.protest.JHan_.picA_.jpg",
     "Copyright,Watermark", "Adults,Seniors", "1", "3", "Acceptance", "Context", "2", "2023-09-01 00:00:00.000000", 18),
]
# Candidate URLs by position in _SAMPLE (exploded: one JSON entry per candidate, written newest first so
# that the reader has to order them by idx_url); the other images have none.
_SAMPLE_URLS = {
    0: ["https://example.org/haiti-kids.jpg", "https://mirror.example.net/haiti-kids.jpg"],
    1: ["https://example.org/team-work.jpg"],
    3: ["https://example.org/guilt-youth-mall.png", "https://cdn.example.com/0a22745c.png", "https://example.net/mall.png"],
}


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r') else text


def write_sample(root: Path) -> None:
    """A small FindingEmo: 10 rows with quoted comma lists, spaces in paths, the leading slash, a file name
    with a run of dots, one out-of-range valence (quarantined); the URL file with several candidates per
    image for some images and none for others; images at ``<root>/Run_x/<query>/<file>``."""
    lines = [",".join(COLUMNS)]
    for *cells, number in _SAMPLE:
        lines.append(",".join(_csv_cell(str(c)) for c in cells))
        write_image(root / cells[2].lstrip("/"), number)
    root.mkdir(parents=True, exist_ok=True)
    (root / ANNOTATIONS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries = [
        {"rel_path": _SAMPLE[row][2], "idx_url": i + 1, "url": url}
        for row, candidates in _SAMPLE_URLS.items()
        for i, url in reversed(list(enumerate(candidates)))
    ]
    (root / URLS).write_text("[\n" + ",\n".join("\t" + json.dumps(e) for e in entries) + "\n]\n", encoding="utf-8")
