"""Adding a source is one declaration in data_contracts/sources.yaml plus its reader module: everything else
(partitions, label mapping, Assess rules, definitions) follows from the declaration, checked here."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any

import polars as pl
import pytest
import yaml

from eemo_pipeline.contracts import DeclarationError, contracts_dir, parse_source_declarations, source_declarations
from eemo_pipeline.labels.taxonomy import mapping_table, taxonomy_document, taxonomy_of
from eemo_pipeline.sources import SOURCES, source_module
from eemo_pipeline.tasks.dominant_emotion import dec_rules
from eemo_pipeline.tasks.ranking import ranking_sources

FILE = "data_contracts/sources.yaml"
# The sources of REFERENCE.md, in partition order; a source added later is appended after them.
SEVEN = ("affection", "abstract8", "emotic", "emotion6", "findingemo", "gaped", "oasis")
LABEL_MEASURES = {"label_vote", "label_prob", "label_choice", "label_combined"}
TAXONOMIES = {"mikels8": frozenset({"Amusement", "Anger", "Awe", "Content", "Disgust", "Excitement", "Fear", "Sad"})}


def test_sources_are_the_declared_ones_in_file_order() -> None:
    assert SOURCES == tuple(source_declarations())
    assert SOURCES[: len(SEVEN)] == SEVEN  # partitions keep their order: new sources are appended


@pytest.mark.parametrize("source", SOURCES)
def test_every_declared_source_has_a_reader_module_with_read_and_write_sample(source: str) -> None:
    module = source_module(source)
    assert module.__name__ == f"eemo_pipeline.sources.{source}"
    assert callable(module.read) and callable(module.write_sample)


@pytest.mark.parametrize("source", SOURCES)
def test_every_label_maps_through_a_declared_taxonomy_and_has_a_definition(source: str) -> None:
    from eemo_pipeline.training.embeddings import emotion_definitions

    facts = source_declarations()[source]
    if not facts.vocabulary:
        assert taxonomy_of(source) is None and facts.dominant_emotion is None
        return
    assert facts.taxonomy in taxonomy_document()["taxonomies"]
    mapped = set(mapping_table().filter(pl.col("taxonomy") == facts.taxonomy)["label"])
    assert set(facts.vocabulary) <= mapped
    _, definitions = emotion_definitions()
    assert [label for label in facts.vocabulary if label.lower() not in definitions] == []


def test_assess_rules_are_read_from_the_declaration() -> None:
    declared = source_declarations()
    assert dec_rules() == {s: facts.dominant_emotion for s, facts in declared.items() if facts.dominant_emotion}
    assert {s: rule for s, rule in dec_rules().items() if s in SEVEN} == {
        "abstract8": ("label_vote", "sum"),
        "emotion6": ("label_prob", "sum"),
        "affection": ("label_choice", "count"),
        "findingemo": ("label_choice", "count"),
        "emotic": ("label_choice", "selections"),
    }
    assert ranking_sources() == [s for s, facts in declared.items() if facts.emotion_ranking]
    assert [s for s in ranking_sources() if s in SEVEN] == ["emotion6"]
    assert [s for s in SEVEN if declared[s].ranking_rule == "selections"] == ["emotic"]


def test_an_eighth_source_needs_only_its_declaration_and_reader_module(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "eemo_pipeline.sources.newsource"
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    monkeypatch.setitem(sys.modules, name, module)
    document = yaml.safe_load((contracts_dir() / "sources.yaml").read_text(encoding="utf-8"))
    document["sources"]["newsource"] = {
        "labels": ["Awe", "Fear"], "ratings": {"valence": [1, 5]}, "taxonomy": "mikels8",
        "assess": {"dominant_emotion": {"measure": "label_vote", "rule": "sum"}},
    }
    taxonomies = {name: frozenset(entry["labels"]) for name, entry in taxonomy_document()["taxonomies"].items()}
    declared = parse_source_declarations(document, taxonomies, LABEL_MEASURES, FILE)
    assert list(declared)[-1] == "newsource"
    facts = declared["newsource"]
    assert facts.reader == name and facts.labels == {"Awe", "Fear"} and facts.ratings == {"valence": (1.0, 5.0)}
    assert facts.dominant_emotion == ("label_vote", "sum") and facts.ranking_rule == "distribution"


def _declare(**entry: Any) -> dict[str, Any]:
    base = {"labels": ["Awe", "Fear"], "taxonomy": "mikels8", "ratings": {"valence": [1, 9]}}
    return {"sources": {entry.pop("name", "abstract8"): {**base, **entry}}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_declare(taxonomy="mikels9"), "source 'abstract8': unknown taxonomy 'mikels9'"),
        (_declare(name="nosuchsource"), "source 'nosuchsource': no reader module eemo_pipeline.sources.nosuchsource"),
        (_declare(ratings={"valence": [9, 1]}), "source 'abstract8': rating 'valence' needs a scale [low, high]"),
        (_declare(ratings={"valence": [1]}), "rating 'valence' needs a scale"),
        (_declare(ratings={"valence": ["low", "high"]}), "rating 'valence' needs a scale"),
        (_declare(labels=["Awe", "Joy"]), "labels ['Joy'] have no mapping in taxonomy 'mikels8'"),
        (_declare(labels=["Awe", "Awe"]), "labels are listed more than once"),
        (_declare(taxonomy=None), "labels need a taxonomy"),
        (_declare(labels=[]), "taxonomy 'mikels8' is declared, but the source has no labels"),
        (_declare(taxonomi="mikels8"), "unknown keys ['taxonomi']"),
        (_declare(ranking_rule="votes"), "unknown ranking_rule 'votes'"),
        (_declare(assess={"dominant_emotion": {"measure": "valence", "rule": "sum"}}), "measure 'valence' is not one of"),
        (_declare(assess={"dominant_emotion": {"measure": "label_vote", "rule": "max"}}), "rule 'max' is not one of"),
        (_declare(assess={"ranking": True}), "assess must be a mapping with keys among"),
        (_declare(ranking_rule="selections", assess={"emotion_ranking": True}), "emotion_ranking needs ranking_rule"),
        (_declare(labels=[], taxonomy=None, assess={"emotion_ranking": True}), "assess tasks over labels need"),
        (_declare(name="Abstract-8"), "source 'Abstract-8': the name must be lower case"),
        (_declare(annotators=0), "annotators must be a positive whole number, got 0"),
        (_declare(annotators=12.5), "annotators must be a positive whole number"),
        (_declare(min_rebuild_share=1.5), "min_rebuild_share must be a number in 0..1, got 1.5"),
        (_declare(max_file_bytes=0), "max_file_bytes must be a positive whole number of bytes, got 0"),
        (_declare(max_file_bytes="4 MiB"), "max_file_bytes must be a positive whole number of bytes"),
        (_declare(qa={"ranking": True}), "qa must be a mapping with keys among"),
        (_declare(qa={"rankings": "yes"}), "qa.rankings must be true or false"),
        (_declare(labels=[], taxonomy=None, qa={"rankings": True}), "qa.rankings needs the source's labels"),
        (_declare(qa={"pair_category": {"column": "x"}}), "qa.pair_category needs exactly one of"),
        (_declare(qa={"pair_category": {"image_id": "^[^/]+/"}}), "needs exactly one group, has 0"),
        (_declare(qa={"pair_category": {"image_id": "(["}}), "is not a regular expression"),
        (_declare(qa={"pair_category": {"attribute": ""}}), "qa.pair_category attribute must be a non-empty string"),
        ({"sources": {}}, "needs a non-empty mapping"),
    ],
)
def test_a_bad_declaration_fails_on_load_naming_the_file_and_the_source(document: dict, message: str) -> None:
    with pytest.raises(DeclarationError) as error:
        parse_source_declarations(document, TAXONOMIES, LABEL_MEASURES, FILE)
    assert str(error.value).startswith(f"{FILE}: ")
    assert message in str(error.value)


def test_documented_annotators_and_rebuild_share_are_read_from_the_declaration() -> None:
    declared = source_declarations()
    assert declared["abstract8"].annotators == 13
    assert declared["emotion6"].annotators is None
    assert {declared[s].min_rebuild_share for s in SEVEN} == {0.5}


def test_qa_rules_are_read_from_the_declaration() -> None:
    from eemo_pipeline.sources.categories import content_categories
    from eemo_pipeline.subsets.qa import qa_ranking_sources

    # Rankings only where distributions or several annotators per image exist; FindingEmo has one label each.
    declared = source_declarations()
    assert qa_ranking_sources() == [s for s, facts in declared.items() if facts.qa_rankings]
    assert [s for s in qa_ranking_sources() if s in SEVEN] == ["affection", "abstract8", "emotic", "emotion6"]
    assert declared["oasis"].pair_category == ("attribute", "category")
    assert declared["emotic"].pair_category == ("attribute", "original_database")
    assert declared["emotion6"].pair_category is None and declared["abstract8"].pair_category is None
    raw = pl.DataFrame({
        "source": ["gaped", "gaped", "affection", "findingemo", "oasis", "oasis", "emotion6"],
        "image_id": ["Sp/Sp001", "Sp/Sp001", "coco_affective/1.jpg", "Run_2/Joyful young adults beach/a.jpg",
                     "Acorn 1", "Lake 2", "joy/1.jpg"],
        "attributes": [None, None, None, None, '{"category": "Object"}', '{"category": " Scene "}', None],
    })
    assert content_categories(raw).rows() == [
        ("affection", "coco_affective/1.jpg", "coco_affective"),
        ("findingemo", "Run_2/Joyful young adults beach/a.jpg", "beach"),
        ("gaped", "Sp/Sp001", "Sp"),
        ("oasis", "Acorn 1", "Object"),
        ("oasis", "Lake 2", "Scene"),
    ]


def test_the_readme_adding_a_source_walkthrough_matches_what_the_loader_checks() -> None:
    """Hostile probe: the README's "Adding a source" said "four files, no existing one edited" (sources.yaml gets an
    entry) and left out rules the loader enforces (the name, the measures a dominant_emotion rule may use)."""
    import inspect
    import re
    from pathlib import Path

    from eemo_pipeline import contracts
    from eemo_pipeline.sources import base, emotion6

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Adding a source", 1)[1].split("\n## ", 1)[0]
    quoted = set(re.findall(r"`([^`]+)`", section))
    words = set(re.findall(r"[A-Za-z_]+", " ".join(quoted)))
    rules = {*contracts._SOURCE_KEYS, *contracts._ASSESS_KEYS, *contracts._QA_KEYS, *contracts.RANKING_RULES,
             *contracts.DOMINANT_RULES, *contracts.PAIR_CATEGORY_FIELDS, *LABEL_MEASURES, "records", "measure", "rule"}
    assert rules <= words, sorted(rules - words)
    assert "no existing one edited" not in section and "lower-case letters" in section
    assert f"read(root: Path) -> {emotion6.read.__annotations__['return']}" in quoted
    assert str(inspect.signature(emotion6.write_sample)) == "(root: 'Path') -> 'None'"
    helpers = {"require_file", "optional_file", "read_text", "read_csv_text", "read_file_bytes", "cut_last_record",
               "repeated_records", "require_rows", "clean_header"}
    assert helpers <= quoted and all(callable(getattr(base, name)) for name in helpers)
    tests = set(re.findall(r"`((?:sources|assets)/test_[a-z_]+\.py)`", section))
    assert tests and all((Path(__file__).resolve().parents[1] / test).is_file() for test in tests), tests
