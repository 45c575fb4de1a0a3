"""Polars expressions that several domain modules share."""

from __future__ import annotations

import polars as pl


def fixed_order_sum(values: pl.Expr) -> pl.Expr:
    """The sum of ``values`` added in ascending order.

    Polars' parallel group-by and window aggregations may add a group's floats in any order, and the last bit of a
    float sum depends on that order, so two builds from the same input would differ. Sorting first fixes the order
    (and the result) for any grouping; use it for every float sum or mean that ends up in data.
    """
    return values.sort().sum()


def fixed_order_mean(values: pl.Expr) -> pl.Expr:
    """The mean of ``values`` with the sum taken in ascending order (see ``fixed_order_sum``)."""
    return values.sort().mean()
