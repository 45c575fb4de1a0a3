"""Training-ready records from the subset tables, in the shapes TRL's trainers take (no TRL import here).

- ``sft_records`` (EEmoDB-QA, stage 1): TRL ``SFTTrainer``'s conversational vision format, a ``messages``
  column plus an ``images`` column. ``messages`` is ``[user, assistant]``; the user turn's ``content`` is one
  ``{"type": "image"}`` part per image (in ``images`` order) followed by ``{"type": "text", "text": question}``;
  the assistant turn is ``[{"type": "text", "text": answer}]``. Parts are structs with both ``type`` and
  ``text`` (``text`` null on image parts), as in the public ``llava-instruct-mix-vsft`` data set that TRL's
  vision SFT examples use; the processor's chat template puts one image placeholder per image part.
- ``grpo_records`` (EEmoDB-Assess, stage 2): TRL ``GRPOTrainer``'s conversational ``prompt`` (``[system, user]``,
  the user turn being one image part then the question) plus an ``image`` column with the file. GRPOTrainer
  passes every other column (``solution``, ``task``, ``sub_task``, ``row_id``) to the reward functions as
  keyword arguments.

Image paths: with ``roots`` (source name -> source root folder), each ``'<source>/<relative path>'`` becomes
the absolute ``roots[source] / relative path``; without, the ``'<source>/<path>'`` strings are kept. With
``converted_dir`` too, images in formats the trainers' image loading cannot decode (torchvision reads only
JPEG, PNG, WebP and GIF; GAPED ships BMP) are converted once to PNG there, named by a hash of their path. With
``storage`` (the storage root), paths inside it (the converted copies) are written relative to it, so an export
does not depend on where the storage root is; the trainer resolves them (``storage.from_storage``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from eemo_pipeline.progress import progress
from eemo_pipeline.sources.files import resolve_inside
from eemo_pipeline.storage import storage_relative, write_parquet
from eemo_pipeline.tasks.questions import DEFAULT_SYSTEM_PROMPT

_PART = pl.Struct({"type": pl.String, "text": pl.String})
_MESSAGE = pl.Struct({"role": pl.String, "content": pl.List(_PART)})
MESSAGES = pl.List(_MESSAGE)


def _text_part(text: pl.Expr) -> pl.Expr:
    return pl.struct(pl.lit("text").alias("type"), text.alias("text"))


def _image_part() -> pl.Expr:
    return pl.struct(pl.lit("image").alias("type"), pl.lit(None, pl.String).alias("text"))


TRAINER_FORMATS = (".jpg", ".jpeg", ".png", ".webp", ".gif")


def trainer_image(path: Path, converted_dir: Path | None) -> Path:
    """``path``, or its PNG copy in ``converted_dir`` when the trainers cannot decode its format."""
    if converted_dir is None or path.suffix.lower() in TRAINER_FORMATS:
        return path
    import hashlib

    from eemo_pipeline.sources.images import load_rgb

    target = Path(converted_dir) / f"{hashlib.sha256(str(path).encode()).hexdigest()[:24]}.png"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial.png")
        image, _ = load_rgb(Path(path))  # as the manifest checked it: caps, 16-bit scaled to 8 bits
        image.save(partial)
        partial.replace(target)
    return target


def resolve_images(frame: pl.DataFrame, roots: Mapping[str, Path] | None = None,
                   converted_dir: Path | None = None, storage: Path | None = None) -> pl.Series:
    """``images`` (List[String]) for each row: ``image_paths`` resolved against ``roots`` when given (and
    converted for the trainers when ``converted_dir`` is given; relative to ``storage`` when inside it)."""
    if roots is None:
        return frame["image_paths"].alias("images")
    resolved = []
    rows = frame.select("image_paths", "sources").iter_rows()
    for paths, sources in progress(rows, "export images", total=frame.height):
        row = []
        for path, source in zip(paths, sources, strict=True):
            prefix = f"{source}/"
            if not path.startswith(prefix):
                raise ValueError(f"image path {path!r} does not start with its source {source!r}")
            if source not in roots:
                raise KeyError(f"no root given for source {source!r}")
            image = trainer_image(resolve_inside(roots[source], path[len(prefix):]), converted_dir)
            row.append(storage_relative(image, storage) if storage is not None else str(image))
        resolved.append(row)
    return pl.Series("images", resolved, pl.List(pl.String))


def sft_records(qa: pl.DataFrame, roots: Mapping[str, Path] | None = None,
                converted_dir: Path | None = None, storage: Path | None = None) -> pl.DataFrame:
    """``row_id, messages, images`` for TRL SFTTrainer (conversational vision format)."""
    images = resolve_images(qa, roots, converted_dir, storage)
    # One image part per image, then the question text, built per row as a list of parts.
    user_content = (
        pl.col("image_paths").list.eval(_image_part())
        .list.concat(pl.concat_list(_text_part(pl.col("question"))))
    )
    messages = pl.concat_list(
        pl.struct(pl.lit("user").alias("role"), user_content.alias("content")),
        pl.struct(pl.lit("assistant").alias("role"), pl.concat_list(_text_part(pl.col("answer"))).alias("content")),
    )
    return qa.select(pl.col("row_id"), messages.cast(MESSAGES).alias("messages")).with_columns(images)


def grpo_records(
    assess: pl.DataFrame, roots: Mapping[str, Path] | None = None, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    converted_dir: Path | None = None, storage: Path | None = None,
) -> pl.DataFrame:
    """``prompt, image, solution, task, sub_task, row_id`` for TRL GRPOTrainer (one image per row)."""
    several = assess.filter(pl.col("image_paths").list.len() != 1)
    if several.height:
        raise ValueError(f"GRPO records take one image per row; {several.height} rows have another count")
    image = resolve_images(assess, roots, converted_dir, storage).list.first().alias("image")
    prompt = pl.concat_list(
        pl.struct(pl.lit("system").alias("role"), pl.concat_list(_text_part(pl.lit(system_prompt))).alias("content")),
        pl.struct(
            pl.lit("user").alias("role"),
            pl.concat_list(_image_part(), _text_part(pl.col("question"))).alias("content"),
        ),
    )
    return assess.select(
        prompt.cast(MESSAGES).alias("prompt"),
        pl.lit(None, pl.String).alias("image"),
        pl.col("answer").alias("solution"),
        "task",
        "sub_task",
        "row_id",
    ).with_columns(image)


def write_jsonl(frame: pl.DataFrame, path: Path) -> Path:
    """One JSON object per line (UTF-8), written through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for record in progress(frame.iter_rows(named=True), f"export {path.name}", total=frame.height):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_records(frame: pl.DataFrame, path: Path) -> Path:
    """Parquet (``.parquet``) or JSON lines (any other suffix)."""
    path = Path(path)
    return write_parquet(frame, path) if path.suffix == ".parquet" else write_jsonl(frame, path)
