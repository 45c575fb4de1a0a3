"""A few LoRA SFT steps on the tiny offline Qwen2.5-VL, through the same path as the 7B model."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("trl", reason="the train extra (torch, transformers, peft, trl) is not installed")
pytestmark = pytest.mark.slow


def test_lora_sft_on_exported_records_lowers_the_loss(tmp_path: Path) -> None:
    from PIL import Image

    from eemo_pipeline.contracts import table_contract
    from eemo_pipeline.subsets.export import sft_records
    from eemo_pipeline.training.sft import SFTSettings, train_sft
    from eemo_pipeline.training.tiny import build_tiny_model

    Image.new("RGB", (96, 96), (200, 10, 10)).save(tmp_path / "red.png")
    Image.new("RGB", (112, 84), (10, 10, 200)).save(tmp_path / "blue.png")
    qa = table_contract("eemodb_qa").conform(pl.DataFrame({
        "row_id": ["a", "b"], "task": ["perception"] * 2, "sub_task": ["emotion_verification"] * 2,
        "template_id": ["t@1"] * 2, "question": ["Does this image evoke joy? Answer yes or no."] * 2,
        "answer": ["yes", "no"], "image_paths": [["toy/red.png"], ["toy/blue.png"]], "sources": [["toy"], ["toy"]],
        "source_image_ids": [["red"], ["blue"]], "provenance": ["{}"] * 2,
    }))
    records = sft_records(qa, {"toy": tmp_path}).to_dicts() * 4
    settings = SFTSettings(global_batch_size=4, per_device_batch_size=4, max_steps=6, learning_rate=5e-3,
                           warmup_ratio=0.0, lr_scheduler_type="constant")
    trainer = train_sft(build_tiny_model(tmp_path / "model"), records, tmp_path / "out", settings, use_cpu=True)

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and losses[-1] < 0.95 * losses[0]  # two answers shuffled: falling, not monotone
    wrapped = [name for name, _ in trainer.model.named_modules() if name.endswith(".lora_A")]
    # 2 text layers x 7 projections + 2 vision blocks x 5 linears + the merger's 2 = 26 LoRA modules.
    assert len(wrapped) == 26
    assert not any(part in name for name in wrapped for part in ("lm_head", "embed_tokens", "patch_embed"))
    assert sum(".visual.merger.mlp." in name for name in wrapped) == 2
