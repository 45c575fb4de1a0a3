"""``eemo vad-bounds``: the VAD normalisation contract recomputed from a reference corpus of comments.

A reference corpus is read by ``read_corpus``:

* an Affection source root (or its CSV), read with the project's Affection reader, so that every comment counts
  exactly as the ``vad_scores`` asset sees it: the paper's own corpus, for whoever holds the release;
* the EEmo-Logic authors' released ArtEmis test file (``test_ArtEmis.json`` of ``workerred/EEmo-Logic``: a JSON
  list of artworks, each with its ``utterance`` list): public, the same kind of comments, and the corpus of the
  contract's first version (docs/fidelity.md says why).

``reference_document`` synthesizes every image's keyword means with the given lexicon (``synthesize_vad``) and
takes their quantiles; the document records the corpus, lexicon and keyword rule by digest, so the same inputs
always give the same file, byte for byte, and a different lexicon or stop list shows in the diff.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from eemo_pipeline.sources.affection import source_file
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.vad.bounds import CONTRACT_NAME, DIMENSIONS, METHOD, VadBounds, parse_vad_bounds
from eemo_pipeline.vad.lexicon import SCALE, lexicon_digest
from eemo_pipeline.vad.synthesis import comments, keyword_rule_digest, synthesize_vad

QUANTILES = (0.01, 0.99)
# Fewer images with keywords than this give no stable 1st/99th percentile: the command refuses the corpus.
MIN_REFERENCE_IMAGES = 200
DECIMALS = 4  # bounds on 1-9 to 1e-4: far below any difference one comment makes
AFFECTION_FORMAT = "affection"
ARTEMIS_JSON_FORMAT = "artemis_json"
HEADER = """\
# Normalisation of the VAD synthesized from comments (paper 3.1: keyword means "subsequently normalized"):
# per dimension, the keyword means (Warriner 1-9) on which the reference corpus's quantiles fall. vad_scores maps
# 1 -> 0, low -> quantiles[0], high -> quantiles[1], 9 -> 1, linearly in between, in every partition and rebuild
# (eemo_pipeline/vad/bounds.py). Written by `eemo vad-bounds --corpus ... --write`; do not edit by hand: a new
# version is a reviewed contract change. Provenance names the corpus, lexicon and keyword rule by digest.
"""


@dataclass(frozen=True)
class Corpus:
    """Comments of a reference corpus: ``texts`` has ``image_id, text``."""

    texts: pl.DataFrame
    name: str
    format: str
    sha256: str
    rows_quarantined: int = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_corpus(path: Path) -> Corpus:
    """The comments of ``path``: a ``.json`` file in the authors' ArtEmis format, else an Affection root or CSV."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"reference corpus {path} not found: give an Affection root or its CSV, or the "
                                "authors' test_ArtEmis.json")
    if path.suffix.lower() == ".json":
        return _artemis_json(path)
    root = path if path.is_dir() else path.parent
    ingested = ingest("affection", root)
    csv = source_file(root)
    return Corpus(comments(ingested.annotations), csv.name, AFFECTION_FORMAT, file_sha256(csv),
                  ingested.quarantine.height)


def _artemis_json(path: Path) -> Corpus:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read a JSON corpus ({error})") from error
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of artworks, each with an 'utterance' list")
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        utterances = item.get("utterance") if isinstance(item, dict) else None
        if isinstance(utterances, str):
            utterances = [utterances]
        if not isinstance(utterances, list) or not all(isinstance(u, str) for u in utterances):
            raise ValueError(f"{path}: item {index} has no 'utterance' list of strings")
        image = str(item.get("new_id", index))
        if image in seen:
            raise ValueError(f"{path}: item {index} repeats the id {image!r}")
        seen.add(image)
        rows += [(image, text) for text in utterances]
    texts = pl.DataFrame(rows, schema={"image_id": pl.String, "text": pl.String}, orient="row")
    return Corpus(texts, path.name, ARTEMIS_JSON_FORMAT, file_sha256(path))


def reference_bounds(scores: pl.DataFrame, quantiles: tuple[float, float] = QUANTILES
                     ) -> dict[str, tuple[float, float]]:
    """Per dimension the ``quantiles`` (linear interpolation) of the images' keyword means (``*_raw``, 1-9),
    rounded to ``DECIMALS``. ValueError when fewer than ``MIN_REFERENCE_IMAGES`` images have keywords or the
    bounds do not lie strictly inside the scale in increasing order."""
    bounds = {}
    for dimension in DIMENSIONS:
        raw = scores[f"{dimension}_raw"].drop_nulls()
        if raw.len() < MIN_REFERENCE_IMAGES:
            raise ValueError(f"{raw.len()} images with keywords: a reference corpus needs at least "
                             f"{MIN_REFERENCE_IMAGES} for stable {quantiles} quantiles")
        low, high = (round(float(raw.quantile(q, "linear")), DECIMALS) for q in quantiles)
        if not SCALE[0] < low < high < SCALE[1]:
            raise ValueError(f"{dimension}: bounds {low}, {high} do not spread inside {SCALE}")
        bounds[dimension] = (low, high)
    return bounds


def reference_document(corpus: Corpus, lexicon: pl.DataFrame, lexicon_name: str, current: VadBounds | None,
                       quantiles: tuple[float, float] = QUANTILES) -> dict[str, Any]:
    """The contract computed from ``corpus`` with ``lexicon``: the version of ``current`` when nothing but the
    version would change, else one more (1 without a current contract)."""
    scores = synthesize_vad(corpus.texts, lexicon)
    bounds = reference_bounds(scores, quantiles)
    provenance = {
        "corpus": corpus.name,
        "corpus_format": corpus.format,
        "corpus_sha256": corpus.sha256,
        "corpus_rows_quarantined": corpus.rows_quarantined,
        "comments": corpus.texts.height,
        "images": scores.height,
        "images_with_keywords": int(scores["valence_raw"].is_not_null().sum()),
        "keyword_occurrences": int(scores["n_lexicon_words"].sum()),
        "lexicon": lexicon_name,
        "lexicon_words": lexicon.height,
        "lexicon_sha256": lexicon_digest(lexicon),
        "keyword_rule_sha256": keyword_rule_digest(),
        "simplemma": importlib.metadata.version("simplemma"),
        "command": f"eemo vad-bounds --corpus {corpus.name} --write",
    }
    document: dict[str, Any] = {
        "name": CONTRACT_NAME, "version": 1, "method": METHOD, "scale": list(SCALE), "quantiles": list(quantiles),
        "bounds": {d: list(bounds[d]) for d in DIMENSIONS}, "provenance": provenance,
    }
    if current is not None:
        same = (current.quantiles == tuple(quantiles) and current.bounds == bounds
                and current.provenance == provenance)
        document["version"] = current.version if same else current.version + 1
    parse_vad_bounds(document, "the computed contract")  # the file written must load
    return document


class _ContractDumper(yaml.SafeDumper):
    """Block mappings, lists on one line (``valence: [4.5, 6.7]``)."""


_ContractDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def render_contract(document: dict[str, Any]) -> str:
    """The YAML text of a contract document: the header comment, then the fields in a fixed order."""
    body = yaml.dump(document, Dumper=_ContractDumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=120)
    return HEADER + body


def contract_diff(current_text: str, new_text: str, path: Path) -> str:
    """A unified diff from the current contract text (empty when there is none) to the new one."""
    return "".join(difflib.unified_diff(current_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                        fromfile=f"{path} (current)", tofile=f"{path} (new)"))
