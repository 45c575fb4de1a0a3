"""Stage 1: which images get a description, and their ``describe`` items (the image as a data URL)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from eemo_pipeline.generation.stages.kinds import DESCRIBE
from eemo_pipeline.generation.stages.reason import image_comments
from eemo_pipeline.generation.templates import load_template
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline.sources.files import resolve_inside


def _sample_rank(seed: int, source: str, image_id: str) -> str:
    # A content hash rather than polars' hash: the sample must not change with the library version.
    return hashlib.sha256(f"{seed}\x1f{source}\x1f{image_id}".encode()).hexdigest()


# Which images get a description (and so reasoning and descriptive answers). The paper (3.2) describes only
# "samples with distinct emotion intensities" of Affection, whose expert comments ground every reason:
#   commented: a ranking with distinct intensities and at least one human comment (the paper's rule; only
#              Affection ships comments);
#   ranked:    every image with a ranking of distinct intensities, comments or not (reasoning then rests on
#              the description alone).
DESCRIPTION_SELECTIONS: tuple[str, ...] = ("commented", "ranked")
DEFAULT_DESCRIPTION_SELECTION = "commented"


def select_for_description(
    mapped_labels: pl.DataFrame,
    manifest: pl.DataFrame,
    limit: int | None = None,
    seed: int = 0,
    annotations: pl.DataFrame | None = None,
    selection: str = DEFAULT_DESCRIPTION_SELECTION,
) -> pl.DataFrame:
    """Images to describe: a non-null ranking (distinct intensities, paper 3.2), a decodable manifest row and,
    under ``selection`` ``commented`` (``DESCRIPTION_SELECTIONS``), at least one comment in ``annotations``
    (raw_annotations rows; None counts as no comments).

    Sorted by ``source, image_id``. With ``limit``, keeps the ``limit`` images whose sha256 of
    ``seed, source, image_id`` sorts first (a deterministic uniform sample over all sources, stable when
    rows are added or the polars version changes), still sorted by ``source, image_id``.
    Columns: ``source, image_id, image_path, sha256, ranking``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if selection not in DESCRIPTION_SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; one of {list(DESCRIPTION_SELECTIONS)}")
    ranked = mapped_labels.filter(pl.col("ranking").is_not_null() & (pl.col("ranking").list.len() > 0)).select(
        "source", "image_id", "ranking"
    )
    usable = manifest.filter(pl.col("decodable") & pl.col("image_path").is_not_null()).select(
        "source", "image_id", "image_path", "sha256"
    )
    selected = ranked.join(usable, on=["source", "image_id"], how="inner").select(
        "source", "image_id", "image_path", "sha256", "ranking"
    )
    if selection == "commented":
        commented = image_comments(annotations) if annotations is not None else None
        if commented is None or commented.is_empty():
            selected = selected.clear()
        else:
            selected = selected.join(commented.select("source", "image_id").unique(), on=["source", "image_id"],
                                     how="semi")
    if limit is not None and selected.height > limit:
        order = [_sample_rank(seed, s, i) for s, i in selected.select("source", "image_id").iter_rows()]
        selected = selected.with_columns(pl.Series("_order", order)).sort("_order").head(limit).drop("_order")
    return selected.sort("source", "image_id")


ImageLoader = Callable[[Path], tuple[str, str]]


def _root_of(root: Path | Mapping[str, Path], source: str, sources: set[str]) -> Path:
    if isinstance(root, Mapping):
        if source not in root:
            raise KeyError(f"no image root given for source {source!r} (roots for {sorted(root)})")
        return Path(root[source])
    if len(sources) > 1:
        raise ValueError(
            f"one root given for images of several sources {sorted(sources)}: pass a mapping source -> root"
        )
    return Path(root)


def description_items(
    selected: pl.DataFrame, root: Path | Mapping[str, Path], image_loader: ImageLoader
) -> list[WorkItem]:
    """One ``describe`` item per row of ``select_for_description``.

    ``root`` is the source root of the images (a single Path when ``selected`` holds one source, else a
    mapping source -> root); ``image_path`` is relative to it. ``image_loader(path)`` returns
    ``(data_url, content_sha256)`` of what is sent (``eemo_pipeline.generation.images.image_data_url``).
    The messages carry the data URL; the cache payload carries the same messages with the URL replaced by
    ``sha256:<content_sha256>`` (small, and stable for equal image content). Errors of the loader propagate.
    Key: ``<source>/<image_id>/describe``.
    """
    template = load_template(DESCRIBE)
    sources = set(selected["source"].unique().to_list()) if selected.height else set()
    items = []
    for row in selected.sort("source", "image_id").iter_rows(named=True):
        source, image_id = row["source"], row["image_id"]
        data_url, content_sha256 = image_loader(resolve_inside(_root_of(root, source, sources), row["image_path"], f"{source}/{image_id}"))
        fields = {"word_limit": template.word_limit}
        items.append(
            WorkItem(
                key=f"{source}/{image_id}/{DESCRIBE}",
                messages=template.render(image_data_url=data_url, **fields),
                template=template.name,
                template_version=template.version,
                cache_payload={
                    "template": template.id,
                    "messages": template.render(image_data_url=f"sha256:{content_sha256}", **fields),
                    "image_sha256": content_sha256,
                },
                context={
                    "source": source,
                    "image_id": image_id,
                    "image_path": row["image_path"],
                    "file_sha256": row["sha256"],
                    "image_sha256": content_sha256,
                    "ranking": list(row["ranking"] or []),
                    "word_limit": template.word_limit,
                },
            )
        )
    return items
