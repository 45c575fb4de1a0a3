"""Content categories of images, as declared per source in ``data_contracts/sources.yaml`` (``qa.pair_category``).

``content_categories`` reads the content category every pair question must share (paper 3.3: "content and
label constraints ... guaranteeing semantic compatibility"): the OASIS Category, the GAPED category letter, the
Affection sub-dataset, the EMOTIC original database, the FindingEmo search-query folder. A source without a
``pair_category`` declaration puts all its images in one category.
"""

from __future__ import annotations

import polars as pl

from eemo_pipeline.contracts import source_declarations

CATEGORY_SCHEMA = {"source": pl.String, "image_id": pl.String, "category": pl.String}
UNCATEGORISED = ""  # the category of an image whose source declares none, or whose field is missing


def content_categories(raw_annotations: pl.DataFrame) -> pl.DataFrame:
    """``source, image_id, category``: one row per image of a source with a ``pair_category`` declaration.

    ``attribute``: the first non-empty value of that key in the image's ``attributes`` JSON (file order);
    ``image_id``: the regular expression's group. Images where it is missing are left out (they fall into
    ``UNCATEGORISED`` in ``with_categories``).
    """
    frames = []
    for source, facts in source_declarations().items():
        if facts.pair_category is None:
            continue
        rows = raw_annotations.filter(pl.col("source") == source)
        if rows.is_empty():
            continue
        field, value = facts.pair_category
        if field == "image_id":
            category = pl.col("image_id").str.extract(value, 1)
        else:
            category = pl.col("attributes").str.json_path_match(f"$.{value}")
        frames.append(
            rows.select("source", "image_id", category.cast(pl.String).str.strip_chars().alias("category"))
            .filter(pl.col("category").is_not_null() & (pl.col("category") != ""))
            .unique(subset=["source", "image_id"], keep="first", maintain_order=True)
        )
    if not frames:
        return pl.DataFrame(schema=CATEGORY_SCHEMA)
    return pl.concat(frames).sort("source", "image_id")


def category_map(categories: pl.DataFrame | None) -> dict[tuple[str, str], str]:
    """``(source, image_id) -> category`` of a ``content_categories`` frame (None: empty)."""
    if categories is None:
        return {}
    return {(s, i): c for s, i, c in categories.select("source", "image_id", "category").iter_rows()}


def with_categories(frame: pl.DataFrame, categories: pl.DataFrame | None) -> pl.DataFrame:
    """``frame`` (keyed by ``source, image_id``) with a ``_category`` column (``UNCATEGORISED`` where none)."""
    if categories is None or categories.is_empty():
        return frame.with_columns(pl.lit(UNCATEGORISED).alias("_category"))
    return frame.join(categories.select("source", "image_id", pl.col("category").alias("_category")),
                      on=["source", "image_id"], how="left").with_columns(pl.col("_category").fill_null(UNCATEGORISED))
