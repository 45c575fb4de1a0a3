"""Stage 1: LoRA SFT on EEmoDB-QA with TRL's SFTTrainer (paper section 4.1; REFERENCE section 4), or full
fine-tuning (the paper's Table 4 ablation, ``finetune="full"``).

Plain functions: the ``sft_checkpoint`` asset runs them out of process (``training/launch.py``). torch,
transformers, peft and trl are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eemo_pipeline.constants import MAX_PIXELS, MIN_PIXELS

# Every linear layer of the language model and of the vision tower including the merger; not lm_head,
# the embeddings or the Conv3d patch embedding. Suffix-only names would hit both towers, so the vision
# names are anchored on ``visual.``.
LORA_TARGET_MODULES = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    r"|.*visual\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.gate_proj|mlp\.up_proj|mlp\.down_proj)"
    r"|.*visual\.merger\.mlp\.(0|2)"
)
# lora: a PEFT adapter (the paper's recipe); full: every weight of the model trained, no adapter.
FINETUNE_MODES = ("lora", "full")


def setting(default: Any, help: str) -> Any:
    """A settings field with its help text (shown for the asset's config in the Dagster UI)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SFTSettings:
    """The paper's recipe as defaults: r 64, alpha 64, dropout 0.05, lr 2e-4 cosine, warmup 3%, weight decay
    0.1, 1 epoch, global batch 128, bf16 when available, gradient checkpointing."""

    finetune: str = setting("lora", "lora: a LoRA adapter on every linear layer of both towers, base weights frozen "
                                    "(the paper's recipe). full: every weight of the model trained (language model, "
                                    "vision tower, merger, embeddings), no adapter; the checkpoint is a whole model "
                                    "and the lora_* settings do nothing (Table 4 row 1).")
    lora_r: int = setting(64, "LoRA rank.")
    lora_alpha: int = setting(64, "LoRA alpha (scaling alpha / r).")
    lora_dropout: float = setting(0.05, "Dropout on the LoRA input.")
    learning_rate: float = setting(2e-4, "Peak learning rate.")
    lr_scheduler_type: str = setting("cosine", "Learning-rate schedule (transformers' names).")
    warmup_ratio: float = setting(0.03, "Share of the steps spent warming up.")
    weight_decay: float = setting(0.1, "AdamW weight decay.")
    num_train_epochs: float = setting(1.0, "Epochs over the QA export.")
    global_batch_size: int = setting(128, "Sequences per optimizer step over all devices (by gradient accumulation).")
    per_device_batch_size: int = setting(4, "Sequences per device per forward pass.")
    gradient_checkpointing: bool = setting(True, "Recompute activations in the backward pass: a third more compute "
                                                 "for a fraction of the activation memory. Off when the GPU has the "
                                                 "room (a 7B at batch 8 needs about 80 GiB without it).")
    max_steps: int = setting(-1, "Stop after this many optimizer steps (-1: the epochs decide).")
    save_steps: int = setting(50, "Checkpoint every this many steps (what a crash can lose).")
    seed: int = setting(0, "Seed of the data order and the LoRA initialization.")
    min_pixels: int = setting(MIN_PIXELS, "Smallest image size in pixels (0: the processor's own).")
    max_pixels: int = setting(MAX_PIXELS, "Largest image size in pixels (0: the processor's own).")
    dataloader_num_workers: int = setting(4, "Processes per GPU that decode and resize the images of the next "
                                             "batches while the GPU works; 0 on a CPU.")
    attn_implementation: str = setting("sdpa", "Attention kernel: sdpa (PyTorch's fused attention), eager, or "
                                               "flash_attention_2 where the flash-attn package is installed.")
    use_liger_kernel: bool = setting(False, "Liger's Triton kernels for RMSNorm, RoPE and SwiGLU (GPU only; the "
                                            "`liger` extra).")

    def __post_init__(self) -> None:
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {self.finetune!r}")


def lora_config(settings: SFTSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=LORA_TARGET_MODULES, task_type="CAUSAL_LM")


def load_processor(path: Path | str, min_pixels: int = 0, max_pixels: int = 0):
    """The model's processor with the image budget set (each image resized to between the two pixel counts)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path))
    if min_pixels or max_pixels:
        # The image processor's own size (saved with the checkpoint), not call-time min/max_pixels (deprecated).
        size = dict(processor.image_processor.size)
        processor.image_processor.size = {"shortest_edge": min_pixels or size["shortest_edge"],
                                          "longest_edge": max_pixels or size["longest_edge"]}
    return processor


def train_sft(model_path: Path, records: list[dict[str, Any]], output_dir: Path, settings: SFTSettings,
              use_cpu: bool | None = None, callbacks: Sequence[Any] = (), resume_from: str | None = None,
              model: Any = None, world_size: int = 1):
    """LoRA SFT (or with ``finetune="full"`` full fine-tuning) of the model at ``model_path`` (or the already
    loaded ``model``, with its processor at ``model_path``) on ``sft_dataset`` records (``messages`` and ``images``), checkpointing every ``save_steps``
    into ``output_dir`` and resuming from ``resume_from`` when given; returns the trainer after training (its
    ``state.log_history`` holds the loss curve). ``world_size`` is the number of processes training together
    (accelerate's WORLD_SIZE, which the launched entry point passes): the gradient accumulation divides the
    global batch by it."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cpu = (not torch.cuda.is_available()) if use_cpu is None else use_cpu
    bf16 = not cpu and torch.cuda.is_bf16_supported()
    full = settings.finetune == "full"
    if settings.use_liger_kernel and (cpu or importlib.util.find_spec("liger_kernel") is None):
        raise RuntimeError("use_liger_kernel needs a CUDA GPU and the liger-kernel package (the `liger` extra)")
    accumulation = max(1, settings.global_batch_size // (settings.per_device_batch_size * world_size))
    config = SFTConfig(
        output_dir=str(output_dir), learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type, warmup_steps=settings.warmup_ratio,  # a float < 1 is a ratio
        weight_decay=settings.weight_decay, num_train_epochs=settings.num_train_epochs,
        per_device_train_batch_size=settings.per_device_batch_size, gradient_accumulation_steps=accumulation,
        gradient_checkpointing=settings.gradient_checkpointing, bf16=bf16, use_liger_kernel=settings.use_liger_kernel,
        max_steps=settings.max_steps, seed=settings.seed, use_cpu=cpu, logging_steps=1, save_strategy="steps",
        save_steps=settings.save_steps, dataloader_num_workers=0 if cpu else settings.dataloader_num_workers,
        report_to=[], dataset_kwargs={"skip_prepare_dataset": False},
        # LoRA: bf16 base weights (TRL's default is float32): under autocast the matmuls are bf16 either way,
        # without a float32 copy of the frozen model to cast on every forward pass. Full fine-tuning keeps float32
        # weights, which AdamW updates (steps of lr 1e-5 vanish when rounded to bf16).
        model_init_kwargs=None if model is not None else {"dtype": torch.bfloat16 if bf16 and not full else torch.float32,
                                                          "attn_implementation": settings.attn_implementation},
    )
    if model is not None:
        model.set_attn_implementation(settings.attn_implementation)
    trainer = SFTTrainer(model=str(model_path) if model is None else model, args=config, train_dataset=Dataset.from_list(records),
                         processing_class=load_processor(model_path, settings.min_pixels, settings.max_pixels),
                         peft_config=None if full else lora_config(settings), callbacks=list(callbacks))
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer
