"""Polars expressions that several domain modules share."""

from __future__ import annotations

import polars as pl


def fixed_order_sum(values: pl.Expr) -> pl.Expr:
    """The sum of ``values`` added one by one in ascending order (nulls skipped; null for no value).

    Polars' group-by and window sums split a group's floats over threads and add the parts in any order, and the
    last bit of a float sum depends on that order, so two builds from the same input would differ. A running sum
    over the sorted values is sequential (and the optimizer keeps its sort, which it drops before a plain
    ``sum``); use it for every float sum or mean that ends up in data.
    """
    return values.sort().cum_sum().last()


def fixed_order_mean(values: pl.Expr) -> pl.Expr:
    """The mean of ``values`` with the sum taken as in ``fixed_order_sum`` (null for no value)."""
    return fixed_order_sum(values) / values.count()
