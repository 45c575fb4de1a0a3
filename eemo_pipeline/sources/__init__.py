"""One module per source data set: native bytes -> canonical polars frame, and a sample writer.

Each module exposes ``read(root) -> SourceRead`` and ``write_sample(root) -> None``; no Dagster imports.
A source exists when it is declared in ``data_contracts/sources.yaml`` (``SOURCES`` follows its order).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from eemo_pipeline.contracts import source_facts
from eemo_pipeline.settings import root_variable
from eemo_pipeline.sources.base import SOURCES, SourceFormatError, SourceRead

__all__ = ["SOURCES", "SourceFormatError", "SourceRead", "source_module", "source_root"]


def source_module(source: str) -> ModuleType:
    if source not in SOURCES:
        raise KeyError(f"unknown source {source!r}; known sources: {', '.join(SOURCES)}")
    return importlib.import_module(source_facts(source).reader)


def source_root(source: str, root: str | Path | None) -> Path:
    """The source's root folder ``root`` (run config, else ``Settings.root(source)``), checked and absolute."""
    if not root:
        raise ValueError(
            f"no root folder configured for source {source!r}: set {root_variable(source)} "
            f"or the asset's run config 'root'"
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"root folder of source {source!r} does not exist: {root}")
    return root.resolve()
