from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.contracts import source_facts, table_contract
from eemo_pipeline.labels.mapping import map_labels
from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample
from eemo_pipeline.sources import SOURCES
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.manifest import build_manifest
from eemo_pipeline.storage import write_parquet
from eemo_pipeline.subsets.assess import CODE_ID, build_assess, row_id
from eemo_pipeline.tasks.assess_rows import AssessConfig
from eemo_pipeline.tasks.dominant_emotion import dec_rules, native_vocabulary
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.vad.lexicon import read_lexicon
from eemo_pipeline.vad.synthesis import vad_scores

# --- the embedded sample, built with the library functions ------------------------------------------------


def build_sample_tables(directory: Path) -> dict[str, object]:
    roots = write_sample(directory)
    lexicon = read_lexicon(directory / SAMPLE_LEXICON)
    raw, manifests, mapped, scores = [], [], [], []
    for source in SOURCES:
        annotations = ingest(source, roots[source]).annotations
        raw.append(annotations)
        manifests.append(build_manifest(annotations, roots[source], source)[0])
        mapped.append(map_labels(source, annotations).labels)
        scores.append(vad_scores(source, annotations, lexicon))
    tables = {
        "raw_annotations": pl.concat(raw, how="vertical"),
        "manifest": pl.concat(manifests, how="vertical"),
        "mapped_labels": pl.concat(mapped, how="vertical"),
        "vad_scores": pl.concat(scores, how="vertical"),
    }
    inputs = {f"{asset}[{s}]": f"v-{asset}-{s}" for asset in ("raw_annotations", "image_manifest", "mapped_labels",
                                                                 "vad_scores") for s in SOURCES}
    inputs["label_taxonomy"] = "v-taxonomy"
    return {"roots": roots, "tables": tables, "inputs": inputs}


def run(sample: dict, seed: int = 0, config: AssessConfig | None = None) -> pl.DataFrame:
    t = sample["tables"]
    return build_assess(t["mapped_labels"], t["vad_scores"], t["manifest"], t["raw_annotations"], sample["inputs"],
                        seed=seed, config=config)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_sample_tables(tmp_path_factory.mktemp("assess_sample"))


@pytest.fixture(scope="module")
def assess(sample: dict) -> pl.DataFrame:
    return run(sample)


# --- independent re-derivations ---------------------------------------------------------------------------


def fmt4(value: float) -> str:
    return f"{round(value, 4):.4f}"


def bin_of(answer: str, bins: int) -> int:
    value = Decimal(answer)
    return min(int(value * bins), bins - 1)


def expected_dominant(raw: pl.DataFrame) -> dict[tuple[str, str], str]:
    """Native dominant label per image, computed row by row in plain Python from each source's declared
    (measure, rule) in sources.yaml."""
    rules = {s: facts.dominant_emotion for s in SOURCES if (facts := source_facts(s)).dominant_emotion}
    weights: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    seen = set()
    for r in raw.iter_rows(named=True):
        source, label = r["source"], r["label"]
        measure, rule = rules.get(source, (None, None))
        if measure != r["measure"] or label is None:
            continue
        key = (source, r["image_id"])
        if rule == "selections":  # one count per annotator selection naming the label
            selection = (key, r["subject"], r["annotator"], label)
            if selection in seen:
                continue
            seen.add(selection)
            weights[key][label] += 1
        elif rule == "count":
            weights[key][label] += 1
        else:
            weights[key][label] += r["value"]
    result = {}
    for key, per_label in weights.items():
        ordered = sorted(per_label.items(), key=lambda item: -item[1])
        if ordered[0][1] <= 0 or (len(ordered) > 1 and ordered[0][1] - ordered[1][1] <= 1e-5):
            continue  # tied top: skipped
        result[key] = ordered[0][0]
    return result


def decodable(manifest: pl.DataFrame) -> dict[tuple[str, str], str]:
    rows = manifest.filter(pl.col("decodable")).select("source", "image_id", "image_path").iter_rows()
    return {(s, i): p for s, i, p in rows}


def single(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("sources").list.first().alias("source"), pl.col("source_image_ids").list.first().alias("image_id")
    )


# --- synthetic inputs ---------------------------------------------------------------------------------------


def manifest_of(keys: list[tuple[str, str]], broken: set[tuple[str, str]] = frozenset()) -> pl.DataFrame:
    return table_contract("image_manifest").conform(pl.DataFrame({
        "source": [s for s, _ in keys], "image_id": [i for _, i in keys],
        "image_path": [f"img/{i}.jpg" for _, i in keys], "decodable": [(s, i) not in broken for s, i in keys],
    }))


def raw_of(rows: list[tuple]) -> pl.DataFrame:
    """(source, image_id, measure, label, value[, annotator, subject])"""
    return table_contract("raw_annotations").conform(pl.DataFrame([
        {"source": r[0], "image_id": r[1], "measure": r[2], "label": r[3], "value": float(r[4]),
         "annotator": r[5] if len(r) > 5 else None, "subject": r[6] if len(r) > 6 else None,
         "source_file": "f", "source_line": n + 2}
        for n, r in enumerate(rows)
    ], schema_overrides={"subject": pl.Int32}))


def empty(name: str) -> pl.DataFrame:
    return table_contract(name).empty()


# --- ranking -------------------------------------------------------------------------------------------------


def mapped_row(source: str, image_id: str, probs: dict[str, float], ranking: list[str] | None) -> dict:
    return {"source": source, "image_id": image_id, **{f"p_{t}": probs.get(t, 0.0) for t in TARGETS},
            "dominant_emotion": ranking[0] if ranking else None, "ranking": ranking, "n_labels": 7,
            "taxonomy": "ekman7"}


def test_ranking_uses_emotion6_images_with_three_distinct_ranked_targets_only() -> None:
    rows = [
        mapped_row("emotion6", "ok", {"joy": 0.5, "surprise": 0.3, "fear": 0.15, "anger": 0.05}, ["joy", "surprise", "fear"]),
        mapped_row("emotion6", "two", {"joy": 0.6, "sadness": 0.4}, ["joy", "sadness"]),
        mapped_row("emotion6", "null", {"joy": 0.5, "sadness": 0.5}, None),
        # ranking present but the third ties with the fourth: not an unambiguous ground truth
        mapped_row("emotion6", "tied", {"joy": 0.5, "fear": 0.2, "anger": 0.15, "disgust": 0.15}, ["joy", "fear", "anger"]),
        mapped_row("emotion6", "broken", {"joy": 0.5, "fear": 0.3, "anger": 0.2}, ["joy", "fear", "anger"]),
        mapped_row("abstract8", "other", {"joy": 0.5, "fear": 0.3, "anger": 0.2}, ["joy", "fear", "anger"]),
    ]
    mapped = table_contract("mapped_labels").conform(pl.DataFrame(rows))
    manifest = manifest_of([(r["source"], r["image_id"]) for r in rows], broken={("emotion6", "broken")})
    out = build_assess(mapped, empty("vad_scores"), manifest, empty("raw_annotations"), {})
    assert table_contract("eemodb_assess").violations(out) == []
    assert out["task"].to_list() == ["ranking"]
    record = out.row(0, named=True)
    assert record["answer"] == "joy, surprise, fear"
    assert record["sub_task"] == "emotion_ranking"
    assert record["source_image_ids"] == ["ok"] and record["image_paths"] == ["emotion6/img/ok.jpg"]
    assert record["options"] is None and ", ".join(TARGETS) in record["question"]
    assert "<answer>Emotion ranking: a, b, c</answer>" in record["question"]
    assert record["row_id"] == row_id("ranking", "emotion_ranking", record["template_id"], ["emotion6/ok"],
                                      "joy, surprise, fear")


def test_ranking_answers_equal_the_mapped_ranking_on_the_sample(sample: dict, assess: pl.DataFrame) -> None:
    mapped = sample["tables"]["mapped_labels"]
    usable = decodable(sample["tables"]["manifest"])
    expected = {}
    for r in mapped.iter_rows(named=True):
        ranking = r["ranking"]
        if r["source"] != "emotion6" or ranking is None or len(ranking) != 3 or (r["source"], r["image_id"]) not in usable:
            continue
        p = sorted((r[f"p_{t}"] for t in TARGETS), reverse=True)
        ranked = [r[f"p_{t}"] for t in ranking]
        if ranked[0] - ranked[1] > 1e-5 and ranked[1] - ranked[2] > 1e-5 and ranked[2] - p[3] > 1e-5:
            expected[r["image_id"]] = ", ".join(ranking)
    got = single(assess.filter(pl.col("task") == "ranking"))
    assert expected, "the sample should hold rankable Emotion6 images"
    assert set(got["source"]) == {"emotion6"}
    assert dict(zip(got["image_id"], got["answer"])) == expected


# --- VAD -----------------------------------------------------------------------------------------------------


def vad_frame(rows: list[tuple]) -> pl.DataFrame:
    """(source, image_id, valence, origin, n_lexicon_words)"""
    return table_contract("vad_scores").conform(pl.DataFrame([
        {"source": s, "image_id": i, "valence": v, "vad_origin": o,
         "n_ratings": 1 if o == "rated" else None, "n_lexicon_words": w}
        for s, i, v, o, w in rows
    ], schema_overrides={"n_lexicon_words": pl.Int32, "n_ratings": pl.Int32, "valence": pl.Float64}))


def test_vad_balancing_draws_rated_first_then_lexicon_by_descending_word_count() -> None:
    rows = [
        # bin 1 (0.1-0.2): two rated, four lexicon -> target 3: both rated and the 9-word lexicon one
        ("oasis", "r1", 0.12, "rated", None), ("gaped", "r2", 0.1949, "rated", None),
        # 0.19996 is answered "0.2000", so it is binned with 0.2 (bin 2), where its answer lies
        ("gaped", "edge", 0.19996, "rated", None),
        ("affection", "l1", 0.15, "lexicon", 4), ("affection", "l2", 0.11, "lexicon", 9),
        ("affection", "l3", 0.13, "lexicon", 2), ("affection", "l4", 0.14, "lexicon", 7),
        # bin 5: only lexicon -> the three with most words (tie at 5 broken by the seeded hash)
        ("affection", "m1", 0.55, "lexicon", 1), ("affection", "m2", 0.51, "lexicon", 5),
        ("affection", "m3", 0.52, "lexicon", 5), ("affection", "m4", 0.53, "lexicon", 5),
        ("affection", "m5", 0.54, "lexicon", 8),
        # bin 9 holds 1.0; 0.99996 rounds to 1.0000; a lexicon row with no word is never used
        ("oasis", "top", 1.0, "rated", None), ("gaped", "near", 0.99996, "rated", None),
        ("affection", "silent", 0.95, "lexicon", 0),
        # bin 0: four rated -> three of them; an undecodable image is never used
        ("oasis", "z1", 0.0, "rated", None), ("oasis", "z2", 0.01, "rated", None),
        ("oasis", "z3", 0.05, "rated", None), ("oasis", "z4", 0.09994, "rated", None),
        ("oasis", "gone", 0.02, "rated", None),
    ]
    scores = vad_frame(rows)
    manifest = manifest_of([(s, i) for s, i, *_ in rows], broken={("oasis", "gone")})
    config = AssessConfig(vad_per_bin=3)
    out = single(build_assess(empty("mapped_labels"), scores, manifest, empty("raw_annotations"), {}, config=config))
    assert table_contract("eemodb_assess").violations(out.drop("source", "image_id")) == []
    out = out.filter(pl.col("task") == "vad")  # another registered task may build rows from VAD scores too
    assert set(out["sub_task"]) == {"valence"}
    value = {(s, i): v for s, i, v, *_ in rows}
    chosen = set(zip(out["source"], out["image_id"]))
    for s, i, answer in out.select("source", "image_id", "answer").iter_rows():
        assert answer == fmt4(value[(s, i)])
    by_bin: dict[int, list[str]] = defaultdict(list)
    for answer, i in zip(out["answer"], out["image_id"]):
        by_bin[bin_of(answer, 10)].append(i)
    assert sorted(by_bin[1]) == ["l2", "r1", "r2"]
    assert "m5" in by_bin[5] and "m1" not in by_bin[5] and len(by_bin[5]) == 3
    assert sorted(by_bin[9]) == ["near", "top"]
    assert by_bin[2] == ["edge"]
    assert len(by_bin[0]) == 3 and "gone" not in by_bin[0]
    assert ("affection", "silent") not in chosen
    # per-bin counts = min(available, target), available counted independently
    available: dict[int, int] = defaultdict(int)
    for _source, i, v, origin, words in rows:
        if i != "gone" and (origin == "rated" or words >= 1):
            available[bin_of(fmt4(v), 10)] += 1
    assert {b: len(ids) for b, ids in by_bin.items()} == {b: min(n, 3) for b, n in available.items()}


def test_vad_on_the_sample_answers_bins_order_and_counts(sample: dict) -> None:
    config = AssessConfig(vad_per_bin=2)
    out = single(run(sample, config=config)).filter(pl.col("task") == "vad")
    scores = sample["tables"]["vad_scores"]
    usable = decodable(sample["tables"]["manifest"])
    lookup = {(r["source"], r["image_id"]): r for r in scores.iter_rows(named=True)}
    for dimension in ("valence", "arousal", "dominance"):
        got = out.filter(pl.col("sub_task") == dimension)
        candidates: dict[int, list[dict]] = defaultdict(list)
        for key, r in lookup.items():
            if key in usable and r[dimension] is not None and (r["vad_origin"] == "rated" or r["n_lexicon_words"] >= 1):
                candidates[bin_of(fmt4(r[dimension]), 10)].append(r)
        chosen: dict[int, list[dict]] = defaultdict(list)
        for s, i, answer in got.select("source", "image_id", "answer").iter_rows():
            r = lookup[(s, i)]
            assert answer == fmt4(r[dimension])
            b = bin_of(answer, 10)
            assert Decimal(b) / 10 <= Decimal(answer) <= Decimal(b + 1) / 10
            chosen[b].append(r)
        for b, pool in candidates.items():
            picked = chosen.get(b, [])
            assert len(picked) == min(len(pool), 2), (dimension, b)
            rest = [r for r in pool if r not in picked]
            if any(r["vad_origin"] == "lexicon" for r in picked):
                assert all(r["vad_origin"] == "lexicon" for r in rest), "a rated score was left for a lexicon one"
                fewest = min(r["n_lexicon_words"] for r in picked if r["vad_origin"] == "lexicon")
                assert all(r["n_lexicon_words"] <= fewest for r in rest)
        assert set(chosen) <= set(candidates)


# --- dominant emotion ----------------------------------------------------------------------------------------


def test_dominant_emotion_rules_ties_and_candidates_per_source() -> None:
    rows = [
        ("abstract8", "a1", "label_vote", "Sad", 6), ("abstract8", "a1", "label_vote", "Fear", 3),
        ("abstract8", "a2", "label_vote", "Sad", 4), ("abstract8", "a2", "label_vote", "Awe", 4),  # tie
        ("emotion6", "e1", "label_prob", "fear", 0.4), ("emotion6", "e1", "label_prob", "joy", 0.6),
        ("emotion6", "e2", "label_prob", "fear", 0.333334), ("emotion6", "e2", "label_prob", "joy", 0.333333),
        ("affection", "f1", "label_choice", "awe", 1, "w1"), ("affection", "f1", "label_choice", "awe", 1, "w2"),
        ("affection", "f1", "label_choice", "fear", 1, "w3"),
        ("affection", "f2", "label_choice", "something else", 1, "w1"),
        ("affection", "f2", "label_choice", "something else", 1, "w2"), ("affection", "f2", "label_choice", "awe", 1, "w3"),
        ("affection", "f3", "label_choice", "awe", 1, "w1"), ("affection", "f3", "label_choice", "fear", 1, "w2"),
        ("findingemo", "g1", "label_choice", "Serenity", 1, "u1"),
        # EMOTIC: two annotators of person 0 choose Peace, one also Pain; person 1 picks Pain twice (one count)
        ("emotic", "m1", "label_choice", "Peace", 1, "0", 0), ("emotic", "m1", "label_choice", "Pain", 1, "0", 0),
        ("emotic", "m1", "label_choice", "Peace", 1, "1", 0), ("emotic", "m1", "label_choice", "Pain", 1, "0", 1),
        ("emotic", "m1", "label_choice", "Pain", 1, "0", 1), ("emotic", "m1", "label_choice", "Peace", 1, "0", 1),
        ("emotic", "m2", "label_choice", "Fear", 1, "0", 0), ("emotic", "m2", "label_choice", "Pain", 1, "0", 0),
        ("emotic", "m2", "label_combined", "Fear", 1, None, 0),  # combined rows are not annotator choices
        ("gaped", "x1", "valence", None, 50),
    ]
    raw = raw_of(rows)
    keys = sorted({(r[0], r[1]) for r in rows})
    out = single(build_assess(empty("mapped_labels"), empty("vad_scores"), manifest_of(keys), raw, {}))
    got = {(s, i): a for s, i, a in out.select("source", "image_id", "answer").iter_rows()}
    assert got == {("abstract8", "a1"): "Sad", ("emotion6", "e1"): "joy", ("affection", "f1"): "awe",
                   ("findingemo", "g1"): "Serenity", ("emotic", "m1"): "Peace"}
    assert got == {k: v for k, v in expected_dominant(raw).items() if v != "something else"}
    for source, options, sub_task, question in out.select("source", "options", "sub_task", "question").iter_rows():
        # the native vocabulary less "something else" (issue 13: Affection offers the authors' 8 emotions)
        assert options == [label for label in native_vocabulary(source) if label != "something else"]
        assert set(options) == source_facts(source).labels - {"something else"}
        assert sub_task == {"abstract8": "mikels8", "emotion6": "ekman7", "affection": "artemis9",
                            "findingemo": "plutchik24", "emotic": "emotic26"}[source]
        assert "<answer>Dominant emotion: x</answer>" in question and ", ".join(options) in question
    assert "something else" in native_vocabulary("affection")
    affection = out.filter(pl.col("source") == "affection").row(0, named=True)
    assert affection["options"] == ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear",
                                    "sadness"] and "something else" not in affection["question"]


def test_dominant_emotion_balancing_anchor_and_cap() -> None:
    rows, keys = [], []
    sizes = {"Sad": 7, "Fear": 3, "Awe": 1}
    for label, count in sizes.items():
        for n in range(count):
            rows.append(("abstract8", f"{label}{n}", "label_vote", label, 5))
            keys.append(("abstract8", f"{label}{n}"))
    raw = raw_of(rows)
    config = AssessConfig(dec_anchor=2, dec_cap=4)
    first = build_assess(empty("mapped_labels"), empty("vad_scores"), manifest_of(keys), raw, {}, seed=3, config=config)
    counts = dict(first.group_by("answer").len().iter_rows())
    assert counts == {"Sad": 4, "Fear": 3, "Awe": 1}
    for label, count in sizes.items():
        assert min(count, config.dec_anchor) <= counts[label] <= max(config.dec_anchor, config.dec_cap)
    for image_id, answer in single(first).select("image_id", "answer").iter_rows():
        assert image_id.startswith(answer)
    again = build_assess(empty("mapped_labels"), empty("vad_scores"), manifest_of(keys), raw, {}, seed=3, config=config)
    assert again.equals(first)
    with pytest.raises(ValueError):
        AssessConfig(dec_anchor=5, dec_cap=4)


def test_dominant_emotion_answers_rederived_from_raw_annotations_on_the_sample(sample: dict, assess: pl.DataFrame) -> None:
    raw = sample["tables"]["raw_annotations"]
    usable = decodable(sample["tables"]["manifest"])
    expected = {k: v for k, v in expected_dominant(raw).items() if k in usable and v != "something else"}
    got = single(assess.filter(pl.col("task") == "dominant_emotion"))
    pairs = {(s, i): a for s, i, a in got.select("source", "image_id", "answer").iter_rows()}
    assert pairs == expected  # defaults cap nothing on the sample, so every untied image is there
    assert {s for s, _ in pairs} == set(dec_rules())
    for source, answer, options in got.select("source", "answer", "options").iter_rows():
        assert answer in source_facts(source).labels and answer in options


# --- whole table ---------------------------------------------------------------------------------------------


def test_contract_paths_and_decodable_images_only(sample: dict, assess: pl.DataFrame) -> None:
    contract = table_contract("eemodb_assess")
    assert contract.violations(assess) == []
    assert assess.columns == contract.column_names
    assert assess["row_id"].to_list() == sorted(assess["row_id"].to_list())
    assert set(assess["task"]) == set(TASKS)  # every registered task has rows on the sample
    usable = decodable(sample["tables"]["manifest"])
    broken = sample["tables"]["manifest"].filter(~pl.col("decodable")).height
    assert broken > 0, "the sample should hold an undecodable image"
    for paths, sources, ids in assess.select("image_paths", "sources", "source_image_ids").iter_rows():
        assert len(paths) == len(sources) == len(ids) == 1
        assert (sources[0], ids[0]) in usable
        assert paths[0] == f"{sources[0]}/{usable[(sources[0], ids[0])]}"
    for r in assess.iter_rows(named=True):
        assert r["row_id"] == row_id(r["task"], r["sub_task"], r["template_id"],
                                     [f"{r['sources'][0]}/{r['source_image_ids'][0]}"], r["answer"])
        assert "@" in r["template_id"] and "<think>...</think><answer>" in r["question"]
        if r["task"] == "vad":
            assert f"<answer>{r['sub_task'].capitalize()}: x.xxxx</answer>" in r["question"]
            assert r["options"] is None and len(r["answer"]) == 6 and 0 <= float(r["answer"]) <= 1


def test_provenance_is_complete(sample: dict, assess: pl.DataFrame) -> None:
    scores = {(r["source"], r["image_id"]): r for r in sample["tables"]["vad_scores"].iter_rows(named=True)}
    for r in assess.iter_rows(named=True):
        source = r["sources"][0]
        record = json.loads(r["provenance"])
        assert r["provenance"] == json.dumps(record, sort_keys=True, separators=(",", ":"))
        assert record["code"] == CODE_ID and record["seed"] == 0
        expected_inputs = {k: v for k, v in sample["inputs"].items() if k.endswith(f"[{source}]") or "[" not in k}
        assert record["inputs"] == expected_inputs
        assert "vad_scores[oasis]" not in record["inputs"] or source == "oasis"
        if r["task"] == "vad":
            score = scores[(source, r["source_image_ids"][0])]
            assert record["vad_origin"] == score["vad_origin"]
            assert record["n_lexicon_words"] == score["n_lexicon_words"]
        else:
            assert "vad_origin" not in record


def test_same_inputs_and_seed_give_byte_identical_parquet(sample: dict, assess: pl.DataFrame, tmp_path: Path) -> None:
    again = run(sample)
    first, second = write_parquet(assess, tmp_path / "a.parquet"), write_parquet(again, tmp_path / "b.parquet")
    assert first.read_bytes() == second.read_bytes()
    # a different seed only changes which images are drawn, never an answer key
    other = single(run(sample, seed=7, config=AssessConfig(vad_per_bin=1)))
    usable = decodable(sample["tables"]["manifest"])
    scores = {(r["source"], r["image_id"]): r for r in sample["tables"]["vad_scores"].iter_rows(named=True)}
    for s, i, sub_task, answer in other.filter(pl.col("task") == "vad").select("source", "image_id", "sub_task", "answer").iter_rows():
        assert (s, i) in usable and answer == fmt4(scores[(s, i)][sub_task])
