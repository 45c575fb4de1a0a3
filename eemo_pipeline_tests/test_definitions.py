from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "peft", "trl", "vllm", "openai", "simplemma")


def test_code_location_imports_no_heavy_package() -> None:
    # The UI, run workers and sensors import the code location: it must stay light (target < 3 s).
    code = "import sys, eemo_pipeline.definitions; print(sorted(m for m in %r if m in sys.modules))" % (HEAVY,)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_definitions_hold_assets_checks_and_job() -> None:
    from dagster import AssetKey

    from eemo_pipeline.assets.ingestion import raw_annotations
    from eemo_pipeline.contracts import source_declarations
    from eemo_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "source_files", "raw_annotations", "image_manifest", "label_taxonomy", "emotic_vad_centroids", "mapped_labels",
        "vad_lexicon", "vad_scores", "vad_validation", "image_descriptions", "emotion_reasoning",
        "descriptive_answers", "eemodb_qa", "eemodb_assess", "sft_dataset", "grpo_dataset", "sft_checkpoint",
        "grpo_checkpoint", "benchmark_eemo_bench", "benchmark_cross_domain", "benchmark_report",
    }
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    blocking = {"raw_annotations", "image_manifest", "mapped_labels", "vad_lexicon", "vad_scores",
                "image_descriptions", "emotion_reasoning", "descriptive_answers", "eemodb_qa", "eemodb_assess"}
    assert {(asset, "contract") for asset in blocking} <= checks
    for job in ("ingest_sources", "reference_tables", "refine_sources", "generate_text", "build_subsets",
                "train_models", "evaluate_models"):
        assert defs.resolve_job_def(job) is not None
    # Training and evaluation hold the GPU pool, one run at a time by default.
    assert [graph.get(AssetKey(name)).pools for name in ("sft_checkpoint", "grpo_checkpoint")] == [{"gpu"}, {"gpu"}]
    assert raw_annotations.partitions_def.get_partition_keys() == list(source_declarations())  # sources.yaml order


@pytest.mark.slow
def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_bytes((REPO / "dagster.yaml").read_bytes())
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr
