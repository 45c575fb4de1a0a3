"""Table 4's ablations on the tiny offline Qwen2.5-VL: a full fine-tune trains every weight and saves a whole
model that loads and that GRPO starts from; GRPO on a subset of tasks leaves the other tasks' rows and rewards out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="the train extra (torch, transformers, peft, trl) is not installed")
pytestmark = pytest.mark.slow

from eemo_pipeline_tests.training.conftest import TINY_BUDGET  # noqa: E402


def test_full_finetune_changes_the_base_weights_and_grpo_starts_from_the_saved_model(
        tiny_model: Path, sft_records: list[dict], grpo_records: list[dict], tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText

    from eemo_pipeline.evaluation.checkpoints import checkpoint_layout
    from eemo_pipeline.training.grpo import GRPOSettings, train_grpo
    from eemo_pipeline.training.sft import SFTSettings, train_sft

    original = AutoModelForImageTextToText.from_pretrained(tiny_model).state_dict()
    settings = SFTSettings(finetune="full", global_batch_size=4, per_device_batch_size=4, max_steps=3,
                           learning_rate=1e-3, warmup_ratio=0.0, lr_scheduler_type="constant", save_steps=10**9,
                           **TINY_BUDGET)
    trainer = train_sft(tiny_model, sft_records, tmp_path / "checkpoints", settings, use_cpu=True)
    assert [e["step"] for e in trainer.state.log_history if "loss" in e] == [1, 2, 3]
    assert not any("lora_" in name for name, _ in trainer.model.named_parameters())  # no adapter
    trained = {name: p for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert set(trained) == {name for name, _ in trainer.model.named_parameters()}  # every weight trains
    assert next(iter(trained.values())).dtype == torch.float32

    model_dir = tmp_path / "model"
    trainer.save_model(str(model_dir))
    trainer.processing_class.save_pretrained(str(model_dir))
    reloaded = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    changed = {name for name, weight in reloaded.items() if name in original
               and not torch.equal(weight, original[name])}
    # Both towers moved: language-model layers and vision blocks.
    assert any(".language_model.layers.0.self_attn.q_proj" in name for name in changed)
    assert any(".visual.blocks.0.attn.qkv" in name for name in changed)
    layout = checkpoint_layout(model_dir)  # evaluation loads it as a full model
    assert (layout.base, layout.adapter, layout.processor) == (model_dir.resolve(), None, model_dir.resolve())

    grpo = GRPOSettings(tasks=["vad"], num_generations=2, per_device_batch_size=2, max_steps=1,
                        max_completion_length=6, save_steps=10**9, warmup_ratio=0.0, use_vllm="false", **TINY_BUDGET)
    completions = tmp_path / "completions.jsonl"
    grpo_trainer = train_grpo(model_dir, None, grpo_records, tmp_path / "grpo", grpo, use_cpu=True,
                              completions_path=completions)
    assert grpo_trainer.state.global_step == 1
    # A fresh LoRA on the fully fine-tuned model, which stays frozen (and is the KL reference).
    assert any("lora_A" in name for name, p in grpo_trainer.model.named_parameters() if p.requires_grad)
    assert not any(p.requires_grad for name, p in grpo_trainer.model.named_parameters() if "lora_" not in name)
    rows = [json.loads(line) for line in completions.read_text().splitlines()]
    assert rows and {row["task"] for row in rows} == {"vad"}
    assert {"format", "vad"} <= set(rows[0]) and not {"ranking", "emotion_similarity"} & set(rows[0])


def test_grpo_on_a_task_subset_trains_on_those_rows_with_those_rewards(tiny_model: Path, grpo_records: list[dict],
                                                                      tmp_path: Path) -> None:
    from eemo_pipeline.training.grpo import GRPOSettings, train_grpo

    settings = GRPOSettings(tasks=["ranking", "dominant_emotion"], num_generations=2, per_device_batch_size=2,
                            max_steps=2, max_completion_length=4, save_steps=10**9, warmup_ratio=0.0,
                            use_vllm="false", **TINY_BUDGET)
    trainer = train_grpo(tiny_model, None, grpo_records, tmp_path, settings, use_cpu=True,
                         completions_path=tmp_path / "completions.jsonl")
    assert sorted(trainer.train_dataset["row_id"]) == ["g1", "g3"]  # the VAD rows g2 and g4 are left out
    assert [getattr(f, "__name__", "") for f in trainer.reward_funcs] == [
        "total", "format_reward", "ranking_reward", "emotion_similarity_reward"]
    rows = [json.loads(line) for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert {row["task"] for row in rows} <= {"ranking", "dominant_emotion"} and "vad" not in rows[0]
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert "rewards/ranking_reward/mean" in logged and "rewards/vad_reward/mean" not in logged
