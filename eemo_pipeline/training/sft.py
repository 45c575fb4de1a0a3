"""Stage 1: LoRA SFT on EEmoDB-QA with TRL's SFTTrainer (paper section 4.1; REFERENCE section 4).

Plain functions: the Dagster asset (to come) launches them out of process. torch, transformers, peft and
trl are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Every linear layer of the language model and of the vision tower including the merger; not lm_head,
# the embeddings or the Conv3d patch embedding. Suffix-only names would hit both towers, so the vision
# names are anchored on ``visual.``.
LORA_TARGET_MODULES = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    r"|.*visual\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.gate_proj|mlp\.up_proj|mlp\.down_proj)"
    r"|.*visual\.merger\.mlp\.(0|2)"
)


@dataclass(frozen=True)
class SFTSettings:
    """The paper's recipe as defaults: r 64, alpha 64, dropout 0.05, lr 2e-4 cosine, warmup 3%, weight decay
    0.1, 1 epoch, global batch 128, bf16 when available, gradient checkpointing."""

    lora_r: int = 64
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.1
    num_train_epochs: float = 1.0
    global_batch_size: int = 128
    per_device_batch_size: int = 4
    gradient_checkpointing: bool = True
    max_steps: int = -1
    seed: int = 0


def lora_config(settings: SFTSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=LORA_TARGET_MODULES, task_type="CAUSAL_LM")


def train_sft(model_path: Path, records: list[dict[str, Any]], output_dir: Path, settings: SFTSettings,
              use_cpu: bool | None = None):
    """LoRA SFT of the model at ``model_path`` on ``sft_dataset`` records (``messages`` and ``images``);
    returns the trainer after training (its ``state.log_history`` holds the loss curve)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cpu = (not torch.cuda.is_available()) if use_cpu is None else use_cpu
    accumulation = max(1, settings.global_batch_size // settings.per_device_batch_size)
    config = SFTConfig(
        output_dir=str(output_dir), learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type, warmup_steps=settings.warmup_ratio,  # a float < 1 is a ratio
        weight_decay=settings.weight_decay, num_train_epochs=settings.num_train_epochs,
        per_device_train_batch_size=settings.per_device_batch_size, gradient_accumulation_steps=accumulation,
        gradient_checkpointing=settings.gradient_checkpointing and not cpu, bf16=not cpu and torch.cuda.is_bf16_supported(),
        max_steps=settings.max_steps, seed=settings.seed, use_cpu=cpu, logging_steps=1, save_strategy="no",
        report_to=[], dataset_kwargs={"skip_prepare_dataset": False},
    )
    trainer = SFTTrainer(model=str(model_path), args=config, train_dataset=Dataset.from_list(records),
                         peft_config=lora_config(settings))
    trainer.train()
    return trainer
