"""Provenance shared by the subset builders."""

from __future__ import annotations

from collections.abc import Mapping


def source_inputs(inputs: Mapping[str, str], source: str) -> dict[str, str]:
    """The input versions a row of ``source`` depends on: ``<asset>[<source>]`` entries and unpartitioned ones."""
    return {k: v for k, v in inputs.items() if k.endswith(f"[{source}]") or "[" not in k}
