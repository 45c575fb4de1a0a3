"""The model card (``README.md``) saved beside each trained adapter (or fully fine-tuned model)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from importlib import metadata
from pathlib import Path
from typing import Any

_STAGE_TEXT = {
    "sft": ("Stage 1: LoRA supervised fine-tuning on EEmoDB-QA (perception, ranking and description "
            "instructions), TRL SFTTrainer."),
    "grpo": ("Stage 2: GRPO on EEmoDB-Assess (the tasks in the settings: emotion ranking, VAD scores, dominant "
             "emotion) from the stage-1 adapter, TRL GRPOTrainer, trained on the gated total reward (format weight "
             "plus format-gated task rewards; eemo_pipeline/training/rewards.py)."),
}
_FULL_TEXT = ("Stage 1: full fine-tuning (every weight of the model, no adapter) on EEmoDB-QA (perception, ranking "
              "and description instructions), TRL SFTTrainer: the paper's Table 4 ablation of its LoRA recipe.")
_LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _final(metrics: list[dict[str, Any]], key: str) -> str:
    values = [m[key] for m in metrics if isinstance(m.get(key), int | float)]
    return f"{values[-1]:.4g}" if values else "-"


def write_model_card(path: Path, job: Any, settings: Any, metrics: list[dict[str, Any]], global_step: int) -> Path:
    """Markdown: what the adapter (or full model) is, how it was trained (every setting), its last logged
    metrics, how to load it, and what it is not for."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in dataclasses.asdict(settings).items())
    versions = ", ".join(f"{package} {_version(package)}" for package in _LIBRARIES)
    shown = ("loss", "mean_token_accuracy", "reward", "rewards/total/mean", "kl")
    final = "\n".join(f"| {key} | {_final(metrics, key)} |" for key in shown if _final(metrics, key) != "-")
    full = job.full_finetune
    load = ('AutoModelForImageTextToText.from_pretrained("<this folder>")' if full else
            f'PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained("{job.base_model}"), "<this folder>")')
    imports = ("" if full else "from peft import PeftModel\n") + \
        "from transformers import AutoModelForImageTextToText, AutoProcessor"
    text = f"""---
library_name: {"transformers" if full else "peft"}
base_model: {job.base_model}
tags: [eemo-logic, {"full-finetune" if full else "lora"}, {job.stage}, image-evoked-emotion]
---
# EEmo-Logic {job.stage.upper()} {"model" if full else "adapter"}

{_FULL_TEXT if full else _STAGE_TEXT[job.stage]}

- Base model: `{job.base_model}`
- Initial adapter: `{job.init_adapter or ("none (full fine-tune)" if full else "none (fresh LoRA)")}`
- Training data: `{job.dataset}`
- Steps: {global_step}; written {dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
- Libraries: {versions}

## Settings
| setting | value |
|---|---|
{rows}

## Last logged metrics
| metric | value |
|---|---|
{final or "| - | - |"}

The full curves are in `../metrics.jsonl` (one JSON object per logged step).

## Use
```python
{imports}
model = {load}
processor = AutoProcessor.from_pretrained("<this folder>")
```
or `eemo assess IMAGE --model <this folder>`.

## Limits
Trained to describe the emotions an image is likely to evoke in viewers, from public affective-image data
sets; it does not read the feelings of the people shown, and it inherits those data sets' cultural and
sampling biases. A model trained by `eemo demo` (a tiny random model, a few steps) is a smoke test only.
"""
    path.write_text(text, encoding="utf-8")
    return path
