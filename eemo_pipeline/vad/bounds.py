"""The normalisation of comment-synthesized VAD as versioned data: ``data_contracts/vad_bounds.yaml``.

The paper averages the Warriner norms of each image's comment keywords and then "normalizes" the averages
(section 3.1). Normalising by a statistic of each partition made an image's VAD depend on which other images
shared its partition (a two-image partition pinned both images to 0 and 1). Here the bounds are computed once
from a reference corpus of comments by ``eemo vad-bounds`` (``eemo_pipeline/vad/reference.py``), reviewed as a
contract change, and the same contract is applied to every partition and every rebuild: an image's VAD depends
on its own comments, the lexicon and this file only.

The map (``anchored_min_max``) is piecewise linear on Warriner's 1-9 scale through four knots:
(1, 0), (low, q_low), (high, q_high), (9, 1), where ``low`` and ``high`` are the ``q_low`` and ``q_high``
quantiles (0.01, 0.99) of the reference images' keyword means. Between the bounds it is the min-max of the
reference's percentiles; beyond them the rest of the scale shares the outer hundredth of 0-1, so the order of
images is kept everywhere and no mean strictly inside 1-9 lands on exactly 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from eemo_pipeline.settings import PACKAGED_CONTRACTS
from eemo_pipeline.vad.lexicon import SCALE

CONTRACT_NAME = "vad_bounds"
CONTRACT_FILE = f"{CONTRACT_NAME}.yaml"
METHOD = "anchored_min_max"
DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")


@dataclass(frozen=True)
class VadBounds:
    """One version of the contract: per dimension the (low, high) keyword means (1-9) that the reference corpus's
    ``quantiles`` fall on, and where they came from (``provenance``)."""

    version: int
    quantiles: tuple[float, float]
    bounds: dict[str, tuple[float, float]]
    provenance: dict[str, Any] = field(default_factory=dict)
    method: str = METHOD

    def lineage(self) -> dict[str, Any]:
        """What a ``vad_scores`` materialization records: the contract's name, version, method and numbers."""
        return {"contract": CONTRACT_NAME, "version": self.version, "method": self.method,
                "quantiles": list(self.quantiles), **{d: list(self.bounds[d]) for d in DIMENSIONS}}

    def normalize(self, raw: pl.Expr, dimension: str) -> pl.Expr:
        """``raw`` keyword means (1-9) of ``dimension`` on 0-1 through the four knots (module docstring)."""
        scale_low, scale_high = SCALE
        low, high = self.bounds[dimension]
        q_low, q_high = self.quantiles
        return (
            pl.when(raw < low).then((raw - scale_low) / (low - scale_low) * q_low)
            .when(raw > high).then(q_high + (raw - high) / (scale_high - high) * (1 - q_high))
            .otherwise(q_low + (raw - low) / (high - low) * (q_high - q_low))
            .clip(0.0, 1.0)
        )


def bounds_path(contracts_dir: Path) -> Path:
    """The contract file inside a data-contracts folder."""
    return Path(contracts_dir) / CONTRACT_FILE


def parse_vad_bounds(document: Any, origin: str) -> VadBounds:
    """A ``VadBounds`` from the parsed YAML ``document``; ValueError naming ``origin`` and the field otherwise."""
    def fail(problem: str) -> ValueError:
        return ValueError(f"{origin}: {problem}")

    if not isinstance(document, dict) or document.get("name") != CONTRACT_NAME:
        raise fail(f"not a {CONTRACT_NAME} contract (expected `name: {CONTRACT_NAME}`)")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail(f"version must be a positive integer, got {version!r}")
    if document.get("method") != METHOD:
        raise fail(f"method {document.get('method')!r} is not {METHOD!r}")
    scale = document.get("scale")
    if scale != list(SCALE):
        raise fail(f"scale {scale!r} differs from the lexicon's {list(SCALE)}")
    quantiles = _pair(document.get("quantiles"), "quantiles", fail)
    if not 0 < quantiles[0] < quantiles[1] < 1:
        raise fail(f"quantiles {list(quantiles)} must satisfy 0 < low < high < 1")
    table = document.get("bounds")
    if not isinstance(table, dict) or set(table) != set(DIMENSIONS):
        raise fail(f"bounds must give exactly {', '.join(DIMENSIONS)}")
    bounds = {d: _pair(table[d], f"bounds.{d}", fail) for d in DIMENSIONS}
    for dimension, (low, high) in bounds.items():
        if not SCALE[0] < low < high < SCALE[1]:
            raise fail(f"bounds.{dimension} {[low, high]} must satisfy {SCALE[0]:g} < low < high < {SCALE[1]:g}")
    provenance = document.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise fail("provenance must be a mapping")
    return VadBounds(version=version, quantiles=quantiles, bounds=bounds, provenance=provenance)


def _pair(value: Any, name: str, fail: Any) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise fail(f"{name} must be a list of two numbers, got {value!r}")
    return float(value[0]), float(value[1])


def load_vad_bounds(path: Path) -> VadBounds:
    """The contract at ``path`` (``bounds_path(settings.contracts_dir)`` at the edges)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VAD bounds contract {path} not found (write one with `eemo vad-bounds --write`)")
    with path.open(encoding="utf-8") as handle:
        return parse_vad_bounds(yaml.safe_load(handle), str(path))


def shipped_vad_bounds() -> VadBounds:
    """The contract shipped in the repository's ``data_contracts/`` (the default where no edge names another)."""
    return load_vad_bounds(bounds_path(PACKAGED_CONTRACTS))
