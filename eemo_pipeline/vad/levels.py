"""VAD levels: a 0-1 score read as low, medium or high (paper C.6), for prompts, QA answers and validators."""

from __future__ import annotations

import polars as pl

# Paper C.6: on the 0-1 scale, below 0.4 is low, 0.4 to 0.6 medium, above 0.6 high. Both edges belong to
# medium (0.4 and 0.6 are medium): the paper writes "medium if 0.4 <= x <= 0.6".
LOW_BELOW = 0.4
HIGH_ABOVE = 0.6
LEVELS: tuple[str, ...] = ("low", "medium", "high")


def vad_level(value: float | None) -> str | None:
    """``low`` (value < 0.4), ``medium`` (0.4 <= value <= 0.6) or ``high`` (value > 0.6); None for None/NaN."""
    if value is None or value != value:  # NaN
        return None
    if value < LOW_BELOW:
        return "low"
    if value > HIGH_ABOVE:
        return "high"
    return "medium"


def vad_level_expr(column: str | pl.Expr) -> pl.Expr:
    """Vectorised ``vad_level``: the same edges (0.4 and 0.6 are medium); null and NaN give null.

    The result keeps the input's (root) column name."""
    value = pl.col(column) if isinstance(column, str) else column
    return (
        pl.when(value.is_null() | value.is_nan())
        .then(pl.lit(None, pl.String))
        .when(value < LOW_BELOW)
        .then(pl.lit("low"))
        .when(value > HIGH_ABOVE)
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium"))
        .name.keep()
    )
