"""Contract validation of reader output: split rows into kept and quarantined, vectorised.

Every rule yields a reason string per row (null when the row passes); a row with any reason goes to the
quarantine with all of its reasons joined, and the rest flow on. The same rules back the blocking
asset checks, so what was kept can be re-verified.
"""

from __future__ import annotations

import polars as pl

from eemo_pipeline.contracts import SourceFacts, source_facts, table_contract
from eemo_pipeline.sources.files import NUL_REASON

# Absolute paths, Windows drive letters and any '..' component could leave the source root.
_ESCAPING_PATH = r"^/|^[A-Za-z]:|\\|(^|/)\.\.(/|$)"


def _label_measures() -> list[str]:
    return list(table_contract("raw_annotations").rules["label_measures"])


def row_reasons(facts: SourceFacts, unparsed: pl.Expr | None = None) -> list[pl.Expr]:
    """One expression per rule: a reason string where the row breaks it, else null.

    ``unparsed`` is true where a reader's text cell did not parse: that reason is reported instead of
    a bare "missing value".
    """
    contract = table_contract("raw_annotations")
    label_measures = _label_measures()
    is_label = pl.col("measure").is_in(label_measures)
    lows = {name: lo for name, (lo, _) in facts.ratings.items()}
    highs = {name: hi for name, (_, hi) in facts.ratings.items()}
    low = pl.col("measure").replace_strict(lows, default=None, return_dtype=pl.Float64)
    high = pl.col("measure").replace_strict(highs, default=None, return_dtype=pl.Float64)
    value = pl.col("value")
    explained = unparsed if unparsed is not None else pl.lit(False)
    reasons = [
        pl.when(pl.col(c.name).is_null() & ~(explained & (c.name == "value"))).then(pl.lit(f"missing {c.name}"))
        for c in contract.columns
        if not c.nullable
    ]
    reasons += [
        pl.when(value.is_nan()).then(pl.lit("missing value")),
        pl.when(is_label & ~pl.col("label").is_in(sorted(facts.labels)).fill_null(False)).then(
            pl.format("unknown label '{}' (not in the {} vocabulary)", pl.col("label").fill_null("<null>"), pl.lit(facts.name))
        ),
        pl.when(~is_label & low.is_null()).then(pl.format("unknown measure '{}'", pl.col("measure"))),
        pl.when(~is_label & ~value.is_nan() & ((value < low) | (value > high))).then(
            pl.format("{} {} outside its scale {}..{}", pl.col("measure"), value, low, high)
        ),
        pl.when((pl.col("measure") == "label_prob") & ((value < 0) | (value > 1))).then(
            pl.format("probability {} outside 0..1", value)
        ),
        pl.when((pl.col("measure") == "label_vote") & (value < 0)).then(pl.format("negative vote count {}", value)),
        pl.when(pl.col("image_path").str.contains(_ESCAPING_PATH)).then(
            pl.format("image path '{}' escapes the source root", pl.col("image_path"))
        ),
        *(
            pl.when(pl.col(name).str.contains("\x00", literal=True)).then(
                pl.format("{} '{}' {}", pl.lit(name.replace("_", " ")),
                          pl.col(name).str.replace_all("\x00", "\\x00", literal=True), pl.lit(NUL_REASON))
            )
            for name in ("image_id", "image_path")
        ),
    ]
    return reasons


def _probability_sums() -> pl.Expr:
    group = ["source_file", "image_id", "subject", "annotator"]
    return pl.col("value").filter(pl.col("measure") == "label_prob").sum().over(group)


def split_valid(rows: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate canonical rows of one source.

    Returns ``(kept, quarantined)``: kept rows carry their rating scale and renormalised probabilities;
    quarantined rows are ``file, line, reason, record`` with every broken rule named.
    """
    facts = source_facts(source)
    contract = table_contract("raw_annotations")
    parse_reason = pl.lit(None, pl.String)
    if "value_text" in rows.columns:
        # Readers may hand over cells as text so that an unparseable number is named in the quarantine.
        text = pl.col("value_text").str.strip_chars()
        parsed = text.cast(pl.Float64, strict=False)
        value = pl.col("value").cast(pl.Float64) if "value" in rows.columns else pl.lit(None, pl.Float64)
        parse_reason = pl.when(text.is_not_null() & (text != "") & parsed.is_null()).then(
            pl.format("{} value '{}' is not a number", pl.col("measure"), text)
        )
        rows = rows.with_columns(value.fill_null(parsed).alias("value"))
    rows = rows.with_columns(parse_reason.alias("_parse"))
    rows = contract.conform(rows).with_columns(rows["_parse"])
    tolerance = float(contract.rules["probability_reject"])
    is_prob = pl.col("measure") == "label_prob"
    prob_sum = _probability_sums()
    reasons = [
        pl.col("_parse"),
        *row_reasons(facts, unparsed=pl.col("_parse").is_not_null()),
        pl.when(is_prob & ((prob_sum - 1).abs() > tolerance)).then(
            pl.format("probabilities of the image sum to {}, not 1", prob_sum.round(6))
        ),
    ]
    checked = rows.with_columns(pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("_reason"))
    bad = checked.filter(pl.col("_reason").is_not_null() & (pl.col("_reason") != ""))
    kept = checked.filter(pl.col("_reason").is_null() | (pl.col("_reason") == "")).drop("_reason", "_parse")
    lows = {name: lo for name, (lo, _) in facts.ratings.items()}
    highs = {name: hi for name, (_, hi) in facts.ratings.items()}
    kept = kept.with_columns(
        pl.col("measure").replace_strict(lows, default=None, return_dtype=pl.Float64).alias("scale_min"),
        pl.col("measure").replace_strict(highs, default=None, return_dtype=pl.Float64).alias("scale_max"),
        # Distributions that sum to 1 within tolerance are renormalised exactly (Emotion6: 1 +- 2e-6).
        pl.when(is_prob).then(pl.col("value") / _probability_sums()).otherwise(pl.col("value")).alias("value"),
    )
    record_columns = [c for c in contract.column_names if c not in ("source_file", "source_line")]
    quarantined = bad.select(
        pl.col("source_file").fill_null("<unknown>").alias("file"),
        pl.col("source_line").alias("line"),
        pl.col("_reason").alias("reason"),
        pl.struct(record_columns).struct.json_encode().alias("record"),
    )
    return contract.conform(kept), quarantined


def contract_violations(frame: pl.DataFrame, source: str) -> list[str]:
    """Every rule broken by any row of an already-validated frame, with counts (empty when clean)."""
    contract = table_contract("raw_annotations")
    problems = contract.violations(frame)
    if problems or frame.is_empty():
        return problems
    facts = source_facts(source)
    reasons = row_reasons(facts) + [
        pl.when(pl.col("source") != source).then(pl.format("row of source '{}' in partition", pl.col("source"))),
        pl.when((pl.col("measure") == "label_prob") & ((_probability_sums() - 1).abs() > 1e-9)).then(
            pl.lit("probabilities do not sum to 1")
        ),
    ]
    counted = (
        frame.select(pl.concat_list([r.fill_null("") for r in reasons]).alias("r"))
        .explode("r")
        .filter(pl.col("r") != "")
        .group_by("r")
        .len()
        .sort("len", descending=True)
    )
    return [f"{n} rows: {reason}" for reason, n in counted.iter_rows()]


def rebuild_shrink(rows: int, last_good_rows: int | None, min_share: float) -> str | None:
    """Why a rebuild that keeps ``rows`` is held back, else None: fewer than ``min_share`` of the rows the last
    good build kept (a source file emptied or cut short reads as success otherwise). No earlier good build,
    or an empty one, holds nothing back."""
    if not last_good_rows or rows >= min_share * last_good_rows:
        return None
    return (
        f"kept {rows} rows where the last good build kept {last_good_rows} (under {min_share:.0%}, min_rebuild_share "
        "in data_contracts/sources.yaml): is a source file emptied or cut short? Check the quarantine; if the source "
        "really shrank, run again with accept_shrink: true"
    )
