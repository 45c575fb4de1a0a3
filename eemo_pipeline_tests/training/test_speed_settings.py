"""The speed settings of both stages change the speed only: same losses, same greedy completions, untouched
weights. On the tiny offline Qwen2.5-VL (perf/train_gpu.py measures the speed on a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="the train extra (torch, transformers, peft, trl) is not installed")
pytestmark = pytest.mark.slow

from eemo_pipeline_tests.training.conftest import TINY_BUDGET  # noqa: E402


def _peft_model(tiny_model: Path):
    """The tiny model with a LoRA whose B is not zero (a fresh LoRA adds nothing) and no dropout."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from eemo_pipeline.training.sft import LORA_TARGET_MODULES

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGET_MODULES,
                        init_lora_weights=False)
    return get_peft_model(model, config).eval()


def _greedy(model, tiny_model: Path, **kwargs) -> list[list[int]]:
    from transformers import AutoProcessor

    tokenizer = AutoProcessor.from_pretrained(tiny_model).tokenizer
    inputs = tokenizer(["Rate the valence of a sunny beach", "Rank the emotions"], return_tensors="pt",
                       padding=True, padding_side="left")
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False, **kwargs)
    return output[:, inputs["input_ids"].shape[1]:].tolist()


def test_kv_cache_kinds_give_the_completions_of_no_cache(tiny_model: Path) -> None:
    model = _peft_model(tiny_model)
    without = _greedy(model, tiny_model, use_cache=False)
    assert _greedy(model, tiny_model, cache_implementation="dynamic") == without
    assert _greedy(model, tiny_model, cache_implementation="static") == without


def test_merged_lora_generates_the_same_and_leaves_the_weights_untouched(tiny_model: Path) -> None:
    import torch

    from eemo_pipeline.training.grpo import merged_lora

    model = _peft_model(tiny_model)
    before = {name: weight.clone() for name, weight in model.state_dict().items()}
    unmerged = _greedy(model, tiny_model)
    with merged_lora(model):
        assert all(layer.merged for layer in model.modules() if hasattr(layer, "lora_A") and layer.lora_A)
        merged = _greedy(model, tiny_model)
    assert merged == unmerged
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)  # bit for bit, no bf16 round trip
    assert not any(layer.merged for layer in model.modules() if hasattr(layer, "lora_A") and layer.lora_A)


def _sft_losses(tiny_model: Path, records: list[dict], directory: Path, **settings) -> list[float]:
    from eemo_pipeline.training.sft import SFTSettings, train_sft

    settings = SFTSettings(global_batch_size=4, per_device_batch_size=4, max_steps=2, save_steps=10**9,
                           warmup_ratio=0.0, **TINY_BUDGET, **settings)
    trainer = train_sft(tiny_model, records, directory, settings, use_cpu=True)
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_gradient_checkpointing_and_attention_kernel_keep_the_sft_losses(tiny_model: Path, sft_records: list[dict],
                                                                         tmp_path: Path) -> None:
    reference = _sft_losses(tiny_model, sft_records, tmp_path / "a", gradient_checkpointing=False)
    recomputed = _sft_losses(tiny_model, sft_records, tmp_path / "b", gradient_checkpointing=True)
    eager = _sft_losses(tiny_model, sft_records, tmp_path / "c", gradient_checkpointing=False,
                        attn_implementation="eager")
    assert len(reference) == 2
    assert recomputed == pytest.approx(reference, rel=1e-5)  # the second loss follows the first step's update
    assert eager == pytest.approx(reference, rel=1e-4)


def test_liger_kernel_is_refused_on_a_cpu(tiny_model: Path, sft_records: list[dict], tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="liger"):
        _sft_losses(tiny_model, sft_records, tmp_path, use_liger_kernel=True)


def _grpo_completions(tiny_model: Path, adapter: Path, records: list[dict], directory: Path, **settings) -> list[str]:
    from eemo_pipeline.training.grpo import GRPOSettings, train_grpo

    settings = GRPOSettings(num_generations=2, per_device_batch_size=2, max_steps=1, max_completion_length=6,
                            save_steps=10**9, warmup_ratio=0.0, use_vllm="false", **TINY_BUDGET, **settings)
    train_grpo(tiny_model, adapter, records, directory, settings, use_cpu=True,
               completions_path=directory / "completions.jsonl")
    return [json.loads(line)["completion"] for line in (directory / "completions.jsonl").read_text().splitlines()]


def test_grpo_generation_settings_sample_the_same_completions(tiny_model: Path, grpo_records: list[dict],
                                                               tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    _peft_model(tiny_model).save_pretrained(adapter)
    records = grpo_records[:2]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = _grpo_completions(tiny_model, adapter, records, tmp_path / "a", gradient_checkpointing=False)
    tuned = _grpo_completions(tiny_model, adapter, records, tmp_path / "b", merge_lora_for_generation=True,
                              cache_implementation="static", gradient_checkpointing=True)
    assert len(plain) == 2 and tuned == plain


def test_grpo_generates_the_groups_of_all_accumulated_steps_at_once(tiny_model: Path, grpo_records: list[dict],
                                                                     tmp_path: Path) -> None:
    from eemo_pipeline.training.grpo import GRPOSettings, train_grpo

    batches = []
    settings = GRPOSettings(num_generations=2, per_device_batch_size=2, gradient_accumulation_steps=2, max_steps=1,
                            max_completion_length=4, save_steps=10**9, warmup_ratio=0.0, use_vllm="false",
                            **TINY_BUDGET)
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    generate = model.generate

    def counting_generate(*args, **kwargs):
        batches.append(kwargs["input_ids"].shape[0])
        return generate(*args, **kwargs)

    model.generate = counting_generate
    train_grpo(tiny_model, None, grpo_records, tmp_path, settings, use_cpu=True, model=model)
    assert batches == [4]  # two prompts' groups in one generate call


def test_compile_generation_needs_the_static_cache(tiny_model: Path, grpo_records: list[dict], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="static"):
        _grpo_completions(tiny_model, None, grpo_records[:1], tmp_path, compile_generation=True)
