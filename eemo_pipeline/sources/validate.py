"""Contract validation of reader output: split rows into kept and quarantined, vectorised.

Every rule yields a reason string per row (null when the row passes); a row with any reason goes to the
quarantine with all of its reasons joined, and the rest flow on. The same rules back the blocking
asset checks, so what was kept can be re-verified.

An image's labels (its votes, probabilities or annotators' choices: every ``label_measures`` row) form one
distribution, kept whole or not at all: a label fact that breaks a rule, or a record of the image that its
reader rejected (cut short, a conflicting repeat, a control character, an unparseable cell), quarantines every
row of the image, each naming the file, line and cell at fault. A bad rating alone (a valence out of scale)
quarantines that rating only: it leaves no distribution partial.
"""

from __future__ import annotations

import polars as pl

from eemo_pipeline.contracts import SourceFacts, source_facts, table_contract
from eemo_pipeline.sources.files import NUL_REASON

# Absolute paths, Windows drive letters and any '..' component could leave the source root.
_ESCAPING_PATH = r"^/|^[A-Za-z]:|\\|(^|/)\.\.(/|$)"


def _label_measures() -> list[str]:
    return list(table_contract("raw_annotations").rules["label_measures"])


Rule = tuple[pl.Expr, pl.Expr]  # (where a row breaks it, the reason: spelled out for those rows only)


def row_rules(facts: SourceFacts, unparsed: pl.Expr | None = None) -> list[Rule]:
    """One ``(broken, reason)`` per rule. The reasons are evaluated on the breaking rows alone (``reasons``):
    over every row of Affection they would copy its ids and paths several times.

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
    rules: list[Rule] = [
        (pl.col(c.name).is_null() & ~(explained & (c.name == "value")), pl.lit(f"missing {c.name}"))
        for c in contract.columns
        if not c.nullable
    ]
    rules += [
        (value.is_nan(), pl.lit("missing value")),
        (is_label & ~pl.col("label").is_in(sorted(facts.labels)).fill_null(False),
         pl.format("unknown label '{}' (not in the {} vocabulary)", pl.col("label").fill_null("<null>"), pl.lit(facts.name))),
        (~is_label & low.is_null(), pl.format("unknown measure '{}'", pl.col("measure"))),
        (~is_label & ~value.is_nan() & ((value < low) | (value > high)),
         pl.format("{} {} outside its scale {}..{}", pl.col("measure"), value, low, high)),
        ((pl.col("measure") == "label_prob") & ((value < 0) | (value > 1)), pl.format("probability {} outside 0..1", value)),
        ((pl.col("measure") == "label_vote") & (value < 0), pl.format("negative vote count {}", value)),
        (pl.col("image_path").str.contains(_ESCAPING_PATH),
         pl.format("image path '{}' escapes the source root", pl.col("image_path"))),
        *(
            (pl.col(name).str.contains("\x00", literal=True),
             pl.format("{} '{}' {}", pl.lit(name.replace("_", " ")),
                       pl.col(name).str.replace_all("\x00", "\\x00", literal=True), pl.lit(NUL_REASON)))
            for name in ("image_id", "image_path")
        ),
    ]
    return rules


def broken(rules: list[Rule]) -> pl.Expr:
    """True where a row breaks any of ``rules``."""
    return pl.any_horizontal([where.fill_null(False) for where, _ in rules])


def reasons(rules: list[Rule]) -> list[pl.Expr]:
    """Each rule's reason where the row breaks it, else null (evaluate on the breaking rows only)."""
    return [pl.when(where).then(reason) for where, reason in rules]


def _probability_sums() -> pl.Expr:
    group = ["source_file", "image_id", "subject", "annotator"]
    return pl.col("value").filter(pl.col("measure") == "label_prob").sum().over(group)


_FAULTS_NAMED = 3  # a whole-image reason names this many faults, then counts the rest


def _quarantine_whole_images(
    kept: pl.DataFrame, bad: pl.DataFrame, faults: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(kept, bad)`` with the kept rows of every image at fault moved to ``bad`` (see the module docstring):
    ``faults`` are ``image_id, fault`` of records the reader rejected. Only the rows of those images are touched
    (a lookup over every row of Affection would copy its ids)."""
    bad_labels = bad.filter(pl.col("measure").is_in(_label_measures())).select(
        "image_id", pl.format("{} line {}, {} {}: {}", "source_file", "source_line", "measure",
                              pl.col("label").fill_null(""), "_reason").alias("fault"))
    found = pl.concat([bad_labels, *([faults] if faults is not None else [])], how="vertical")
    if found.is_empty():
        return kept, bad
    named = found.unique(maintain_order=True).group_by("image_id", maintain_order=True).agg(
        pl.col("fault").head(_FAULTS_NAMED).str.join("; "), pl.len().alias("faults"))
    summary = named.select("image_id", pl.when(pl.col("faults") > _FAULTS_NAMED).then(
        pl.format("{} (and {} more)", "fault", pl.col("faults") - _FAULTS_NAMED)).otherwise("fault").alias("_fault"))
    hit = kept.select(pl.col("image_id").is_in(summary["image_id"].implode())).to_series()
    if not hit.any():
        return kept, bad
    moved = kept.filter(hit).join(summary, on="image_id", how="left", maintain_order="left").with_columns(
        pl.format("image '{}' quarantined whole, no partial distribution kept: {}", "image_id", "_fault").alias("_reason")
    ).drop("_fault")
    return kept.filter(~hit), pl.concat([bad, moved], how="vertical").sort("_row")


def split_valid(
    rows: pl.DataFrame, source: str, faults: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate canonical rows of one source.

    Returns ``(kept, quarantined)``: kept rows carry their rating scale and renormalised probabilities;
    quarantined rows are ``file, line, reason, record`` with every broken rule named, in the order of ``rows``.
    ``faults`` (``image_id, fault``): images the reader rejected a record of; for a source with labels they and
    every image with a bad label fact are quarantined whole (module docstring).
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
    rows = contract.conform(rows).with_columns(rows["_parse"]).with_row_index("_row")
    tolerance = float(contract.rules["probability_reject"])
    is_prob = pl.col("measure") == "label_prob"
    # The sums are a window over every row's image key: computed only where there are probabilities.
    has_probabilities = rows.select(is_prob.any()).item()
    if has_probabilities:
        rows = rows.with_columns(_probability_sums().alias("_sum"))
    rules = [
        (pl.col("_parse").is_not_null(), pl.col("_parse")),
        *row_rules(facts, unparsed=pl.col("_parse").is_not_null()),
        *([(is_prob & ((pl.col("_sum") - 1).abs() > tolerance),
            pl.format("probabilities of the image sum to {}, not 1", pl.col("_sum").round(6)))]
          if has_probabilities else []),
    ]
    # Reasons are spelled out for the breaking rows only; a filter runs only where something is filtered.
    mask = rows.select(broken(rules)).to_series()
    bad = rows.filter(mask).with_columns(pl.concat_str(reasons(rules), separator="; ", ignore_nulls=True).alias("_reason"))
    kept = rows.filter(~mask) if bad.height else rows
    if facts.labels:
        kept, bad = _quarantine_whole_images(kept, bad, faults)
    kept = kept.drop("_row", "_parse", "_sum", strict=False)
    lows = {name: lo for name, (lo, _) in facts.ratings.items()}
    highs = {name: hi for name, (_, hi) in facts.ratings.items()}
    kept = kept.with_columns(
        pl.col("measure").replace_strict(lows, default=None, return_dtype=pl.Float64).alias("scale_min"),
        pl.col("measure").replace_strict(highs, default=None, return_dtype=pl.Float64).alias("scale_max"),
        # A distribution kept is whole and sums to 1 within probability_reject (Emotion6's rows: 1 +- 2e-6):
        # it is renormalised exactly (over the kept rows: whole distributions only).
        (pl.when(is_prob).then(pl.col("value") / _probability_sums()).otherwise(pl.col("value"))
         if has_probabilities else pl.col("value")).alias("value"),
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
    is_prob = pl.col("measure") == "label_prob"
    rules = row_rules(facts) + [
        (pl.col("source") != source, pl.format("row of source '{}' in partition", pl.col("source"))),
        *([(is_prob & ((_probability_sums() - 1).abs() > 1e-9), pl.lit("probabilities do not sum to 1"))]
          if frame.select(is_prob.any()).item() else []),
    ]
    # Reasons are spelled out for the breaking rows only (a list of reasons per row of Affection is ~300 MB).
    breaking = frame.filter(broken(rules))
    counted = (
        breaking.select(pl.concat_list([r.fill_null("") for r in reasons(rules)]).alias("r"))
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
