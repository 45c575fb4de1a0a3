"""EEmoDB-QA: answer keys re-derived from the input tables, balance, pairs, provenance and determinism."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from eemo_pipeline.contracts import source_facts, table_contract
from eemo_pipeline.labels.mapping import map_labels
from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.sample import write_sample
from eemo_pipeline.sources import SOURCES
from eemo_pipeline.sources.categories import content_categories
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.manifest import build_manifest
from eemo_pipeline.storage import write_parquet
from eemo_pipeline.subsets.qa import QA_CODE_VERSION, QAConfig, build_qa, load_templates
from eemo_pipeline.vad.lexicon import read_lexicon, write_sample_lexicon
from eemo_pipeline.vad.synthesis import vad_scores

SINGLE_SUB_TASKS = {"emotion_verification", "comparative_identification", "visual_attribution", "reasoning_choice",
                    "emotion_ranking", "narrative", "causal", "evocation"}
GENERATED_SUB_TASKS = {"visual_attribution", "reasoning_choice"}  # perception rows built from generated text
PAIR_SUB_TASKS = {"consistency_verification", "comparative_assessment", "pair_ranking", "pair_dimension"}
# Written independently of the template file: how each dimension is phrased in comparative questions.
QUALITY_OF = {"more positive": "valence", "more intense": "arousal", "more in control": "dominance"}
EMOTION_PATTERN = re.compile(r"\b(" + "|".join(TARGETS) + r")\b")
OPTION_LINE = re.compile(r"^([A-H])\. (.+)$")


# --- inputs -----------------------------------------------------------------------------------------------------


def generated_rows(labels: pl.DataFrame, manifest: pl.DataFrame) -> pl.DataFrame:
    """A hand-made descriptive_answers frame: singles and pairs of real sample images, plus rows to be ignored."""
    usable = manifest.filter(pl.col("decodable") & pl.col("image_path").is_not_null()).join(
        labels.filter(pl.col("ranking").is_not_null()), on=["source", "image_id"], how="semi"
    )
    rows: list[dict[str, Any]] = []
    for (source,), group in usable.sort("source", "image_id").group_by("source", maintain_order=True):
        ids = group["image_id"].to_list()[:3]
        for image in ids[:2]:
            for kind in ("narrative", "causal", "evocation"):
                rows.append({"key": f"{source}/{image}/{kind}", "source": source, "image_id": image, "template": kind,
                             "text": f"{kind} answer for {image}"})
            rows.append({"key": f"{source}/{image}/reasoning_choice", "source": source, "image_id": image,
                         "template": "reasoning_choice", "text": CHOICE_TEXT.format(image=image)})
        if len(ids) >= 2:
            a, b = ids[0], ids[1]
            rows.append({"key": f"{source}/{a}|{b}/pair_ranking", "source": source, "image_id": a,
                         "image_id_b": b, "template": "pair_ranking", "text": f"ranking comparison {a} {b}"})
            rows.append({"key": f"{source}/{a}|{b}/pair_dimension", "source": source, "image_id": a,
                         "image_id_b": b, "template": "pair_dimension", "dimension": "arousal",
                         "text": f"arousal comparison {a} {b}"})
        # Not descriptive answers (stage 1 and 2 outputs) and an image no manifest knows: never used.
        rows.append({"key": f"{source}/{ids[0]}/describe", "source": source, "image_id": ids[0], "template": "describe",
                     "text": "a description"})
        rows.append({"key": f"{source}/missing/causal", "source": source, "image_id": "missing", "template": "causal",
                     "text": "about an image that is not in the manifest"})
    frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.lit("1").alias("template_version"), pl.lit("test-model").alias("model"), pl.lit(False).alias("cached"),
        pl.lit(1).alias("attempts"), pl.lit(0).alias("prompt_tokens"), pl.lit(0).alias("completion_tokens"),
    )
    return table_contract("generated_text").conform(frame)


CHOICE_TEXT = ("Correct: the warm light on {image} brings joy.\nDistractor: the warm light on {image} brings anger.\n"
               "Distractor: the warm light on {image} brings fear.\nDistractor: the warm light on {image} brings disgust.")


def reasoning_rows(labels: pl.DataFrame) -> pl.DataFrame:
    """An emotion_reasoning frame for the first two ranked images of each source: one sentence per ranked emotion,
    plus a sentence naming none."""
    rows = []
    ranked = labels.filter(pl.col("dominant_emotion").is_not_null()).sort("source", "image_id")
    for (source,), group in ranked.group_by("source", maintain_order=True):
        for image, ranking in group.select("image_id", "ranking").head(2).iter_rows():
            sentences = ["The scene is bright."] + [f"The {k}th element makes viewers feel {e}." for k, e in
                                                     enumerate(ranking or [])]
            rows.append({"key": f"{source}/{image}/reason", "source": source, "image_id": image, "template": "reason",
                         "text": " ".join(sentences)})
    frame = pl.DataFrame(rows).with_columns(
        pl.lit("1").alias("template_version"), pl.lit("test-model").alias("model"), pl.lit(False).alias("cached"),
        pl.lit(1).alias("attempts"), pl.lit(0).alias("prompt_tokens"), pl.lit(0).alias("completion_tokens"),
    )
    return table_contract("generated_text").conform(frame)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The embedded sample run through ingest, manifest, label mapping and VAD synthesis."""
    folder = tmp_path_factory.mktemp("qa_sample")
    roots = write_sample(folder / "sources")
    lexicon_path = folder / "lexicon.csv"
    write_sample_lexicon(lexicon_path)
    lexicon = read_lexicon(lexicon_path)
    labels, vads, manifests, raw = [], [], [], []
    for source in SOURCES:
        annotations = ingest(source, roots[source]).annotations
        raw.append(annotations)
        manifest, _ = build_manifest(annotations, roots[source], source, workers=2)
        manifests.append(manifest)
        labels.append(map_labels(source, annotations).labels)
        vads.append(vad_scores(source, annotations, lexicon))
    mapped = pl.concat(labels)
    manifest = pl.concat(manifests)
    inputs = {f"{asset}[{source}]": f"{asset}-{source}-v1" for asset in
              ("mapped_labels", "vad_scores", "image_manifest", "descriptive_answers") for source in SOURCES}
    inputs["label_taxonomy"] = "taxonomy-v1"
    return {"mapped_labels": mapped, "vad_scores": pl.concat(vads), "manifest": manifest,
            "descriptive_answers": generated_rows(mapped, manifest), "inputs": inputs,
            "reasoning": reasoning_rows(mapped), "categories": content_categories(pl.concat(raw, how="diagonal_relaxed"))}


def build(sample: dict[str, Any], seed: int = 0, config: QAConfig | None = None, **overrides: Any) -> pl.DataFrame:
    tables = {**sample, **overrides}
    return build_qa(tables["mapped_labels"], tables["vad_scores"], tables["manifest"], tables["descriptive_answers"],
                    tables["inputs"], seed=seed, config=config, reasoning=tables.get("reasoning"),
                    categories=tables.get("categories"))


@pytest.fixture(scope="module")
def qa(sample: dict[str, Any]) -> pl.DataFrame:
    return build(sample)


def synthetic(images_per_source: int = 150, sources: tuple[str, ...] = ("emotion6", "affection"), seed: int = 7
              ) -> dict[str, Any]:
    """Larger random inputs (distributions with zeros, rankings, VAD) for balance checks."""
    rng = np.random.default_rng(seed)
    labels, vads, manifests = [], [], []
    for source in sources:
        ids = [f"{source}_{i:04d}" for i in range(images_per_source)]
        weights = rng.random((images_per_source, len(TARGETS))) ** 3
        weights[rng.random(weights.shape) < 0.45] = 0.0
        weights[np.arange(images_per_source), rng.integers(0, len(TARGETS), images_per_source)] += 0.5
        probs = weights / weights.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1)
        rankings = [[TARGETS[j] for j in row[:3] if p[j] > 0] for row, p in zip(order, probs)]
        labels.append(pl.DataFrame({"source": source, "image_id": ids,
                                    **{f"p_{t}": probs[:, k] for k, t in enumerate(TARGETS)},
                                    "dominant_emotion": [r[0] for r in rankings], "ranking": rankings,
                                    "n_labels": 10, "taxonomy": "emotion6"}))
        vads.append(pl.DataFrame({"source": source, "image_id": ids, "valence": rng.random(images_per_source),
                                  "arousal": rng.random(images_per_source), "dominance": rng.random(images_per_source),
                                  "vad_origin": "rated"}))
        manifests.append(pl.DataFrame({"source": source, "image_id": ids, "image_path": [f"img/{i}.jpg" for i in ids],
                                       "decodable": True}))
    return {
        "mapped_labels": table_contract("mapped_labels").conform(pl.concat(labels)),
        "vad_scores": table_contract("vad_scores").conform(pl.concat(vads)),
        "manifest": table_contract("image_manifest").conform(pl.concat(manifests)),
        "descriptive_answers": table_contract("generated_text").empty(),
        "inputs": {f"mapped_labels[{s}]": f"v-{s}" for s in sources},
        # Three content categories per source: pairs must stay inside one.
        "categories": pl.concat(m.select("source", "image_id") for m in manifests).with_columns(
            pl.concat_str(pl.lit("c"), (pl.int_range(pl.len()) % 3).cast(pl.String)).alias("category")),
    }


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], pl.DataFrame]:
    tables = synthetic()
    return tables, build(tables)


# --- helpers: independent readings of the inputs ------------------------------------------------------------------


def label_rows(tables: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["source"], r["image_id"]): r for r in tables["mapped_labels"].iter_rows(named=True)}


def vad_rows(tables: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["source"], r["image_id"]): r for r in tables["vad_scores"].iter_rows(named=True)}


def of(qa: pl.DataFrame, sub_task: str) -> list[dict[str, Any]]:
    return qa.filter(pl.col("sub_task") == sub_task).to_dicts()


def parsed_options(question: str) -> list[str]:
    return [m.group(2) for line in question.splitlines() if (m := OPTION_LINE.match(line))]


def chosen(row: dict[str, Any]) -> str:
    """The option the answer letter points at, read from the rendered question."""
    return parsed_options(row["question"])["ABCDEFGH".index(row["answer"])]


def only_emotion(question: str) -> str:
    found = set(EMOTION_PATTERN.findall(question))
    assert len(found) == 1, question
    return found.pop()


def image(row: dict[str, Any], index: int = 0) -> tuple[str, str]:
    return row["sources"][index], row["source_image_ids"][index]


def category_of(tables: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(s, i): c for s, i, c in tables["categories"].iter_rows()}


# --- contract, coverage, ids ----------------------------------------------------------------------------------------


def test_contract_and_every_sub_task(qa: pl.DataFrame) -> None:
    assert table_contract("eemodb_qa").violations(qa) == []
    assert qa["row_id"].to_list() == sorted(qa["row_id"].to_list())
    assert set(qa["sub_task"]) == SINGLE_SUB_TASKS | PAIR_SUB_TASKS
    tasks = dict(qa.select("sub_task", "task").unique().iter_rows())
    assert {tasks[s] for s in ("emotion_verification", "comparative_identification", "visual_attribution",
                               "reasoning_choice", "consistency_verification", "comparative_assessment")} == {"perception"}
    assert tasks["emotion_ranking"] == "ranking"
    assert {tasks[s] for s in ("narrative", "causal", "evocation", "pair_ranking", "pair_dimension")} == {"description"}


def test_images_paths_and_pairs(qa: pl.DataFrame, sample: dict[str, Any]) -> None:
    usable = {(r["source"], r["image_id"]): f"{r['source']}/{r['image_path']}"
              for r in sample["manifest"].filter(pl.col("decodable")).iter_rows(named=True)}
    for row in qa.iter_rows(named=True):
        n = 2 if row["sub_task"] in PAIR_SUB_TASKS else 1
        assert len(row["image_paths"]) == len(row["sources"]) == len(row["source_image_ids"]) == n
        for k in range(n):
            assert row["image_paths"][k] == usable[image(row, k)]
        if n == 2:  # content constraint: same source, two different images
            assert row["sources"][0] == row["sources"][1]
            assert row["source_image_ids"][0] != row["source_image_ids"][1]


def test_row_id_is_the_documented_hash(qa: pl.DataFrame) -> None:
    for row in qa.iter_rows(named=True):
        images = "\x1e".join(f"{s}/{i}" for s, i in zip(row["sources"], row["source_image_ids"]))
        material = "\x1f".join([row["task"], row["sub_task"], row["template_id"], images, row["question"],
                                row["answer"]])
        assert row["row_id"] == hashlib.sha256(material.encode()).hexdigest()[:16]


def test_template_ids_come_from_the_versioned_file(qa: pl.DataFrame) -> None:
    templates = load_templates()
    for sub_task, group in qa.group_by("sub_task"):
        allowed = {f"{e['name']}@{templates.version}" for e in templates.document["sub_tasks"][sub_task[0]]}
        assert set(group["template_id"]) <= allowed


# --- answer keys --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["sample", "big"])
def test_emotion_verification_answers(which: str, qa: pl.DataFrame, sample: dict[str, Any], big: Any) -> None:
    tables, frame = (sample, qa) if which == "sample" else big
    labels = label_rows(tables)
    rows = of(frame, "emotion_verification")
    assert rows
    for row in rows:
        assert row["options"] is None and row["answer"] in ("yes", "no")
        emotion = only_emotion(row["question"])
        facts = labels[image(row)]
        p = facts[f"p_{emotion}"]
        if row["answer"] == "yes":
            assert p > 0 and (emotion == facts["dominant_emotion"] or emotion in (facts["ranking"] or []))
        else:
            assert p == 0


@pytest.mark.parametrize("which", ["sample", "big"])
def test_verification_is_balanced_per_emotion_and_template(which: str, qa: pl.DataFrame, sample: dict[str, Any],
                                                           big: Any) -> None:
    frame = qa if which == "sample" else big[1]
    rows = of(frame, "emotion_verification")
    per_emotion: dict[str, Counter] = defaultdict(Counter)
    per_group: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for row in rows:
        emotion = only_emotion(row["question"])
        per_emotion[emotion][row["answer"]] += 1
        per_group[(emotion, row["answer"])][row["template_id"]] += 1
    for emotion, counts in per_emotion.items():
        assert abs(counts["yes"] - counts["no"]) <= 1, (emotion, counts)
    n_templates = len(load_templates().document["sub_tasks"]["emotion_verification"])
    for group, counts in per_group.items():
        total = sum(counts.values())
        assert len(counts) == min(total, n_templates), group
        assert max(counts.values()) - min(counts.values()) <= 1, (group, counts)
    if which == "big":
        assert sum(c["yes"] for c in per_emotion.values()) > 200


@pytest.mark.parametrize("which", ["sample", "big"])
def test_comparative_identification_points_at_the_dominant_emotion(which: str, qa: pl.DataFrame,
                                                                   sample: dict[str, Any], big: Any) -> None:
    tables, frame = (sample, qa) if which == "sample" else big
    labels = label_rows(tables)
    rows = of(frame, "comparative_identification")
    assert rows
    for row in rows:
        options = parsed_options(row["question"])
        assert options == row["options"] and len(options) == 4 == len(set(options))
        assert set(options) <= set(TARGETS)
        facts = labels[image(row)]
        assert chosen(row) == facts["dominant_emotion"]
        top = facts[f"p_{facts['dominant_emotion']}"]
        assert all(facts[f"p_{o}"] < top for o in options if o != facts["dominant_emotion"])
        assert row["question"].rstrip().endswith("letter of the correct option.")


def test_visual_attribution_asks_for_the_visual_causes(qa: pl.DataFrame, sample: dict[str, Any]) -> None:
    labels = label_rows(sample)
    reasoning = {(r["source"], r["image_id"]): r for r in sample["reasoning"].iter_rows(named=True)}
    rows = of(qa, "visual_attribution")
    assert rows and {image(r) for r in rows} <= set(reasoning)
    for row in rows:
        dominant = labels[image(row)]["dominant_emotion"]
        assert row["options"] is None
        assert only_emotion(row["question"].replace("a neutral feeling", "neutral")) == dominant
        # the answer is the reasoning's sentence on the dominant emotion (where it names the visual element)
        assert row["answer"] in reasoning[image(row)]["text"] and dominant in row["answer"]
        assert "The scene is bright." not in row["answer"]
        assert json.loads(row["provenance"])["generated"][0]["key"] == reasoning[image(row)]["key"]
    assert of(build(sample, config=QAConfig(attribution_per_image=0)), "visual_attribution") == []


def test_reasoning_choice_shows_the_validated_candidates(qa: pl.DataFrame, sample: dict[str, Any]) -> None:
    answers = sample["descriptive_answers"].filter(pl.col("template") == "reasoning_choice")
    by_key = {r["key"]: r for r in answers.iter_rows(named=True)}
    rows = of(qa, "reasoning_choice")
    assert len(rows) == len(by_key)
    for row in rows:
        [generated] = json.loads(row["provenance"])["generated"]
        image_id = by_key[generated["key"]]["image_id"]
        options = parsed_options(row["question"])
        assert options == row["options"] and len(options) == 4 == len(set(options))
        assert chosen(row) == f"the warm light on {image_id} brings joy."
    assert len({r["answer"] for r in rows}) >= 2  # the correct option is not always first
    assert of(build(sample, config=QAConfig(reasoning_choice=False)), "reasoning_choice") == []


def test_options_are_shuffled_and_deterministic(sample: dict[str, Any], qa: pl.DataFrame, big: Any) -> None:
    for frame in (qa, big[1]):
        for sub_task in ("comparative_identification",):
            letters = Counter(r["answer"] for r in of(frame, sub_task))
            assert len(letters) >= 2, (sub_task, letters)  # not always A
    big_letters = Counter(r["answer"] for r in of(big[1], "comparative_identification"))
    assert set(big_letters) == set("ABCD")

    def orders(frame: pl.DataFrame) -> dict[tuple, list[str]]:
        return {(r["sub_task"], r["source_image_ids"][0], r["question"].splitlines()[0]): r["options"]
                for r in frame.filter(pl.col("sub_task") == "comparative_identification")
                .iter_rows(named=True)}

    again = build(big[0])
    assert orders(again) == orders(big[1])
    other = build(big[0], seed=1)
    first, second = orders(big[1]), orders(other)
    common = set(first) & set(second)
    assert common and sum(first[k] != second[k] for k in common) > len(common) // 3


def test_emotion_ranking_answers(qa: pl.DataFrame, sample: dict[str, Any]) -> None:
    labels = label_rows(sample)
    rows = of(qa, "emotion_ranking")
    ranked = {k for k, v in labels.items() if v["ranking"] and source_facts(k[0]).qa_rankings}
    assert any(v["ranking"] for k, v in labels.items() if k[0] == "findingemo")  # one label each: no ranking rows
    used = {image(r) for r in rows}
    usable = {(r["source"], r["image_id"]) for r in sample["manifest"].filter(pl.col("decodable")).iter_rows(named=True)}
    assert used == ranked & usable
    for row in rows:
        assert row["options"] is None
        assert row["answer"] == ", ".join(labels[image(row)]["ranking"])


@pytest.mark.parametrize("which", ["sample", "big"])
def test_consistency_verification_pairs(which: str, qa: pl.DataFrame, sample: dict[str, Any], big: Any) -> None:
    tables, frame = (sample, qa) if which == "sample" else big
    labels = label_rows(tables)
    categories = category_of(tables)
    rows = of(frame, "consistency_verification")
    assert rows
    per_source: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        # content constraint: both images of one content category (sources.yaml qa.pair_category)
        assert categories.get(image(row, 0), "") == categories.get(image(row, 1), "")
        emotion = only_emotion(row["question"])
        a, b = labels[image(row, 0)], labels[image(row, 1)]
        both = a["dominant_emotion"] == emotion and b["dominant_emotion"] == emotion
        assert row["answer"] == ("yes" if both else "no")
        # label constraint: yes pairs share the dominant emotion, no pairs do not (and ask about one of them)
        if row["answer"] == "no":
            assert a["dominant_emotion"] != b["dominant_emotion"]
            assert emotion in (a["dominant_emotion"], b["dominant_emotion"])
        per_source[row["sources"][0]][row["answer"]] += 1
    for source, counts in per_source.items():
        assert counts["yes"] == counts["no"], (source, counts)
    pairs = [tuple(sorted(r["source_image_ids"])) for r in rows]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("which", ["sample", "big"])
def test_comparative_assessment_pairs(which: str, qa: pl.DataFrame, sample: dict[str, Any], big: Any) -> None:
    tables, frame = (sample, qa) if which == "sample" else big
    vad = vad_rows(tables)
    categories = category_of(tables)
    rows = of(frame, "comparative_assessment")
    assert rows
    letters: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        assert categories.get(image(row, 0), "") == categories.get(image(row, 1), "")
        assert parsed_options(row["question"]) == row["options"] == ["The first image", "The second image"]
        qualities = [q for q in QUALITY_OF if q in row["question"]]
        assert len(qualities) == 1
        dimension = QUALITY_OF[qualities[0]]
        first, second = vad[image(row, 0)][dimension], vad[image(row, 1)][dimension]
        assert abs(first - second) >= 0.15
        assert row["answer"] == ("A" if first > second else "B")
        letters[dimension][row["answer"]] += 1
    for counts in letters.values():
        assert abs(counts["A"] - counts["B"]) <= 1


def test_comparative_margin_is_configurable(big: Any) -> None:
    tables, _ = big
    vad = vad_rows(tables)
    rows = of(build(tables, config=QAConfig(comparative_margin=0.5)), "comparative_assessment")
    assert rows
    for row in rows:
        dimension = QUALITY_OF[next(q for q in QUALITY_OF if q in row["question"])]
        assert abs(vad[image(row, 0)][dimension] - vad[image(row, 1)][dimension]) >= 0.5


def test_descriptions_use_the_generated_text(qa: pl.DataFrame, sample: dict[str, Any]) -> None:
    answers = sample["descriptive_answers"]
    expected = answers.filter(pl.col("template").is_in(["narrative", "causal", "evocation", "pair_ranking",
                                                        "pair_dimension"]) & (pl.col("image_id") != "missing"))
    by_key = {r["key"]: r for r in expected.iter_rows(named=True)}
    rows = qa.filter(pl.col("task") == "description").to_dicts()
    seen = set()
    for row in rows:
        provenance = json.loads(row["provenance"])
        [generated] = provenance["generated"]
        source = by_key[generated["key"]]
        seen.add(generated["key"])
        assert generated == {"key": source["key"], "model": "test-model", "template_version": "1"}
        assert row["answer"] == source["text"] and row["sub_task"] == source["template"]
        assert row["options"] is None
        ids = [source["image_id"]] + ([source["image_id_b"]] if source["image_id_b"] else [])
        assert row["source_image_ids"] == ids and row["sources"] == [source["source"]] * len(ids)
        if source["template"] == "pair_dimension":
            assert "arousal" in row["question"]
    assert seen == set(by_key)
    plain = qa.filter((pl.col("task") != "description") & ~pl.col("sub_task").is_in(GENERATED_SUB_TASKS))
    assert not plain["provenance"].str.contains('"generated"').any()


def test_provenance_restricted_to_the_rows_source(qa: pl.DataFrame, sample: dict[str, Any]) -> None:
    for row in qa.iter_rows(named=True):
        provenance = json.loads(row["provenance"])
        assert row["provenance"] == json.dumps(provenance, sort_keys=True, separators=(",", ":"))
        assert provenance["code"] == f"eemodb_qa@{QA_CODE_VERSION}"
        source = row["sources"][0]
        expected = {k: v for k, v in sample["inputs"].items() if "[" not in k or k.endswith(f"[{source}]")}
        assert provenance["inputs"] == expected


def test_undecodable_images_are_never_used(sample: dict[str, Any], qa: pl.DataFrame) -> None:
    victim = qa.filter(pl.col("sub_task") == "comparative_identification").row(0, named=True)
    source, image_id = victim["sources"][0], victim["source_image_ids"][0]
    broken = sample["manifest"].with_columns(
        pl.when((pl.col("source") == source) & (pl.col("image_id") == image_id)).then(False)
        .otherwise(pl.col("decodable")).alias("decodable")
    )
    rebuilt = build(sample, manifest=broken)
    used = rebuilt.select(pl.col("sources").list.get(0).alias("s"), pl.col("source_image_ids")).explode(
        "source_image_ids")
    assert used.filter((pl.col("s") == source) & (pl.col("source_image_ids") == image_id)).is_empty()
    assert rebuilt.height < qa.height


def test_same_inputs_give_byte_identical_parquet(sample: dict[str, Any], tmp_path: Path) -> None:
    first = write_parquet(build(sample, seed=3), tmp_path / "a.parquet").read_bytes()
    shuffled = {**sample, "mapped_labels": sample["mapped_labels"].reverse(), "manifest": sample["manifest"].reverse(),
                "vad_scores": sample["vad_scores"].reverse()}
    second = write_parquet(build(shuffled, seed=3), tmp_path / "b.parquet").read_bytes()
    assert first == second
    third = write_parquet(build(sample, seed=4), tmp_path / "c.parquet").read_bytes()
    assert third != first


def test_empty_inputs_give_an_empty_conforming_frame() -> None:
    empty = build_qa(table_contract("mapped_labels").empty(), table_contract("vad_scores").empty(),
                     table_contract("image_manifest").empty(), table_contract("generated_text").empty(), {})
    assert empty.height == 0 and table_contract("eemodb_qa").violations(empty) == []


def test_config_validates_its_values() -> None:
    with pytest.raises(ValueError):
        QAConfig(yes_share=1.0)
    with pytest.raises(ValueError):
        QAConfig(comparative_margin=-0.1)
    with pytest.raises(ValueError):
        QAConfig(attribution_per_image=2)
    with pytest.raises(ValueError):
        QAConfig(identification_share=1.5)


def test_identification_share_asks_that_share_of_each_source(big: Any) -> None:
    tables, default = big
    every = of(build(tables, config=QAConfig(identification_share=1.0)), "comparative_identification")
    per_source = Counter(r["sources"][0] for r in every)
    asked = Counter(r["sources"][0] for r in of(default, "comparative_identification"))
    share = QAConfig().identification_share
    assert asked == {s: int(n * share + 1e-9) for s, n in per_source.items()}
    assert {image(r) for r in of(default, "comparative_identification")} <= {image(r) for r in every}
    assert of(build(tables, config=QAConfig(identification_share=0)), "comparative_identification") == []
