"""The VAD normalisation as versioned data: the contract file, its map, and the shipped version's provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
import yaml

from eemo_pipeline.settings import PACKAGED_CONTRACTS
from eemo_pipeline.vad.bounds import (
    CONTRACT_FILE,
    VadBounds,
    bounds_path,
    load_vad_bounds,
    shipped_vad_bounds,
)
from eemo_pipeline.vad.lexicon import lexicon_digest, read_lexicon, write_sample_lexicon
from eemo_pipeline.vad.reference import Corpus, read_corpus, reference_document
from eemo_pipeline.vad.synthesis import keyword_rule_digest, vad_scores
from eemo_pipeline_tests.vad.comments import NEGATIVE_EMOTIONS, affection_annotations, artworks

RELEASED_TEST_DATA = os.environ.get("EEMO_RELEASED_TEST_DATA")  # the authors' test_data/ folder, when at hand
SHIPPED = bounds_path(PACKAGED_CONTRACTS)


@pytest.fixture(scope="module")
def sample_lexicon(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("lexicon") / "warriner.csv"
    write_sample_lexicon(path)
    return read_lexicon(path)


def contract_copy(tmp_path: Path, **changes: object) -> Path:
    """A copy of the shipped contract with top-level fields replaced."""
    document = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    document.update(changes)
    path = tmp_path / CONTRACT_FILE
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_the_map_goes_through_its_four_knots_keeps_order_and_pins_nothing_inside_the_scale() -> None:
    bounds = VadBounds(version=1, quantiles=(0.01, 0.99), bounds={d: (4.0, 7.0) for d in ("valence", "arousal",
                                                                                          "dominance")})
    raw = pl.Series("raw", [1.0, 1.26, 2.5, 4.0, 5.5, 7.0, 8.0, 8.53, 9.0])
    mapped = pl.select(bounds.normalize(pl.lit(raw), "valence")).to_series()
    expected = [0.0, 0.26 / 3 * 0.01, 1.5 / 3 * 0.01, 0.01, 0.5, 0.99, 0.99 + 0.005, 0.99 + 1.53 / 2 * 0.01, 1.0]
    assert mapped.to_list() == pytest.approx(expected, abs=1e-12)
    assert mapped.is_sorted() and mapped.n_unique() == raw.len()
    # Warriner's extreme norms (1.26 and 8.53) cannot reach 0 or 1: only the scale's ends do.
    assert 0.0 < mapped[1] and mapped[7] < 1.0


def test_the_shipped_contract_loads_with_its_version_and_provenance() -> None:
    bounds = shipped_vad_bounds()
    assert bounds == load_vad_bounds(SHIPPED)
    assert bounds.version >= 1 and bounds.quantiles == (0.01, 0.99)
    for low, high in bounds.bounds.values():
        assert 1.0 < low < high < 9.0
    assert bounds.lineage()["contract"] == "vad_bounds" and bounds.lineage()["version"] == bounds.version
    for field in ("corpus", "corpus_sha256", "lexicon_sha256", "keyword_rule_sha256", "command"):
        assert bounds.provenance[field], field


def test_the_shipped_contract_was_computed_under_todays_keyword_rule() -> None:
    # Changing the stop list, word pattern or lemma language without `eemo vad-bounds --write` fails here.
    assert shipped_vad_bounds().provenance["keyword_rule_sha256"] == keyword_rule_digest()


def test_the_shipped_contract_was_computed_with_the_installed_lexicon(real_lexicon: pl.DataFrame) -> None:
    provenance = shipped_vad_bounds().provenance
    assert provenance["lexicon_sha256"] == lexicon_digest(real_lexicon)
    assert provenance["lexicon_words"] == real_lexicon.height == 13_915


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "vad_scores"}, "not a vad_bounds contract"),
        ({"version": 0}, "version must be a positive integer"),
        ({"method": "percentile"}, "method 'percentile'"),
        ({"quantiles": [0.99, 0.01]}, "quantiles"),
        ({"bounds": {"valence": [5, 6], "arousal": [4, 5]}}, "exactly valence, arousal, dominance"),
        ({"bounds": {"valence": [6, 5], "arousal": [4, 5], "dominance": [4, 5]}}, "bounds.valence"),
        ({"bounds": {"valence": [5, "x"], "arousal": [4, 5], "dominance": [4, 5]}}, "two numbers"),
    ],
)
def test_a_bad_contract_is_refused_naming_file_and_field(tmp_path: Path, changes: dict, message: str) -> None:
    path = contract_copy(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as error:
        load_vad_bounds(path)
    assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError, match="eemo vad-bounds"):
        load_vad_bounds(tmp_path / "missing.yaml")


def test_results_follow_the_contract_file(tmp_path: Path, sample_lexicon: pl.DataFrame) -> None:
    annotations = affection_annotations(artworks(sample_lexicon, 40, seed=2))
    shipped = vad_scores("affection", annotations, sample_lexicon)
    assert shipped.equals(vad_scores("affection", annotations, sample_lexicon, load_vad_bounds(SHIPPED)))
    wider = {"valence": [3.0, 8.0], "arousal": [3.0, 6.0], "dominance": [3.0, 7.0]}
    changed = vad_scores("affection", annotations, sample_lexicon,
                         load_vad_bounds(contract_copy(tmp_path, version=9, bounds=wider)))
    assert changed["valence_raw"].equals(shipped["valence_raw"])  # the keyword means do not depend on the bounds
    assert (changed["valence"] - shipped["valence"]).abs().max() > 0.05
    low, high = wider["valence"]
    expected = [0.01 + (raw - low) / (high - low) * 0.98 for raw in changed["valence_raw"]]
    inside = [(v, e) for v, e, raw in zip(changed["valence"], expected, changed["valence_raw"]) if low <= raw <= high]
    assert inside and [v for v, _ in inside] == pytest.approx([e for _, e in inside], abs=1e-12)


def test_a_reference_too_small_for_percentiles_is_refused(sample_lexicon: pl.DataFrame) -> None:
    items = artworks(sample_lexicon, 12, seed=3)
    texts = pl.DataFrame([(str(i["new_id"]), t) for i in items for t in i["utterance"]],
                         schema=["image_id", "text"], orient="row")
    with pytest.raises(ValueError, match="at least 200"):
        reference_document(Corpus(texts, "small.json", "artemis_json", "0" * 64), sample_lexicon, "s.csv", None)


@pytest.mark.skipif(not RELEASED_TEST_DATA, reason="set EEMO_RELEASED_TEST_DATA to the authors' test_data/ folder")
def test_released_artemis_comments_reproduce_the_contract_and_spread(real_lexicon: pl.DataFrame) -> None:
    path = Path(RELEASED_TEST_DATA, "test_ArtEmis.json")
    shipped = shipped_vad_bounds()
    corpus = read_corpus(path)
    recomputed = reference_document(corpus, real_lexicon, "NoVAD_v2013.csv", shipped)
    assert recomputed["version"] == shipped.version and recomputed["provenance"] == shipped.provenance
    assert {d: tuple(b) for d, b in recomputed["bounds"].items()} == shipped.bounds
    # Spread of the pipeline's values on these real comments (10 of 10 bins, valence gap 0.31 measured).
    items = json.loads(path.read_text(encoding="utf-8"))
    scores = vad_scores("affection", affection_annotations(items), real_lexicon)
    assert scores["valence"].null_count() == 0
    for dimension in ("valence", "arousal", "dominance"):
        assert (scores[dimension] * 10).floor().clip(0, 9).n_unique() == 10, dimension
    sides = pl.DataFrame({"image_id": [f"art/{item['new_id']:05d}" for item in items],
                          "negative": [item["dominant_emotion"] in NEGATIVE_EMOTIONS for item in items]})
    means = dict(scores.join(sides, on="image_id").group_by("negative").agg(pl.col("valence").mean()).iter_rows())
    assert means[False] - means[True] >= 0.2
