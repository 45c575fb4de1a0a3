"""Training with several processes on one CPU machine: two ranks in a gloo group, started by ``accelerate launch``
through the real Dagster assets and Pipes (the SFT, then GRPO from its adapter), and two "machines" on 127.0.0.1
joined by ``--num_machines 2 --machine_rank N --main_process_ip`` as on a cluster (docs/deploy.md)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.storage import from_storage
from eemo_pipeline.training.launch import TrainingJob, read_metrics
from eemo_pipeline_tests.training.conftest import TINY_BUDGET, write_exports
from eemo_pipeline_tests.training.test_training_assets import _materialize

pytest.importorskip("trl", reason="the train extra (torch, transformers, peft, trl) is not installed")
pytestmark = pytest.mark.slow

# Two ranks x 2 sequences per step = the global batch of 4: no gradient accumulation.
SFT_TWO_RANKS = {"device": "cpu", "num_processes": 2, "global_batch_size": 4, "per_device_batch_size": 2,
                 "max_steps": 2, "save_steps": 2, "learning_rate": 5e-3, "warmup_ratio": 0.0, **TINY_BUDGET}
# Two ranks x 2 completions = one group of 4 generations per step.
GRPO_TWO_RANKS = {"device": "cpu", "num_processes": 2, "num_generations": 4, "per_device_batch_size": 2,
                  "max_steps": 2, "save_steps": 2, "max_completion_length": 8, "learning_rate": 1e-3, **TINY_BUDGET}


def test_two_ranks_train_sft_then_grpo_through_dagster(tmp_path: Path, monkeypatch, tiny_model: Path, sft_records,
                                                      grpo_records) -> None:
    from dagster import DagsterInstance

    from eemo_pipeline.assets.training import grpo_checkpoint, sft_checkpoint

    storage = tmp_path / "storage"
    write_exports(storage, sft_records, grpo_records)
    monkeypatch.setenv("EEMO_BASE_MODEL", str(tiny_model))
    instance = DagsterInstance.ephemeral()
    result = _materialize([sft_checkpoint, grpo_checkpoint], storage, instance, sft=SFT_TWO_RANKS, grpo=GRPO_TWO_RANKS)
    assert result.success

    for stage in ("sft", "grpo"):
        metadata = result.asset_materializations_for_node(f"{stage}_checkpoint")[0].metadata
        # The trainer saw two processes in one gloo group: data-parallel on CPUs.
        assert (metadata["world_size"].value, metadata["distributed_type"].value,
                metadata["process_group_backend"].value) == (2, "MULTI_CPU", "gloo"), stage
        row = pl.read_parquet(storage / f"{stage}_checkpoint.parquet").row(0, named=True)
        run_dir = from_storage(row["run_dir"], storage)
        assert row["global_step"] == 2 and (run_dir / "train.rank1.log").is_file()
        assert (from_storage(row["checkpoint_path"], storage) / "adapter_model.safetensors").is_file()
        assert json.loads((run_dir / "job.json").read_text())["device"] == "cpu"
    sft_metrics = read_metrics(from_storage(pl.read_parquet(storage / "sft_checkpoint.parquet")["run_dir"][0], storage))
    assert [entry["step"] for entry in sft_metrics if "loss" in entry] == [1, 2]
    # Each rank logs the completions it scored: together 2 steps x one group of 4.
    grpo_dir = from_storage(pl.read_parquet(storage / "grpo_checkpoint.parquet")["run_dir"][0], storage)
    per_rank = [len((grpo_dir / name).read_text().splitlines()) for name in ("completions.jsonl", "completions.rank1.jsonl")]
    assert per_rank == [4, 4]
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("--num_processes 2" in line and "--multi_gpu" in line and "--cpu" not in line for line in logs)
    assert any(line.startswith("step 2/2 ") and "rewards/total/mean" in line for line in logs)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_machines_on_one_host_train_as_one_group(tmp_path: Path, tiny_model: Path, sft_records) -> None:
    """docs/deploy.md's multi-node launch, each "machine" a launcher with one process on 127.0.0.1."""
    dataset = tmp_path / "sft_dataset.parquet"
    pl.DataFrame(sft_records).write_parquet(dataset)
    settings = {key: value for key, value in SFT_TWO_RANKS.items() if key not in ("device", "num_processes")}
    job = TrainingJob(stage="sft", base_model=str(tiny_model), dataset=str(dataset), run_dir=str(tmp_path / "run"),
                      settings=settings, device="cpu")
    job_file = job.write()
    port = str(_free_port())
    launchers = [subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
         "--machine_rank", str(rank), "--num_processes", "2", "--main_process_ip", "127.0.0.1",
         "--main_process_port", port, "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "eemo_pipeline.training.launch", str(job_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True) for rank in (0, 1)]
    errors = [launcher.communicate(timeout=600)[1] for launcher in launchers]
    assert [launcher.returncode for launcher in launchers] == [0, 0], errors
    done = json.loads((Path(job.run_dir) / "DONE").read_text())
    assert (done["world_size"], done["distributed_type"], done["backend"], done["global_step"]) == (2, "MULTI_CPU", "gloo", 2)
    assert (Path(job.run_dir) / "train.rank1.log").is_file() and (job.checkpoint_dir / "adapter_model.safetensors").is_file()
