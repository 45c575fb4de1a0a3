import numpy as np
import polars as pl

from eemo_pipeline.frames import fixed_order_mean, fixed_order_sum


def test_fixed_order_sums_are_the_same_bits_for_any_grouping_and_thread_split() -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"g": rng.integers(0, 20, 100_000), "x": rng.random(100_000) * 1e3})
    expected = {g: sum(sorted(part["x"].to_list())) for (g,), part in frame.group_by("g")}
    for shuffle in range(5):
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=shuffle)
        sums = dict(shuffled.group_by("g").agg(fixed_order_sum(pl.col("x"))).iter_rows())
        assert sums == expected  # bit for bit: a sequential sum of the sorted values
        window = shuffled.with_columns(fixed_order_sum(pl.col("x")).over("g").alias("s"))
        assert dict(window.select("g", "s").unique().iter_rows()) == expected


def test_fixed_order_mean_skips_nulls_and_is_null_without_values() -> None:
    frame = pl.DataFrame({"g": ["a", "a", "a", "b"], "x": [1.0, None, 2.0, None]})
    means = dict(frame.group_by("g").agg(fixed_order_mean(pl.col("x"))).iter_rows())
    assert means == {"a": 1.5, "b": None}
