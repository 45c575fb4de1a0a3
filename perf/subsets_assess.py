"""EEmoDB-Assess at full size: ``build_assess`` over synthetic inputs for 122k images (EEmoDB-QA's image pool).

The inputs are generated in memory in a fresh process (not timed): every image decodable but 0.5 %;
Emotion6 1,980 images with probabilities over the seven targets (ranking and dominant emotion); Abstract-8 280
images with votes; EMOTIC 23,000 images with 1-2 persons x 1-3 annotators choosing 1-3 categories plus rated
V/A/D; FindingEmo 25,869 images with one Plutchik choice and rated V/A; GAPED 730 and OASIS 900 rated images;
Affection the rest (about 69k images, 5 choices each, or with ``--profile real-shaped`` votes from the calibrated
generator of ``perf/synthetic.py``; lexicon V/A/D with 1-40 words). Label draws are
skewed (Zipf-like) so the dominant-emotion balancing has majority and minority classes. Then only
``build_assess`` is timed; peak memory is the process's VmHWM (inputs included).

    .venv/bin/python perf/subsets_assess.py [--images N] [--repeats N]

``bench_assess`` is also importable, for ``perf/subsets.py``'s ``BENCHMARKS`` list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, REPO)

from perf.measure import measure  # noqa: E402

ASSESS_IMAGES = 122_332
PAPER_ASSESS_ROWS = 36_000  # Table 5: EEmoDB-Assess instructions ...
PAPER_ASSESS_IMAGES = 25_315  # ... from this many images
ASSESS_TARGET_S = 5.0

_SETUP = """
import sys
sys.path.insert(0, REPO)
import numpy as np, polars as pl
from eemo_pipeline.contracts import source_facts, table_contract
from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.subsets.assess import build_assess
from eemo_pipeline.tasks.dominant_emotion import native_vocabulary
rng = np.random.default_rng(0)
sizes = {"emotion6": 1_980, "abstract8": 280, "emotic": 23_000, "findingemo": 25_869, "gaped": 730, "oasis": 900}
sizes["affection"] = IMAGES - sum(sizes.values())
ids = {s: np.array([f"{s}_{i:06d}" for i in range(n)]) for s, n in sizes.items()}

def skewed(labels, n):
    weights = 1.0 / np.arange(1, len(labels) + 1) ** 1.1
    return np.array(labels)[rng.choice(len(labels), n, p=weights / weights.sum())]

manifest = pl.concat([pl.DataFrame({"source": s, "image_id": ids[s], "image_path": [f"img/{i}.jpg" for i in ids[s]],
                                    "decodable": rng.random(len(ids[s])) > 0.005}) for s in sizes])
manifest = table_contract("image_manifest").conform(manifest)

raw_parts = []
def raw(source, image, measure, label, value, annotator=None, subject=None):
    n = len(image)
    raw_parts.append(pl.DataFrame({
        "source": source, "image_id": image, "measure": measure, "label": label,
        "value": np.asarray(value, dtype=np.float64),
        "annotator": pl.Series(annotator, dtype=pl.String) if annotator is not None else pl.repeat(None, n, dtype=pl.String, eager=True),
        "subject": pl.Series(subject, dtype=pl.Int32) if subject is not None else pl.repeat(None, n, dtype=pl.Int32, eager=True),
        "source_file": "bench", "source_line": np.arange(n, dtype=np.int64) + 2}))

# Emotion6: Dirichlet probabilities (7 rows per image) and the mapped ranking from them.
probs = rng.dirichlet(np.full(7, 0.6), sizes["emotion6"]).round(6)
raw("emotion6", np.repeat(ids["emotion6"], 7), "label_prob", np.tile(np.array(TARGETS), sizes["emotion6"]), probs.ravel())
order = np.argsort(-probs, axis=1, kind="stable")
mapped = pl.DataFrame({"source": "emotion6", "image_id": ids["emotion6"],
                       **{f"p_{t}": probs[:, k] for k, t in enumerate(TARGETS)},
                       "ranking": [[TARGETS[k] for k in row[:3]] for row in order], "n_labels": 7, "taxonomy": "ekman7"})
mapped = table_contract("mapped_labels").conform(mapped.with_columns(pl.col("ranking").list.first().alias("dominant_emotion")))
# Abstract-8: 14 votes over the 8 classes.
votes = rng.multinomial(14, np.full(8, 1 / 8), sizes["abstract8"])
raw("abstract8", np.repeat(ids["abstract8"], 8), "label_vote", np.tile(np.array(native_vocabulary("abstract8")), sizes["abstract8"]), votes.ravel())
# Affection: 5 skewed choices per image (synthetic), or real-shaped votes (perf/synthetic.py).
if PROFILE == "real-shaped":
    from perf.synthetic import affection_votes
    votes = affection_votes(ids["affection"], seed=0)
    raw("affection", votes["image_id"].to_numpy(), "label_choice", votes["label"].to_numpy(), votes["value"].to_numpy(),
        annotator=votes["annotator"].to_list())
else:
    n = sizes["affection"] * 5
    raw("affection", np.repeat(ids["affection"], 5), "label_choice", skewed(native_vocabulary("affection"), n),
        np.ones(n), annotator=[f"w{i}" for i in rng.integers(0, 6_000, n)])
# FindingEmo: one choice per image.
raw("findingemo", ids["findingemo"], "label_choice", skewed(native_vocabulary("findingemo"), sizes["findingemo"]), np.ones(sizes["findingemo"]), annotator=["u1"] * sizes["findingemo"])
# EMOTIC: (person, annotator) selections of 1-3 categories.
persons = rng.integers(1, 3, sizes["emotic"])
annotators = rng.integers(1, 4, persons.sum())
selection_image = np.repeat(np.repeat(ids["emotic"], persons), annotators)
selection_subject = np.repeat(np.concatenate([np.arange(p) for p in persons]), annotators)
selection_annotator = np.concatenate([np.arange(a) for a in annotators])
per = rng.integers(1, 4, len(selection_image))
raw("emotic", np.repeat(selection_image, per), "label_choice", skewed(native_vocabulary("emotic"), per.sum()), np.ones(per.sum()),
    annotator=np.repeat(selection_annotator, per).astype(str), subject=np.repeat(selection_subject, per))
raw_annotations = table_contract("raw_annotations").conform(pl.concat(raw_parts, how="vertical"))

def scores(source, dims, origin):
    n = sizes[source]
    frame = {"source": source, "image_id": ids[source], "vad_origin": origin}
    for d in ("valence", "arousal", "dominance"):
        frame[d] = rng.beta(2.2, 2.2, n) if d in dims else np.full(n, np.nan)
    frame["n_ratings"] = pl.Series(np.full(n, 10) if origin == "rated" else [None] * n, dtype=pl.Int32)
    frame["n_lexicon_words"] = pl.Series(rng.integers(1, 41, n) if origin == "lexicon" else [None] * n, dtype=pl.Int32)
    return pl.DataFrame(frame).with_columns(pl.col("valence", "arousal", "dominance").fill_nan(None))
vad = table_contract("vad_scores").conform(pl.concat([
    scores("emotion6", ("valence", "arousal"), "rated"), scores("emotic", ("valence", "arousal", "dominance"), "rated"),
    scores("findingemo", ("valence", "arousal"), "rated"), scores("gaped", ("valence", "arousal"), "rated"),
    scores("oasis", ("valence", "arousal"), "rated"), scores("affection", ("valence", "arousal", "dominance"), "lexicon"),
], how="vertical"))
inputs = {f"{a}[{s}]": f"{a}-{s}-v1" for a in ("raw_annotations", "image_manifest", "mapped_labels", "vad_scores") for s in sizes}
"""

_STEP = """
assess = build_assess(mapped, vad, manifest, raw_annotations, inputs, seed=0)
counts = dict(assess.group_by("task").len().iter_rows())
used = assess.select(pl.concat_str(pl.col("sources").list.first(), pl.lit("/"), pl.col("source_image_ids").list.first()))
RESULT = {"images": manifest.height, "raw_rows": raw_annotations.height, "rows": assess.height,
          "used_images": used.n_unique(), **counts}
"""


def bench_assess(images: int = ASSESS_IMAGES, repeats: int = 3, profile: str = "synthetic",
                 **_: object) -> dict[str, float]:
    """Time ``build_assess`` over ``images`` synthetic images; ``profile`` "real-shaped" draws Affection's votes
    from ``perf/synthetic.py``'s calibrated generator (extra keyword arguments are ignored, so the function fits a
    ``BENCHMARKS`` list whose blocks receive other options)."""
    figures = measure(_STEP, _SETUP, {"IMAGES": int(images), "PROFILE": profile, "REPO": REPO}, repeats)
    print(
        f"eemodb_assess ({profile} inputs): {figures['images']:,} images, {figures['raw_rows']:,} raw annotation rows -> "
        f"{figures['rows']:,} rows (ranking {figures.get('ranking', 0):,}, vad {figures.get('vad', 0):,}, "
        f"dominant_emotion {figures.get('dominant_emotion', 0):,})"
    )
    print(f"  {figures['rows']:,} rows from {figures['used_images']:,} images; paper (Table 5): {PAPER_ASSESS_ROWS:,} rows "
          f"from {PAPER_ASSESS_IMAGES:,} images ({figures['rows'] / PAPER_ASSESS_ROWS - 1:+.1%} rows, "
          f"{figures['used_images'] / PAPER_ASSESS_IMAGES - 1:+.1%} images)")
    print(f"  wall {figures['wall_s']:.2f} s (target < {ASSESS_TARGET_S:.0f} s), peak {figures['peak_mib']:.0f} MiB")
    print("  verdict:", "PASS" if figures["wall_s"] < ASSESS_TARGET_S else "MISS")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=ASSESS_IMAGES)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--profile", choices=["synthetic", "real-shaped"], default="synthetic",
                        help="Affection's votes: 5 skewed choices per image, or the calibrated real-shaped generator")
    args = parser.parse_args()
    bench_assess(args.images, repeats=args.repeats, profile=args.profile)


if __name__ == "__main__":
    main()
