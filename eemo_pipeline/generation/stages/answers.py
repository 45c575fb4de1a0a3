"""The output of every generation stage: the ``generated_text`` rows (``data_contracts/generated_text.yaml``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.generation.stages.kinds import PAIR_KINDS
from eemo_pipeline.generation.work import ChatAnswer, WorkItem


def answers_frame(
    items: list[WorkItem], answers: Mapping[str, ChatAnswer], quarantined_keys: Iterable[str] = ()
) -> pl.DataFrame:
    """The ``generated_text`` rows (``data_contracts/generated_text.yaml``) of one stage, in item order.

    Quarantined items get no row. Every other item must have an answer: a missing one raises ValueError
    (a stage that lost answers should fail, not shrink silently). Answers for keys outside ``items`` are
    ignored.
    """
    quarantined = set(quarantined_keys)
    missing = [item.key for item in items if item.key not in quarantined and item.key not in answers]
    if missing:
        raise ValueError(f"{len(missing)} items have neither an answer nor a quarantine record, e.g. {missing[:3]}")
    rows = []
    for item in items:
        if item.key in quarantined:
            continue
        answer = answers[item.key]
        rows.append(
            {
                "key": item.key,
                "source": item.context.get("source"),
                "image_id": item.context.get("image_id"),
                "image_id_b": item.context.get("image_id_b"),
                "template": item.template,
                "template_version": item.template_version,
                "dimension": item.context.get("dimension"),
                "text": answer.text,
                "model": answer.model,
                "cached": answer.cached,
                "attempts": answer.attempts,
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            }
        )
    contract = table_contract("generated_text")
    if not rows:
        return contract.empty()
    return contract.conform(pl.DataFrame(rows, schema=contract.schema))


def generated_text_violations(frame: pl.DataFrame) -> list[str]:
    """Contract problems of a generated_text frame: schema, nulls, duplicate keys, pair columns consistent."""
    contract = table_contract("generated_text")
    problems = contract.violations(frame)
    if problems or frame.is_empty():
        return problems
    is_pair = pl.col("template").is_in(list(PAIR_KINDS))
    bad_b = frame.filter(is_pair != pl.col("image_id_b").is_not_null()).height
    bad_dimension = frame.filter((pl.col("template") == "pair_dimension") != pl.col("dimension").is_not_null()).height
    if bad_b:
        problems.append(f"{bad_b} rows have image_id_b set for a single-image template or missing for a pair")
    if bad_dimension:
        problems.append(f"{bad_dimension} rows have dimension set outside pair_dimension or missing in it")
    return problems
