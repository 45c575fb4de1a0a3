"""Subset builds at the paper's size: EEmoDB-QA over 122,332 images of the 7 sources (Table 5: 1,197,288
instructions, 355,611 on image pairs) and EEmoDB-Assess (36,000 instructions from 25,315 images), each count
printed beside the paper's.

Inputs are synthetic but shaped like the real tables (mapped_labels with sparse distributions and rankings,
FindingEmo with one label per image, vad_scores, a manifest with a few undecodable images, content categories,
and reasoning plus descriptive answers for the Affection images as the generation defaults give them: every
single-image kind per described image, ``DEFAULT_PAIRS_PER_SOURCE`` pairs per pair kind), built in
memory before the clock starts. Each timing runs in a fresh process (wall time of the step alone; peak
memory is the process's VmHWM, input generation included). Target for the whole QA + Assess build on a
2-core machine: under 60 s and 4 GiB.

Two input profiles for Affection's labels (70% of the images), each printed beside the paper's counts:
``synthetic`` (random sparse weights: nearly every image has an untied ranking) and ``real-shaped`` (votes from
``perf/synthetic.py``'s generator calibrated on the real ArtEmis votes, mapped by the project's ``map_labels``:
under half of the images keep an untied ranking). ``--artemis-json`` prints the calibration: the real file's
ranking profile through ``map_labels`` beside the generator's under the file's selection.

    .venv/bin/python perf/subsets.py [--images N] [--repeats N] [--only qa] [--profile both]
                                     [--artemis-json PATH/test_ArtEmis.json]

``main`` runs one timing block per entry of ``BENCHMARKS`` and profile; more blocks (e.g. ``bench_assess``) append
to it with the same signature ``(images, repeats, profile) -> figures``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl

REPO = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, REPO)

from eemo_pipeline.contracts import table_contract  # noqa: E402
from eemo_pipeline.generation.stages.descriptive import DEFAULT_PAIRS_PER_SOURCE  # noqa: E402
from eemo_pipeline.labels.mapping import map_labels  # noqa: E402
from perf.measure import measure  # noqa: E402
from perf.subsets_assess import PAPER_ASSESS_IMAGES, PAPER_ASSESS_ROWS, bench_assess  # noqa: E402
from perf.synthetic import ARTEMIS_RANKING_PROFILE, affection_votes, ranking_profile  # noqa: E402

PROFILES = ("synthetic", "real-shaped")

BUILD_TARGET_S = 60.0  # QA + Assess together
PEAK_TARGET_MIB = 4096.0
IMAGES = 122_332
# Table 5 of the paper: the published totals (counts per sub-task were not published).
PAPER_QA_ROWS = 1_197_288
PAPER_QA_PAIR_ROWS = 355_611

# Setup (not timed): synthetic per-source tables. Source shares roughly as in the paper's image pool;
# gaped and oasis carry only VAD ratings, abstract8 only labels.
_INPUTS_SETUP = """
import sys
sys.path.insert(0, REPO)
import numpy as np, polars as pl
from eemo_pipeline.contracts import table_contract
from eemo_pipeline.labels.taxonomy import TARGETS
images = IMAGES
rng = np.random.default_rng(0)
shares = {"affection": 0.70, "findingemo": 0.17, "emotic": 0.10, "emotion6": 0.016, "oasis": 0.007,
          "gaped": 0.006, "abstract8": 0.001}
counts = {s: max(50, int(images * f)) for s, f in shares.items()}
counts["affection"] += images - sum(counts.values())
labelled = [s for s in counts if s not in ("gaped", "oasis")]
rated = [s for s in counts if s != "abstract8"]
# Content categories (sources.yaml qa.pair_category): Affection's 5 sub-datasets, EMOTIC's 4 original databases,
# FindingEmo's settings, GAPED's 6 letters, OASIS's 4 categories; Abstract-8 and Emotion6 declare none.
n_categories = {"affection": 5, "emotic": 4, "findingemo": 12, "gaped": 6, "oasis": 4}
frames = {"labels": [], "vad": [], "manifest": [], "categories": []}
for source, n in counts.items():
    ids = np.char.add(f"{source}/img_", np.arange(n).astype(str))
    decodable = rng.random(n) > 0.002
    frames["manifest"].append(pl.DataFrame({"source": source, "image_id": ids,
        "image_path": np.char.add(ids, ".jpg"), "decodable": decodable}))
    if source in n_categories:
        frames["categories"].append(pl.DataFrame({"source": source, "image_id": ids,
            "category": np.char.add("c", rng.integers(0, n_categories[source], n).astype(str))}))
    if source in labelled:
        w = rng.random((n, 7)) ** 3
        w[rng.random((n, 7)) < 0.5] = 0.0
        if source == "findingemo":  # one label per image
            w[:] = 0.0
        w[np.arange(n), rng.integers(0, 7, n)] += 0.6
        p = w / w.sum(axis=1, keepdims=True)
        order = np.argsort(-p, axis=1)[:, :3]
        names = np.array(TARGETS)[order]
        top = np.take_along_axis(p, order, axis=1)
        k = (top > 0).sum(axis=1)
        ranking = pl.DataFrame({"r": names.tolist(), "k": k}).select(pl.col("r").list.head(pl.col("k")))["r"]
        frame = pl.DataFrame({"source": source, "image_id": ids, **{f"p_{t}": p[:, j] for j, t in enumerate(TARGETS)},
                              "n_labels": 5, "taxonomy": "bench"}).with_columns(
            pl.Series("ranking", ranking), pl.Series("dominant_emotion", names[:, 0]))
        frames["labels"].append(frame)
    if source in rated:
        frames["vad"].append(pl.DataFrame({"source": source, "image_id": ids, "valence": rng.beta(2, 2, n),
            "arousal": rng.beta(2, 2, n), "dominance": rng.beta(2, 2, n), "vad_origin": "rated"}))
if PROFILE == "real-shaped":  # Affection's labels from real-shaped votes through the project's map_labels
    from eemo_pipeline.labels.mapping import map_labels
    from perf.synthetic import affection_votes
    affection_ids = next(f for f in frames["manifest"] if f["source"][0] == "affection")["image_id"].to_numpy()
    votes = table_contract("raw_annotations").conform(affection_votes(affection_ids, seed=0))
    frames["labels"] = [f for f in frames["labels"] if f["source"][0] != "affection"]
    frames["labels"].append(map_labels("affection", votes).labels)
mapped_labels = pl.concat([table_contract("mapped_labels").conform(f) for f in frames["labels"]])
from perf.synthetic import ranking_profile
affection_profile = ranking_profile(mapped_labels.filter(pl.col("source") == "affection"), counts["affection"])
vad_scores = table_contract("vad_scores").conform(pl.concat(frames["vad"]))
manifest = table_contract("image_manifest").conform(pl.concat(frames["manifest"]))
categories = pl.concat(frames["categories"])
# Generation as its defaults select: every ranked Affection image has comments, so it is described and reasoned.
described = mapped_labels.filter((pl.col("source") == "affection") & pl.col("ranking").is_not_null())
generated = dict(template_version="1", model="bench-model", cached=False, attempts=1, prompt_tokens=0,
                 completion_tokens=0)
reasoning = table_contract("generated_text").conform(described.select(
    "source", "image_id", pl.lit("reason").alias("template"),
    (pl.col("source") + "/" + pl.col("image_id") + "/reason").alias("key"),
    pl.format("Open light and faces make viewers feel {} because of the scene. The rest of the picture is quiet.",
              pl.col("dominant_emotion")).alias("text"), *(pl.lit(v).alias(k) for k, v in generated.items())))
choice = ("Correct: the open light brings " + pl.col("dominant_emotion") + ".\\nDistractor: the open light brings x."
          "\\nDistractor: the open light brings y.\\nDistractor: the open light brings z.")
singles = pl.concat([described.select("source", "image_id", pl.lit(kind).alias("template"),
                                      (choice if kind == "reasoning_choice" else pl.lit(" ".join(["word"] * 150)))
                                      .alias("text"))
                     for kind in ("narrative", "causal", "evocation", "reasoning_choice")])
# Pairs within one category, DEFAULT_PAIRS_PER_SOURCE per pair kind (consecutive images of a category).
by_category = described.select("source", "image_id").join(categories, on=["source", "image_id"]).sort(
    "category", "image_id").with_columns((pl.int_range(pl.len()).over("category") // 2).alias("_pair"),
                                         (pl.int_range(pl.len()).over("category") % 2).alias("_slot"))
pairs = by_category.filter(pl.col("_slot") == 0).join(
    by_category.filter(pl.col("_slot") == 1).select("category", "_pair", pl.col("image_id").alias("image_id_b")),
    on=["category", "_pair"]).sort("_pair", "category").head(PAIRS_PER_SOURCE)
pairs = pl.concat([pairs.select("source", "image_id", "image_id_b", pl.lit(kind).alias("template"),
                                pl.lit("arousal" if kind == "pair_dimension" else None, pl.String).alias("dimension"),
                                pl.lit(" ".join(["word"] * 150)).alias("text"))
                   for kind in ("pair_ranking", "pair_dimension")])
answers = pl.concat([singles, pairs], how="diagonal_relaxed").with_columns(
    pl.concat_str("source", pl.lit("/"), "image_id", pl.lit("|"), pl.col("image_id_b").fill_null(""), pl.lit("/"),
                  "template").alias("key"), *(pl.lit(v).alias(k) for k, v in generated.items()))
descriptive_answers = table_contract("generated_text").conform(answers)
inputs = {f"{a}[{s}]": f"{a}-{s}-0123456789abcdef" for a in ("mapped_labels", "vad_scores", "image_manifest",
          "descriptive_answers", "emotion_reasoning", "raw_annotations") for s in counts}
"""
_QA_SETUP = _INPUTS_SETUP + """
from eemo_pipeline.subsets.qa import build_qa
"""
_QA_STEP = """
qa = build_qa(mapped_labels, vad_scores, manifest, descriptive_answers, inputs, seed=0, reasoning=reasoning,
             categories=categories)
RESULT = {"images": manifest.height, "rows": qa.height,
          "by_sub_task": dict(sorted(qa.group_by("sub_task").len().iter_rows())),
          "pairs": int((qa["image_paths"].list.len() == 2).sum()), "affection_profile": affection_profile}
"""


def bench_qa(images: int = IMAGES, repeats: int = 1, profile: str = "synthetic") -> dict:
    """Time ``build_qa`` over synthetic inputs for ``images`` images across the 7 sources (``profile``: how
    Affection's labels are made, see the module docstring)."""
    figures = measure(_QA_STEP, _QA_SETUP, {"IMAGES": images, "PAIRS_PER_SOURCE": DEFAULT_PAIRS_PER_SOURCE,
                                            "PROFILE": profile, "REPO": REPO}, repeats)
    scale = images / IMAGES  # the paper's counts scaled to the image pool asked for
    print(f"eemodb_qa ({profile} inputs; Affection images: {json.dumps(figures['affection_profile'])})")
    print(f"  {figures['images']:,} images -> {figures['rows']:,} QA rows "
          f"({figures['rows'] / figures['images']:.1f} per image, {figures['pairs']:,} on image pairs)")
    print(f"  paper (Table 5{', scaled' if scale != 1 else ''}): {PAPER_QA_ROWS * scale:,.0f} rows, "
          f"{PAPER_QA_PAIR_ROWS * scale:,.0f} on pairs ({PAPER_QA_PAIR_ROWS / PAPER_QA_ROWS:.1%}); ours "
          f"{figures['rows'] / (PAPER_QA_ROWS * scale) - 1:+.1%} rows, {figures['pairs'] / figures['rows']:.1%} on pairs")
    print(f"  {'sub_task':28s} {'ours':>9s}  paper: per sub-task counts not published")
    for sub_task, count in figures["by_sub_task"].items():
        print(f"  {sub_task:28s} {count:>9,}")
    print(f"  wall {figures['wall_s']:.2f} s, peak {figures['peak_mib']:.0f} MiB "
          f"(QA + Assess targets: < {BUILD_TARGET_S:.0f} s, < {PEAK_TARGET_MIB:.0f} MiB)")
    ok = figures["wall_s"] < BUILD_TARGET_S and figures["peak_mib"] < PEAK_TARGET_MIB
    print("  verdict (QA alone):", "PASS" if ok else "MISS")
    return figures


# Timing blocks run by main(), in order: (name, function of (images, repeats, profile)).
BENCHMARKS: list[tuple[str, Callable[..., dict]]] = [("qa", bench_qa), ("assess", bench_assess)]


def artemis_calibration(path: Path) -> dict[str, dict[str, float]]:
    """The ranking profile of the real ArtEmis votes of ``path`` through ``map_labels``, beside the generator's
    under the same selection (one clear dominant emotion) for as many artworks."""
    items = json.loads(path.read_text(encoding="utf-8"))
    real = pl.DataFrame([{"source": "affection", "image_id": str(item["new_id"]), "measure": "label_choice",
                          "label": emotion, "value": 1.0, "annotator": str(k), "source_file": path.name,
                          "source_line": n * 100 + k}
                         for n, item in enumerate(items) for k, emotion in enumerate(item["emotion"])])
    ids = [f"generated/{i}" for i in range(len(items))]
    generated = affection_votes(ids, seed=0, selected=True)
    contract = table_contract("raw_annotations")
    return {name: {"votes_per_image": round(votes.height / len(items), 2),
                   **ranking_profile(map_labels("affection", contract.conform(votes)).labels, len(items))}
            for name, votes in (("real ArtEmis test votes", real), ("generator, same selection", generated))}


def print_counts(results: dict[tuple[str, str], dict], images: int = IMAGES) -> None:
    """QA and Assess counts per input profile beside Table 5 (its QA counts scaled to ``images``)."""
    columns = [p for p in PROFILES if any(profile == p for _, profile in results)]
    scale = images / IMAGES
    rows = [("QA rows", "qa", "rows", round(PAPER_QA_ROWS * scale)),
            ("QA rows on image pairs", "qa", "pairs", round(PAPER_QA_PAIR_ROWS * scale)),
            ("Assess rows", "assess", "rows", PAPER_ASSESS_ROWS),
            ("Assess images", "assess", "used_images", PAPER_ASSESS_IMAGES)]
    scaled = f", its QA counts scaled to {images:,} images" if scale != 1 else ""
    print(f"\ncounts by input profile at {images:,} images, beside Table 5{scaled}")
    print(f"  {'':24s}" + "".join(f"{p:>14s}" for p in columns) + f"{'paper':>14s}")
    for label, block, key, paper in rows:
        if any((block, p) in results for p in columns):
            cells = "".join(f"{results[(block, p)][key]:>14,}" if (block, p) in results else f"{'-':>14s}"
                            for p in columns)
            print(f"  {label:24s}{cells}{paper:>14,}")
    if any(("qa", p) in results for p in columns):
        cells = "".join(f"{results[('qa', p)]['affection_profile']['ranked']:>14.1%}" if ("qa", p) in results
                        else f"{'-':>14s}" for p in columns)
        print(f"  {'Affection ranked':24s}{cells}{ARTEMIS_RANKING_PROFILE['ranked']:>14.1%}  (last: real ArtEmis "
              "test votes, selected for a clear dominant emotion)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=IMAGES)
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs")
    parser.add_argument("--only", choices=[name for name, _ in BENCHMARKS], help="run a single timing block")
    parser.add_argument("--profile", choices=[*PROFILES, "both"], default="both", help="Affection's label inputs")
    parser.add_argument("--artemis-json", type=Path, help="the authors' test_ArtEmis.json: print the calibration")
    args = parser.parse_args()
    if args.artemis_json:
        print("Affection vote generator calibration (perf/synthetic.py), shares of all artworks:")
        for name, figures in artemis_calibration(args.artemis_json).items():
            print(f"  {name:28s} {json.dumps(figures)}")
    results = {}
    for profile in PROFILES if args.profile == "both" else (args.profile,):
        for name, bench in BENCHMARKS:
            if args.only in (None, name):
                results[(name, profile)] = bench(args.images, repeats=args.repeats, profile=profile)
        chosen = [f for (_, p), f in results.items() if p == profile]
        if len(chosen) > 1:
            wall = sum(f["wall_s"] for f in chosen)
            peak = max(f["peak_mib"] for f in chosen)
            print(f"all blocks ({profile}): wall {wall:.2f} s (target < {BUILD_TARGET_S:.0f} s), max peak {peak:.0f} MiB")
    print_counts(results, args.images)


if __name__ == "__main__":
    main()
