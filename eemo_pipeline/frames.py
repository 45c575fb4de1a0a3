"""Polars expressions that several domain modules share, each giving the same result on every machine and polars
version: sums in a fixed order, and the seeded keys of every deterministic choice of the subset builders.

Seeded keys: an image's base key is the first 8 bytes of sha256(seed, source, image_id); each decision mixes it
with a named salt through splitmix64 in wrapping UInt64 arithmetic. Same inputs and seed give the same choices on
any polars version (``Expr.hash`` is stable only within one).
"""

from __future__ import annotations

import hashlib

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


# --- seeded keys ---------------------------------------------------------------------------------------------

U64 = pl.UInt64


def seed_salt(text: str) -> int:
    """The 64-bit salt of a decision name."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def splitmix64(value: pl.Expr) -> pl.Expr:
    """splitmix64's finaliser in wrapping UInt64 arithmetic (shifts as floor divisions)."""
    z = value + pl.lit(0x9E3779B97F4A7C15, U64)
    z = z.xor(z // pl.lit(1 << 30, U64)) * pl.lit(0xBF58476D1CE4E5B9, U64)
    z = z.xor(z // pl.lit(1 << 27, U64)) * pl.lit(0x94D049BB133111EB, U64)
    return z.xor(z // pl.lit(1 << 31, U64))


def decision_key(base: str | pl.Expr, salt: str) -> pl.Expr:
    """A 64-bit key of ``base`` (an image key column) for one decision named ``salt``."""
    base = pl.col(base) if isinstance(base, str) else base
    return splitmix64(base.xor(pl.lit(seed_salt(salt), U64)))


def pair_key(a: str, b: str, salt: str) -> pl.Expr:
    """A key of the ordered pair of image keys ``a``, ``b`` for one decision."""
    return decision_key(pl.col(a).xor(splitmix64(pl.col(b))), salt)


def image_keys(images: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``source, image_id, _h``: the first 8 bytes of sha256(seed, source, image_id) as UInt64."""
    keys = [
        int.from_bytes(hashlib.sha256(f"{seed}\x1f{s}\x1f{i}".encode()).digest()[:8], "big")
        for s, i in images.select("source", "image_id").iter_rows()
    ]
    return images.select("source", "image_id").with_columns(pl.Series("_h", keys, dtype=U64))


def with_draw_key(frame: pl.DataFrame, seed: int, salt: str, name: str = "_draw") -> pl.DataFrame:
    """``frame`` with a seeded key column ``name`` per (source, image_id) for the decision ``salt``."""
    keys = image_keys(frame.select("source", "image_id").unique(maintain_order=True), seed)
    return frame.join(keys.with_columns(decision_key("_h", salt).alias(name)).drop("_h"),
                      on=["source", "image_id"], how="left", maintain_order="left")
