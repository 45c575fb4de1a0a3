"""benchmark_eemo_bench, benchmark_cross_domain and benchmark_report through dagster.materialize on the sample
benchmarks: the tiny offline Qwen2.5-VL (base and PEFT checkpoints) and the local OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from dagster import asset, materialize

pytest.importorskip("peft", reason="the train extra (torch, transformers, peft) is not installed")
pytestmark = pytest.mark.slow

from eemo_pipeline.assets.evaluation import (  # noqa: E402
    benchmark_cross_domain,
    benchmark_eemo_bench,
    benchmark_report,
)
from eemo_pipeline.evaluation.models import default_model_entries, parse_model_entry  # noqa: E402
from eemo_pipeline.evaluation.readers import ARTEMIS_CSV, UNIAA_RELEASED  # noqa: E402
from eemo_pipeline.evaluation.samples import write_sample_benchmarks  # noqa: E402
from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL  # noqa: E402
from eemo_pipeline.generation.offline_server.server import running_in_thread  # noqa: E402
from eemo_pipeline.resources import InputPathsResource, LLMEndpointResource, ParquetIOManager, StorageResource  # noqa: E402

QUICK = {"limit": 2, "max_new_tokens": 4, "batch_size": 4}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample benchmarks, the tiny model and one random LoRA adapter per training stage."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from eemo_pipeline.training.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("evaluation")
    write_sample_benchmarks(root / "benchmarks")
    build_tiny_model(root / "tiny")
    for seed, stage in enumerate(("sft", "grpo"), start=1):
        model = get_peft_model(AutoModelForImageTextToText.from_pretrained(root / "tiny"),
                               LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        torch.manual_seed(seed)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0, 0.5)
        model.save_pretrained(root / stage / "adapter")
    return root


def checkpoint_assets(root: Path) -> list:
    """Stand-ins for the training assets: the one-row frames they return, pointing at the adapters."""

    def frame(stage: str) -> pl.DataFrame:
        return pl.DataFrame({"stage": [stage], "checkpoint_path": [str(root / stage / "adapter")],
                             "base_model_path": [str(root / "tiny")], "global_step": [3]})

    @asset(name="sft_checkpoint")
    def sft() -> pl.DataFrame:
        return frame("sft")

    @asset(name="grpo_checkpoint")
    def grpo() -> pl.DataFrame:
        return frame("grpo")

    return [sft, grpo]


def resources(storage: Path, judge_url: str = "") -> dict:
    store = StorageResource(root=str(storage))
    return {"io_manager": ParquetIOManager(storage=store), "storage": store, "input_paths": InputPathsResource(),
            "judge": LLMEndpointResource(role="judge", base_url=judge_url, model=DEFAULT_MODEL if judge_url else "",
                                         max_retries=0)}


def test_model_entries() -> None:
    rows = [{"stage": "sft", "checkpoint_path": "/c/sft", "base_model_path": "/m/base"},
            {"stage": "grpo", "checkpoint_path": "/c/grpo", "base_model_path": "/m/base"}]
    assert default_model_entries(rows, None) == [("base", "/m/base"), ("sft", "/c/sft"), ("grpo", "/c/grpo")]
    assert default_model_entries(rows, "/m/other")[0] == ("base", "/m/other")
    assert parse_model_entry("qwen=http://127.0.0.1:8000/v1#qwen2.5-vl") == ("qwen", "http://127.0.0.1:8000/v1#qwen2.5-vl")
    assert parse_model_entry("http://127.0.0.1:8000/v1#qwen2.5-vl") == ("qwen2.5-vl", "http://127.0.0.1:8000/v1#qwen2.5-vl")
    assert parse_model_entry("endpoint:describer") == ("endpoint:describer", "endpoint:describer")
    assert parse_model_entry("/models/ckpt-7") == ("ckpt-7", "/models/ckpt-7")


def test_default_models_are_the_base_and_both_checkpoints(workspace: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EEMO_BASE_MODEL", str(workspace / "tiny"))
    config = {**QUICK, "root": str(workspace / "benchmarks" / "eemo_bench")}
    result = materialize([*checkpoint_assets(workspace), benchmark_eemo_bench], resources=resources(tmp_path),
                         run_config={"ops": {"benchmark_eemo_bench": {"config": config}}})
    assert result.success
    predictions = pl.read_parquet(tmp_path / "benchmark_eemo_bench.parquet")
    assert predictions["model"].unique(maintain_order=True).to_list() == ["base", "sft", "grpo"]
    # limit 2 per task: 2 perception, 2 ranking, 2 description, 2 vad items x 3 dimensions x 2 modes, per model.
    per_model = predictions.group_by("model", "task").len().sort("model", "task")
    assert set(per_model["len"].to_list()) == {2, 12} and per_model.height == 12
    probability = predictions.filter(pl.col("mode") == "probability")
    assert probability.height == 18 and all(abs(sum(p) - 1) < 1e-6 for p in probability["probabilities"].to_list())
    by_model = {m: part.sort("item_id", "sub_task")["probabilities"].to_list()
                for (m,), part in probability.group_by("model")}
    assert by_model["base"] != by_model["sft"] != by_model["grpo"]  # each adapter changes the model
    models = result.asset_materializations_for_node("benchmark_eemo_bench")[0].metadata["models"].value
    assert {name: entry["spec"] for name, entry in models.items()} == {
        "base": str(workspace / "tiny"), "sft": str(workspace / "sft" / "adapter"),
        "grpo": str(workspace / "grpo" / "adapter")}


def test_the_tiny_model_and_a_local_server_through_to_the_report(workspace: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    roots = {name: workspace / "benchmarks" / name for name in ("eemo_bench", "artphoto", "artemis", "uniaa", "aesbench")}
    for name in ("artphoto", "artemis", "uniaa", "aesbench"):
        monkeypatch.setenv(f"EEMO_{name.upper()}_ROOT", str(roots[name]))
    monkeypatch.setenv("EEMO_AESBENCH_ANSWER_KEY", str(roots["aesbench"] / "AesE_answer_key.json"))
    storage = tmp_path / "storage"
    with running_in_thread() as server:
        models = [f"tiny={workspace / 'tiny'}", f"offline={server.base_url}#{DEFAULT_MODEL}"]
        evaluation = {**QUICK, "models": models}
        run_config = {"ops": {"benchmark_eemo_bench": {"config": {**evaluation, "root": str(roots["eemo_bench"])}},
                              "benchmark_cross_domain": {"config": {**evaluation, "artemis_file": ARTEMIS_CSV}},
                              "benchmark_report": {"config": {"judge_rounds": 1}}}}
        assets = [*checkpoint_assets(workspace), benchmark_eemo_bench, benchmark_cross_domain, benchmark_report]
        result = materialize(assets, resources=resources(storage, server.base_url), run_config=run_config)
        assert result.success
        first_requests = server.total_requests()
        assert first_requests > 0

        server.reset_log()
        rerun = materialize(assets, resources=resources(storage, server.base_url), run_config=run_config,
                            selection=[benchmark_eemo_bench, benchmark_cross_domain, benchmark_report])
        assert rerun.success and server.total_requests() == 0  # every model and judge answer came from the cache

    eemo = pl.read_parquet(storage / "benchmark_eemo_bench.parquet")
    cross = pl.read_parquet(storage / "benchmark_cross_domain.parquet")
    assert set(eemo["model"]) == set(cross["model"]) == {"tiny", "offline"}
    assert set(cross["benchmark"]) == {"artphoto", "artemis", "uniaa", "aesbench"}
    offline = eemo.filter(pl.col("model") == "offline")
    assert set(offline.filter(pl.col("task") == "vad")["mode"]) == {"direct"}  # an endpoint has no logits
    assert offline["response"].str.contains(DEFAULT_MODEL).all()
    assert offline.filter(pl.col("task") == "vad")["parse_failed"].all()  # the rules model writes no numbers
    assert eemo.filter((pl.col("model") == "tiny") & (pl.col("mode") == "probability")).height == 6

    report = storage / "benchmark_report"
    markdown = (report / "report.md").read_text(encoding="utf-8")
    html = (report / "report.html").read_text(encoding="utf-8")
    for text in (markdown, html):
        assert "Table 1" in text and "Table 3" in text and "tiny" in text and "offline" in text
    assert "offline: no token probabilities" in markdown
    # the run config's artemis_file picks the full CSV; the other sets read the released files by default
    assert f"| artemis | 2 | {roots['artemis'] / ARTEMIS_CSV} |" in markdown  # limit 2 per task
    assert f"| uniaa | 2 | {roots['uniaa'] / UNIAA_RELEASED} |" in markdown
    assert (report / "vad_histograms.png").read_bytes()[:4] == b"\x89PNG"
    metrics = pl.read_parquet(storage / "benchmark_report.parquet")
    assert set(metrics["model"]) == {"tiny", "offline"}
    assert metrics.filter((pl.col("model") == "tiny") & (pl.col("task") == "vad")
                          & (pl.col("breakdown") == "probability")).height > 0

    metadata = result.asset_materializations_for_node("benchmark_report")[0].metadata
    assert metadata["report"].value.startswith("# EEmo-Logic benchmark report") and "Table 2" in metadata["report"].value
    assert rerun.asset_materializations_for_node("benchmark_report")[0].metadata["report"].value == markdown
    assert metadata["report_html"].value == str(report / "report.html")
    judge = metadata["judge"].value
    assert judge["judge_model"] == DEFAULT_MODEL and judge["items"] > 0
    cross_metadata = result.asset_materializations_for_node("benchmark_cross_domain")[0].metadata
    assert cross_metadata["models"].value["offline"]["calls"] > 0
    rerun_models = rerun.asset_materializations_for_node("benchmark_cross_domain")[0].metadata["models"].value
    assert rerun_models["offline"]["calls"] == 0 and rerun_models["tiny"]["generated"] == 0
