"""Data contracts: the YAML files in ``data_contracts/`` read into typed schemas and checks.

Contracts are data so that reviewers can read them without reading code; this module only turns
them into polars schemas and lists of violations (an empty list means the frame honours the contract),
and the source declarations of ``sources.yaml`` into validated ``SourceFacts``.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from eemo_pipeline.settings import CONTRACTS_ENV, PACKAGED_CONTRACTS

_DTYPES: dict[str, pl.DataType] = {
    "String": pl.String(),
    "Int32": pl.Int32(),
    "Int64": pl.Int64(),
    "Float64": pl.Float64(),
    "Boolean": pl.Boolean(),
    "List[String]": pl.List(pl.String()),
}


_contracts_dir = PACKAGED_CONTRACTS


def contracts_dir() -> Path:
    """Folder of the contract files: the copy inside the package (the repository's ``data_contracts/``) unless an edge chose another one with
    :func:`use_contracts_dir` (this module reads no environment)."""
    return _contracts_dir


def use_contracts_dir(directory: Path | str) -> None:
    """Read the contracts from ``directory`` from now on (the edges pass ``Settings.contracts_dir``, i.e.
    ``EEMO_CONTRACTS``); forgets the contracts and declarations loaded so far."""
    global _contracts_dir
    if Path(directory) == _contracts_dir:
        return
    _contracts_dir = Path(directory)
    _load_yaml.cache_clear()
    table_contract.cache_clear()
    source_declarations.cache_clear()


@functools.cache
def _load_yaml(name: str) -> dict[str, Any]:
    path = contracts_dir() / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"data contract {path} not found (set {CONTRACTS_ENV} to the data_contracts folder)")
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def with_contract_versions(code_version: str, *contracts: str) -> str:
    """``code_version`` joined with the ``version`` of each contract file (``<name>.yaml``) an asset reads, e.g.
    ``"2+vad_bounds.v1"``, so that bumping a contract's version makes those assets stale. A contract that is
    missing or has no version counts as ``v?`` (the asset fails on it when it runs)."""
    parts = [code_version]
    for name in contracts:
        try:
            with (contracts_dir() / f"{name}.yaml").open(encoding="utf-8") as handle:
                document = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError):
            document = None
        version = document.get("version") if isinstance(document, dict) else None
        parts.append(f"{name}.v{'?' if version is None else version}")
    return "+".join(parts)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    nullable: bool
    doc: str


@dataclass(frozen=True)
class TableContract:
    name: str
    version: int
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    rules: dict[str, Any]

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Select the contract's columns in order, cast to their dtypes, add absent ones as nulls."""
        return frame.select(
            [
                pl.col(c.name).cast(c.dtype) if c.name in frame.columns else pl.lit(None, c.dtype).alias(c.name)
                for c in self.columns
            ]
        )

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def schema_violations(self, frame: pl.DataFrame) -> list[str]:
        """Missing, extra or mistyped columns."""
        problems = []
        for column in self.columns:
            if column.name not in frame.schema:
                problems.append(f"column {column.name!r} is missing")
            elif frame.schema[column.name] != column.dtype:
                problems.append(f"column {column.name!r} is {frame.schema[column.name]}, expected {column.dtype}")
        extra = sorted(set(frame.columns) - set(self.column_names))
        if extra:
            problems.append(f"unexpected columns {extra}")
        return problems

    def null_violations(self, frame: pl.DataFrame) -> list[str]:
        """Nulls in columns the contract declares non-nullable."""
        required = [c.name for c in self.columns if not c.nullable and c.name in frame.columns]
        if not required or frame.is_empty():
            return []
        counts = frame.select(pl.col(required).null_count()).row(0, named=True)
        return [f"{count} null values in non-nullable column {name!r}" for name, count in counts.items() if count]

    def violations(self, frame: pl.DataFrame) -> list[str]:
        """Schema problems; with a sound schema, nulls in non-nullable columns and duplicate keys."""
        return self.schema_violations(frame) or self.null_violations(frame) + self.key_violations(frame)

    def key_violations(self, frame: pl.DataFrame) -> list[str]:
        """Rows sharing the same key."""
        if not self.key or frame.is_empty():
            return []
        duplicated = frame.select(self.key).is_duplicated().sum()
        return [f"{duplicated} rows share a key {list(self.key)} with another row"] if duplicated else []


@functools.cache
def table_contract(name: str) -> TableContract:
    raw = _load_yaml(name)
    columns = tuple(
        Column(c["name"], _DTYPES[c["dtype"]], bool(c["nullable"]), c.get("doc", "")) for c in raw["columns"]
    )
    return TableContract(raw["name"], int(raw["version"]), tuple(raw.get("key", ())), columns, raw.get("rules", {}))


# The per-source rules that code implements, by the names a declaration in sources.yaml may use.
READER_PACKAGE = "eemo_pipeline.sources"  # a source's reader is the module READER_PACKAGE.<name>
RANKING_RULES = ("distribution", "selections")  # labels/mapping.py: how mapped_labels orders targets
DOMINANT_RULES = ("sum", "count", "selections")  # subsets/assess.py: how the native dominant label is weighed
PAIR_CATEGORY_FIELDS = ("attribute", "image_id")  # sources/categories.py: where a pair's content category is read
_SOURCE_KEYS = frozenset({"labels", "ratings", "taxonomy", "ranking_rule", "assess", "qa", "annotators",
                          "min_rebuild_share", "release", "max_file_bytes"})
_ASSESS_KEYS = frozenset({"dominant_emotion", "emotion_ranking"})
_QA_KEYS = frozenset({"rankings", "pair_category"})


class DeclarationError(ValueError):
    """A source declaration in ``sources.yaml`` is malformed; the message names the file and the source."""


@dataclass(frozen=True)
class SourceFacts:
    """One source data set as declared in ``data_contracts/sources.yaml``.

    ``vocabulary`` holds the native labels in declared order (Assess's fixed candidate order); ``taxonomy``
    names the ``label_taxonomy.yaml`` taxonomy they map through (None for sources without labels);
    ``dominant_emotion`` is Assess's ``(measure, rule)`` for the native dominant label, None when the source
    gives no dominant-emotion instructions; ``emotion_ranking`` marks a source of Assess's ranking task.
    ``annotators`` is the documented number of annotators per image (None when the source gives none);
    ``min_rebuild_share`` the share of the last good build's rows below which a rebuild is held back.
    ``release`` maps an annotation file of the official release (path relative to the root) to its number of
    records: evidence for whether a file without its final line break was cut (``sources/reading.py``).
    ``max_file_bytes`` bounds each annotation file the reader reads (None: the raw_annotations rule).
    ``qa_rankings`` marks a source of EEmoDB-QA's ranking task; ``pair_category`` is ``(field, value)``, where
    a pair question's content category is read (``attribute``: a key of raw_annotations.attributes;
    ``image_id``: the group of a regular expression over image_id), None when every image is compatible.
    """

    name: str
    vocabulary: tuple[str, ...]
    ratings: dict[str, tuple[float, float]]
    taxonomy: str | None = None
    ranking_rule: str = "distribution"
    dominant_emotion: tuple[str, str] | None = None
    emotion_ranking: bool = False
    annotators: int | None = None
    min_rebuild_share: float = 0.5
    qa_rankings: bool = False
    pair_category: tuple[str, str] | None = None
    release: dict[str, int] = field(default_factory=dict)
    max_file_bytes: int | None = None

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self.vocabulary)

    @property
    def reader(self) -> str:
        return f"{READER_PACKAGE}.{self.name}"


def _reader_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _ratings(raw: Any, fail: Callable[[str], DeclarationError], label_measures: set[str]) -> dict[str, tuple[float, float]]:
    if not isinstance(raw, dict):
        raise fail(f"ratings must map a rating name to [low, high], got {raw!r}")
    ratings = {}
    for measure, scale in raw.items():
        if measure in label_measures:
            raise fail(f"rating {measure!r} reuses a label measure name")
        numeric = isinstance(scale, list) and len(scale) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale
        )
        if not numeric or not scale[0] < scale[1]:
            raise fail(f"rating {measure!r} needs a scale [low, high] of two numbers with low < high, got {scale!r}")
        ratings[str(measure)] = (float(scale[0]), float(scale[1]))
    return ratings


def _source_facts(name: str, entry: Any, taxonomies: dict[str, frozenset[str]], label_measures: set[str],
                  file: Path | str) -> SourceFacts:
    def fail(problem: str) -> DeclarationError:
        return DeclarationError(f"{file}: source {name!r}: {problem}")

    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise fail("the name must be lower case letters, digits and '_' (it names the reader module)")
    if not isinstance(entry, dict):
        raise fail(f"the declaration must be a mapping, got {entry!r}")
    unknown = sorted(set(entry) - _SOURCE_KEYS)
    if unknown:
        raise fail(f"unknown keys {unknown}; allowed: {sorted(_SOURCE_KEYS)}")
    reader = f"{READER_PACKAGE}.{name}"
    if not _reader_exists(reader):
        raise fail(f"no reader module {reader} (eemo_pipeline/sources/{name}.py with read and write_sample)")
    vocabulary = tuple(str(label) for label in entry.get("labels") or ())
    if len(set(vocabulary)) != len(vocabulary):
        raise fail("labels are listed more than once")
    ratings = _ratings(entry.get("ratings") or {}, fail, label_measures)
    taxonomy = entry.get("taxonomy")
    if vocabulary and taxonomy is None:
        raise fail("labels need a taxonomy of label_taxonomy.yaml to map through")
    if taxonomy is not None:
        if not vocabulary:
            raise fail(f"taxonomy {taxonomy!r} is declared, but the source has no labels")
        if taxonomy not in taxonomies:
            raise fail(f"unknown taxonomy {taxonomy!r}; label_taxonomy.yaml has {sorted(taxonomies)}")
        unmapped = [label for label in vocabulary if label not in taxonomies[taxonomy]]
        if unmapped:
            raise fail(f"labels {unmapped} have no mapping in taxonomy {taxonomy!r} of label_taxonomy.yaml")
    ranking_rule = entry.get("ranking_rule", "distribution")
    if ranking_rule not in RANKING_RULES:
        raise fail(f"unknown ranking_rule {ranking_rule!r}; one of {list(RANKING_RULES)}")
    assess = entry.get("assess") or {}
    if not isinstance(assess, dict) or set(assess) - _ASSESS_KEYS:
        raise fail(f"assess must be a mapping with keys among {sorted(_ASSESS_KEYS)}, got {assess!r}")
    dominant = assess.get("dominant_emotion")
    if dominant is not None:
        if not isinstance(dominant, dict) or set(dominant) != {"measure", "rule"}:
            raise fail(f"assess.dominant_emotion needs exactly measure and rule, got {dominant!r}")
        if dominant["measure"] not in label_measures:
            raise fail(f"assess.dominant_emotion measure {dominant['measure']!r} is not one of {sorted(label_measures)}")
        if dominant["rule"] not in DOMINANT_RULES:
            raise fail(f"assess.dominant_emotion rule {dominant['rule']!r} is not one of {list(DOMINANT_RULES)}")
        dominant = (str(dominant["measure"]), str(dominant["rule"]))
    ranking = assess.get("emotion_ranking", False)
    if not isinstance(ranking, bool):
        raise fail(f"assess.emotion_ranking must be true or false, got {ranking!r}")
    if (dominant or ranking) and not vocabulary:
        raise fail("assess tasks over labels need the source's labels")
    if ranking and ranking_rule != "distribution":
        raise fail("assess.emotion_ranking needs ranking_rule distribution (rankings from published distributions)")
    annotators = entry.get("annotators")
    if annotators is not None and (isinstance(annotators, bool) or not isinstance(annotators, int) or annotators < 1):
        raise fail(f"annotators must be a positive whole number, got {annotators!r}")
    share = entry.get("min_rebuild_share", 0.5)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise fail(f"min_rebuild_share must be a number in 0..1, got {share!r}")
    max_bytes = entry.get("max_file_bytes")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise fail(f"max_file_bytes must be a positive whole number of bytes, got {max_bytes!r}")
    qa_rankings, pair_category = _qa_rules(entry.get("qa") or {}, fail, bool(vocabulary))
    return SourceFacts(name, vocabulary, ratings, taxonomy, ranking_rule, dominant, ranking, annotators, float(share),
                       qa_rankings, pair_category, _release(entry.get("release") or {}, fail), max_bytes)


def _release(release: Any, fail: Callable[[str], DeclarationError]) -> dict[str, int]:
    if not isinstance(release, dict):
        raise fail(f"release must map a file to {{records: <count>}}, got {release!r}")
    counts = {}
    for file, facts in release.items():
        records = facts.get("records") if isinstance(facts, dict) and set(facts) == {"records"} else None
        if isinstance(records, bool) or not isinstance(records, int) or records < 1:
            raise fail(f"release file {file!r} needs exactly {{records: <a positive whole number>}}, got {facts!r}")
        counts[str(file)] = records
    return counts


def _qa_rules(qa: Any, fail: Callable[[str], DeclarationError], labelled: bool) -> tuple[bool, tuple[str, str] | None]:
    if not isinstance(qa, dict) or set(qa) - _QA_KEYS:
        raise fail(f"qa must be a mapping with keys among {sorted(_QA_KEYS)}, got {qa!r}")
    rankings = qa.get("rankings", False)
    if not isinstance(rankings, bool):
        raise fail(f"qa.rankings must be true or false, got {rankings!r}")
    if rankings and not labelled:
        raise fail("qa.rankings needs the source's labels")
    category = qa.get("pair_category")
    if category is None:
        return rankings, None
    if not isinstance(category, dict) or len(category) != 1 or next(iter(category)) not in PAIR_CATEGORY_FIELDS:
        raise fail(f"qa.pair_category needs exactly one of {list(PAIR_CATEGORY_FIELDS)}, got {category!r}")
    where, value = next(iter(category.items()))
    if not isinstance(value, str) or not value:
        raise fail(f"qa.pair_category {where} must be a non-empty string, got {value!r}")
    if where == "image_id":
        try:
            groups = re.compile(value).groups
        except re.error as error:
            raise fail(f"qa.pair_category image_id {value!r} is not a regular expression: {error}") from None
        if groups != 1:
            raise fail(f"qa.pair_category image_id {value!r} needs exactly one group, has {groups}")
    return rankings, (where, value)


def parse_source_declarations(document: Any, taxonomies: dict[str, frozenset[str]], label_measures: set[str],
                              file: Path | str) -> dict[str, SourceFacts]:
    """Validate a ``sources.yaml`` document against the taxonomies (name -> labels) and the label measures of
    raw_annotations; a ``DeclarationError`` names ``file`` and the source at fault."""
    sources = document.get("sources") if isinstance(document, dict) else None
    if not isinstance(sources, dict) or not sources:
        raise DeclarationError(f"{file}: needs a non-empty mapping 'sources: {{<name>: <declaration>}}'")
    return {str(name): _source_facts(str(name), entry, taxonomies, label_measures, file)
            for name, entry in sources.items()}


@functools.cache
def source_declarations() -> dict[str, SourceFacts]:
    """Every source declared in ``data_contracts/sources.yaml``, in file order (the partition order), validated."""
    taxonomies = {name: frozenset(entry.get("labels") or ())
                  for name, entry in _load_yaml("label_taxonomy")["taxonomies"].items()}
    label_measures = set(table_contract("raw_annotations").rules["label_measures"])
    return parse_source_declarations(_load_yaml("sources"), taxonomies, label_measures, contracts_dir() / "sources.yaml")


def source_facts(source: str) -> SourceFacts:
    declarations = source_declarations()
    if source not in declarations:
        raise KeyError(f"unknown source {source!r}; known: {sorted(declarations)}")
    return declarations[source]
