"""``eemo vad-bounds``: the explicit recompute of the VAD normalisation contract, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.sample import write_sample
from eemo_pipeline.settings import CONTRACTS_ENV, LEXICON_ENV
from eemo_pipeline.vad.bounds import CONTRACT_FILE, load_vad_bounds
from eemo_pipeline.vad.lexicon import lexicon_digest, read_lexicon, write_sample_lexicon
from eemo_pipeline.vad.reference import file_sha256, reference_bounds
from eemo_pipeline.vad.synthesis import keyword_rule_digest, synthesize_vad
from eemo_pipeline_tests.vad.comments import artworks

EEMO = Path(sys.executable).with_name("eemo")


def eemo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (CONTRACTS_ENV, LEXICON_ENV)}
    return subprocess.run([str(EEMO), "vad-bounds", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pl.DataFrame]:
    """A corpus in the authors' ArtEmis JSON layout (comments written here) and the sample lexicon."""
    root = tmp_path_factory.mktemp("reference")
    lexicon_path = root / "warriner.csv"
    write_sample_lexicon(lexicon_path)
    lexicon = read_lexicon(lexicon_path)
    corpus = root / "comments.json"
    corpus.write_text(json.dumps(artworks(lexicon, 400, seed=5)), encoding="utf-8")
    return corpus, lexicon_path, lexicon


def test_recompute_writes_a_reviewed_deterministic_contract(tmp_path: Path, inputs: tuple) -> None:
    corpus, lexicon_path, lexicon = inputs
    contracts = tmp_path / "contracts"
    args = ("--corpus", str(corpus), "--lexicon", str(lexicon_path), "--contracts", str(contracts))
    dry = eemo(*args, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "not written: rerun with --write" in dry.stdout and not contracts.exists()
    assert f"+++ {contracts / CONTRACT_FILE} (new)" in dry.stdout and "+version: 1" in dry.stdout

    written = eemo(*args, "--write", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    path = contracts / CONTRACT_FILE
    text = path.read_text(encoding="utf-8")
    assert "wrote" in written.stdout and written.stdout.startswith(text)  # prints the contract it writes
    bounds = load_vad_bounds(path)
    assert bounds.version == 1
    # The numbers are the 1st and 99th percentiles of the corpus images' keyword means with this lexicon.
    texts = pl.DataFrame([(str(item["new_id"]), u) for item in json.loads(corpus.read_text()) for u in item["utterance"]],
                         schema=["image_id", "text"], orient="row")
    assert bounds.bounds == reference_bounds(synthesize_vad(texts, lexicon))
    assert bounds.provenance | {"simplemma": None} == {
        "corpus": "comments.json", "corpus_format": "artemis_json", "corpus_sha256": file_sha256(corpus),
        "corpus_rows_quarantined": 0, "comments": texts.height, "images": 400, "images_with_keywords": 400,
        "keyword_occurrences": bounds.provenance["keyword_occurrences"], "lexicon": "warriner.csv",
        "lexicon_words": lexicon.height, "lexicon_sha256": lexicon_digest(lexicon),
        "keyword_rule_sha256": keyword_rule_digest(), "simplemma": None,
        "command": "eemo vad-bounds --corpus comments.json --write",
    }

    again = eemo(*args, "--write", cwd=tmp_path)  # same inputs: same bytes, no new version
    assert again.returncode == 0 and "no change against" in again.stdout and "(version 1)" in again.stdout
    assert path.read_text(encoding="utf-8") == text

    other = tmp_path / "other.json"  # another corpus: a new version, and the diff shows the bounds that moved
    other.write_text(json.dumps(artworks(lexicon, 300, seed=6)), encoding="utf-8")
    changed = eemo("--corpus", str(other), "--lexicon", str(lexicon_path), "--contracts", str(contracts), "--write",
                   cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "-version: 1\n+version: 2\n" in changed.stdout and "+  corpus: other.json" in changed.stdout
    assert load_vad_bounds(path).version == 2


def test_recompute_refuses_a_corpus_too_small_for_percentiles(tmp_path: Path, inputs: tuple) -> None:
    _, lexicon_path, _ = inputs
    roots = write_sample(tmp_path / "sample", ["affection"])  # the embedded Affection sample: 12 images
    done = eemo("--corpus", str(roots["affection"]), "--lexicon", str(lexicon_path),
                "--contracts", str(tmp_path / "contracts"), "--write", cwd=tmp_path)
    assert done.returncode == 2
    assert "a reference corpus needs at least 200" in done.stderr
    assert not (tmp_path / "contracts").exists()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"new_id": 0, "utterance": [1, 2]}]), encoding="utf-8")
    done = eemo("--corpus", str(broken), "--lexicon", str(lexicon_path), cwd=tmp_path)
    assert done.returncode == 2 and f"{broken}: item 0 has no 'utterance' list of strings" in done.stderr


def test_an_affection_root_is_read_with_the_affection_reader(tmp_path: Path) -> None:
    from eemo_pipeline.sources.affection import RAW_FILE
    from eemo_pipeline.sources.ingest import ingest
    from eemo_pipeline.vad.reference import read_corpus
    from eemo_pipeline.vad.synthesis import comments

    root = write_sample(tmp_path, ["affection"])["affection"]
    corpus = read_corpus(root)
    ingested = ingest("affection", root)
    assert corpus.texts.equals(comments(ingested.annotations))
    assert (corpus.name, corpus.format, corpus.sha256) == (RAW_FILE, "affection", file_sha256(root / RAW_FILE))
    assert corpus.rows_quarantined == ingested.quarantine.height > 0  # the sample carries bad rows on purpose
    assert read_corpus(root / RAW_FILE).texts.equals(corpus.texts)  # the CSV itself names its root
