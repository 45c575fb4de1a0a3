"""A local checkpoint's files: where its parts are (base weights, PEFT adapter, processor), a cheap fingerprint of
them for cache keys, and the short name a report gives it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from eemo_pipeline.evaluation.chat_model import ModelSpecError

# Files hashed whole for a checkpoint's fingerprint; larger ones (weights) by size plus their first and last MiB.
_WHOLE_FILE_BYTES = 1 << 20
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def checkpoint_fingerprint(directory: Path) -> str:
    """sha256 over a checkpoint directory's files: small files whole, large ones by size and first/last MiB.

    Cheap on a 15 GB checkpoint yet changes whenever weights, config or processor change.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(directory).as_posix()}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= _WHOLE_FILE_BYTES:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_WHOLE_FILE_BYTES))
                handle.seek(size - _WHOLE_FILE_BYTES)
                digest.update(handle.read())
    return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointLayout:
    """Where a local checkpoint's parts are: the base weights, the optional adapter and the processor."""

    base: Path
    adapter: Path | None
    processor: Path


def checkpoint_layout(directory: Path) -> CheckpointLayout:
    """Resolve a full model directory or a PEFT adapter directory; raises ``ModelSpecError`` explaining what is missing."""
    directory = Path(directory).resolve()
    adapter_config = directory / "adapter_config.json"
    if adapter_config.is_file():
        try:
            base_name = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except ValueError as error:
            raise ModelSpecError(f"{adapter_config}: not valid JSON ({error})") from error
        if not base_name:
            raise ModelSpecError(f"{adapter_config}: base_model_name_or_path is missing")
        base = Path(base_name).expanduser()
        if not base.is_absolute() and not base.is_dir():
            base = directory / base  # a path relative to the adapter
        if not (base / "config.json").is_file():
            raise ModelSpecError(
                f"{adapter_config}: base model {base_name!r} is not a local model directory with config.json "
                "(models are never fetched from a hub)"
            )
        base = base.resolve()
        has_processor = any((directory / name).is_file() for name in _PROCESSOR_FILES)
        return CheckpointLayout(base=base, adapter=directory, processor=directory if has_processor else base)
    if (directory / "config.json").is_file():
        return CheckpointLayout(base=directory, adapter=None, processor=directory)
    raise ModelSpecError(f"{directory}: neither a transformers model (config.json) nor a PEFT adapter (adapter_config.json)")


def checkpoint_name(directory: Path) -> str:
    """A short name for reports: the stage for the training assets' ``<stage>_checkpoint/<run>/adapter`` (or
    ``model``, a full fine-tune; ``merged``), else the directory's name."""
    directory = directory.resolve()
    stage = directory.parent.parent.name
    if directory.name in ("adapter", "model", "merged") and stage.endswith("_checkpoint"):
        return stage.removesuffix("_checkpoint") + ("-merged" if directory.name == "merged" else "")
    return directory.name
