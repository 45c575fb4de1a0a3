"""sft_checkpoint and grpo_checkpoint end to end: Dagster runs that launch `accelerate launch` through Pipes
on the tiny offline model, stream metrics back, survive a SIGKILL and leave loadable checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.storage import from_storage
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.training.grpo import reward_curves
from eemo_pipeline.training.launch import read_metrics
from eemo_pipeline_tests.training.conftest import TINY_BUDGET, write_exports

pytest.importorskip("trl", reason="the train extra (torch, transformers, peft, trl) is not installed")
pytestmark = pytest.mark.slow

SFT_CONFIG = {"device": "cpu", "global_batch_size": 4, "per_device_batch_size": 4, "max_steps": 4, "save_steps": 2,
              "learning_rate": 5e-3, "warmup_ratio": 0.0, **TINY_BUDGET}
GRPO_CONFIG = {"device": "cpu", "num_generations": 4, "per_device_batch_size": 4, "max_steps": 2, "save_steps": 1,
               "max_completion_length": 12, "learning_rate": 1e-3, **TINY_BUDGET}


def _materialize(selection, storage: Path, instance, sft: dict | None = None, grpo: dict | None = None):
    from dagster import materialize

    from eemo_pipeline.resources import (
        InputPathsResource,
        ParquetIOManager,
        StorageResource,
        TrainingLauncherResource,
    )

    ops = {"sft_checkpoint": {"config": sft or SFT_CONFIG}}
    store = StorageResource(root=str(storage))
    if grpo is not None:
        ops["grpo_checkpoint"] = {"config": grpo}
    return materialize(selection, instance=instance, raise_on_error=False, run_config={"ops": ops},
                       resources={"io_manager": ParquetIOManager(storage=store), "storage": store,
                                  "input_paths": InputPathsResource(), "training_launcher": TrainingLauncherResource()})


def _logs(instance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def _generate(base: Path, adapter: Path, image: Path) -> str:
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(adapter)
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), adapter).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which emotion?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.open(image)], return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    return processor.batch_decode(output[:, inputs["input_ids"].shape[1]:])[0]


def test_both_stages_train_out_of_process_and_reload(tmp_path: Path, monkeypatch, tiny_model: Path, sft_records,
                                                     grpo_records, toy_images) -> None:
    from dagster import DagsterInstance

    from eemo_pipeline.assets.training import grpo_checkpoint, sft_checkpoint

    storage = tmp_path / "storage"
    write_exports(storage, sft_records, grpo_records)
    monkeypatch.setenv("EEMO_BASE_MODEL", str(tiny_model))
    instance = DagsterInstance.ephemeral()
    result = _materialize([sft_checkpoint, grpo_checkpoint], storage, instance, grpo=GRPO_CONFIG)
    assert result.success

    sft = pl.read_parquet(storage / "sft_checkpoint.parquet").row(0, named=True)
    grpo = pl.read_parquet(storage / "grpo_checkpoint.parquet").row(0, named=True)
    assert (sft["stage"], sft["global_step"], grpo["stage"], grpo["global_step"]) == ("sft", 4, "grpo", 2)
    assert grpo["base_model_path"] == sft["base_model_path"] == str(tiny_model.resolve())
    for row in (sft, grpo):
        # Paths inside the storage root are stored relative to it (a rebuild elsewhere is byte-identical).
        assert row["checkpoint_path"] == f"{row['stage']}_checkpoint/{Path(row['run_dir']).name}/adapter"
        adapter = from_storage(row["checkpoint_path"], storage)
        assert from_storage(row["run_dir"], storage).parent == storage / f"{row['stage']}_checkpoint"
        assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
        assert not (adapter / "ref").exists()  # TRL's frozen KL reference is not part of the checkpoint
        assert f"# EEmo-Logic {row['stage'].upper()} adapter" in (adapter / "README.md").read_text()
        assert isinstance(_generate(tiny_model, adapter, toy_images["red"]), str)
    # GRPO starts from the stage-1 adapter.
    grpo_job = json.loads((from_storage(grpo["run_dir"], storage) / "job.json").read_text())
    assert grpo_job["init_adapter"] == str(storage / sft["checkpoint_path"])

    # Metrics streamed back through Pipes while training, and curves as metadata.
    logs = _logs(instance, result.run_id)
    assert any(line.startswith("step 1/4 ") and '"loss"' in line for line in logs)
    assert any(line.startswith("step 2/2 ") and "rewards/total/mean" in line for line in logs)
    metadata = result.asset_materializations_for_node("sft_checkpoint")[0].metadata
    assert "| step | loss |" in metadata["training_curves"].value and "final/loss" in metadata

    # GRPO logs every reward's mean and every completion with its rewards.
    grpo_metrics = [json.loads(line) for line in (from_storage(grpo["run_dir"], storage) / "metrics.jsonl").read_text().splitlines()]
    for curve in reward_curves(tuple(TASKS)):  # the total, the format reward, every registered task's reward
        assert any(curve in entry for entry in grpo_metrics), curve
    completions = [json.loads(line) for line in (from_storage(grpo["run_dir"], storage) / "completions.jsonl").read_text().splitlines()]
    assert len(completions) == 2 * 4  # 2 steps x 1 prompt x 4 generations
    assert {"completion", "total", "format", *(task.reward_name for task in TASKS.values())} <= set(completions[0])
    similarity = json.loads((from_storage(grpo["run_dir"], storage) / "similarity.json").read_text())
    assert similarity["label_sets"]["mikels8"]["semantic"] == "embeddings"
    assert similarity["label_sets"]["mikels8"]["source"] == "eemo_logic_authors"  # the released matrices

    # Same inputs and settings: the finished runs are reused, nothing is launched again.
    again = _materialize([sft_checkpoint, grpo_checkpoint], storage, instance, grpo=GRPO_CONFIG)
    assert again.success
    assert sum("reusing the finished run" in line for line in _logs(instance, again.run_id)) == 2


def test_a_killed_trainer_resumes_from_its_last_checkpoint(tmp_path: Path, monkeypatch, tiny_model: Path,
                                                           sft_records, grpo_records) -> None:
    from dagster import DagsterEventType, DagsterInstance

    from eemo_pipeline.assets.training import sft_checkpoint
    from eemo_pipeline.training.launch import KILL_AT_STEP_ENV

    storage = tmp_path / "storage"
    write_exports(storage, sft_records, grpo_records)
    monkeypatch.setenv("EEMO_BASE_MODEL", str(tiny_model))
    monkeypatch.setenv(KILL_AT_STEP_ENV, "3")  # SIGKILL after step 3; checkpoint-2 is on disk
    instance = DagsterInstance.ephemeral()
    result = _materialize([sft_checkpoint], storage, instance)
    assert result.success  # the retry policy relaunched the trainer

    events = [event.event_type for event in result.all_events]
    assert DagsterEventType.STEP_UP_FOR_RETRY in events
    row = pl.read_parquet(storage / "sft_checkpoint.parquet").row(0, named=True)
    assert row["global_step"] == 4 and row["resumed_from"].endswith("checkpoint-2")
    assert [entry["step"] for entry in read_metrics(from_storage(row["run_dir"], storage)) if "loss" in entry] == [1, 2, 3, 4]
    logs = _logs(instance, result.run_id)
    assert any("resuming from" in line and "checkpoint-2" in line for line in logs)
    # The killed launch's own output stays in the run directory, and its end is shown in the Dagster run.
    train_log = (from_storage(row["run_dir"], storage) / "train.log").read_text()
    assert train_log.count("==== ") == 2
    assert any("the trainer failed" in line and "train.log" in line for line in logs)


def test_a_missing_base_model_is_a_clear_error(tmp_path: Path, monkeypatch, sft_records, grpo_records) -> None:
    from dagster import DagsterInstance

    from eemo_pipeline.assets.training import sft_checkpoint

    storage = tmp_path / "storage"
    write_exports(storage, sft_records, grpo_records)
    monkeypatch.delenv("EEMO_BASE_MODEL", raising=False)
    result = _materialize([sft_checkpoint], storage, DagsterInstance.ephemeral(), sft={**SFT_CONFIG})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no base model: set EEMO_BASE_MODEL" in failure.step_failure_data.error.to_string()
    # A configuration error is not retried: only a crashed trainer is relaunched.
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def test_a_full_finetune_then_grpo_on_a_task_subset(tmp_path: Path, monkeypatch, tiny_model: Path, sft_records,
                                                    grpo_records, toy_images) -> None:
    from dagster import DagsterInstance

    from eemo_pipeline.assets.training import grpo_checkpoint, sft_checkpoint
    from eemo_pipeline.evaluation.checkpoints import checkpoint_layout, checkpoint_name

    storage = tmp_path / "storage"
    write_exports(storage, sft_records, grpo_records)
    monkeypatch.setenv("EEMO_BASE_MODEL", str(tiny_model))
    instance = DagsterInstance.ephemeral()
    result = _materialize([sft_checkpoint, grpo_checkpoint], storage, instance, sft={**SFT_CONFIG, "finetune": "full"},
                          grpo={**GRPO_CONFIG, "tasks": ["vad"]})
    assert result.success

    sft = pl.read_parquet(storage / "sft_checkpoint.parquet").row(0, named=True)
    grpo = pl.read_parquet(storage / "grpo_checkpoint.parquet").row(0, named=True)
    model = from_storage(sft["checkpoint_path"], storage)
    # Stage 1 is a whole model (no adapter, nothing to merge); GRPO trained a fresh LoRA on it.
    assert sft["checkpoint_path"] == f"sft_checkpoint/{Path(sft['run_dir']).name}/model" and sft["merged_path"] is None
    assert (model / "config.json").is_file() and not (model / "adapter_config.json").exists()
    assert "# EEmo-Logic SFT model" in (model / "README.md").read_text()
    assert grpo["base_model_path"] == sft["checkpoint_path"]
    assert json.loads((from_storage(grpo["run_dir"], storage) / "job.json").read_text())["init_adapter"] is None
    adapter = from_storage(grpo["checkpoint_path"], storage)
    assert checkpoint_layout(adapter).base == model.resolve()  # evaluation finds the stage-1 model under it
    assert [checkpoint_name(model), checkpoint_name(adapter)] == ["sft", "grpo"]
    assert isinstance(_generate(model, adapter, toy_images["blue"]), str)

    # Only the VAD rows, with the format and VAD rewards.
    completions = [json.loads(line) for line in (from_storage(grpo["run_dir"], storage) / "completions.jsonl").read_text().splitlines()]
    assert {row["task"] for row in completions} == {"vad"} and "ranking" not in completions[0]
    grpo_metrics = read_metrics(from_storage(grpo["run_dir"], storage))
    assert any("rewards/vad_reward/mean" in entry for entry in grpo_metrics)
    assert not any("rewards/ranking_reward/mean" in entry for entry in grpo_metrics)
