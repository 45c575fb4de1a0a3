"""Stage 2: GRPO on EEmoDB-Assess with TRL's GRPOTrainer and the task rewards (paper section 4.2).

The stage-1 LoRA adapter is loaded trainable, so GRPO goes on training it; TRL keeps a frozen copy of it as the
KL reference (an adapter named "ref"), so the penalty pulls towards the SFT model, not the base model. A fully
fine-tuned stage 1 is the base model instead: GRPO trains a fresh LoRA on it and the KL reference is that model
with the adapter switched off. ``tasks`` restricts training to some of the registered tasks (Table 4's ablation).
Plain functions; torch, transformers, peft and trl are imported inside them.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eemo_pipeline.constants import MAX_PIXELS, MIN_PIXELS
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.tasks.reward_signature import RewardFunction, completion_text
from eemo_pipeline.training.rewards import REWARD_FUNCTIONS, check_solutions, total_reward
from eemo_pipeline.training.sft import setting


@dataclass(frozen=True)
class GRPOSettings:
    """The paper's stage 2: 8 generations per prompt, 1 epoch, a lower learning rate than stage 1, a KL penalty."""

    tasks: tuple[str, ...] = setting(tuple(TASKS), "The registered tasks GRPO trains on (the paper: all of them); "
                                                   "the other tasks' rows are left out and their rewards not "
                                                   f"computed (Table 4 rows 3-4). Of: {', '.join(TASKS)}.")
    num_generations: int = setting(8, "Completions per prompt (the GRPO group).")
    beta: float = setting(0.04, "KL penalty towards the stage-1 model.")
    learning_rate: float = setting(1e-5, "Peak learning rate.")
    lr_scheduler_type: str = setting("cosine", "Learning-rate schedule (transformers' names).")
    warmup_ratio: float = setting(0.03, "Share of the steps spent warming up.")
    num_train_epochs: float = setting(1.0, "Epochs over the Assess export.")
    per_device_batch_size: int = setting(8, "Completions per device per step; all devices together hold whole groups.")
    gradient_accumulation_steps: int = setting(1, "Steps accumulated per optimizer update. TRL generates the "
                                                  "completions of all of them at once: 8 here with batch 8 decodes 8 "
                                                  "prompts' groups together, as fast per step as one group.")
    generation_batch_size: int = setting(0, "Completions generated at once (0: per-device batch x devices x "
                                            "accumulation steps, TRL's default). More than that spans several "
                                            "optimizer updates, whose later ones are then slightly off-policy.")
    max_completion_length: int = setting(512, "Longest completion in tokens.")
    temperature: float = setting(1.0, "Sampling temperature of the completions.")
    gradient_checkpointing: bool = setting(True, "Recompute activations in the backward pass (TRL turns it off "
                                                 "while generating, so decoding keeps its KV cache).")
    max_steps: int = setting(-1, "Stop after this many optimizer steps (-1: the epochs decide).")
    save_steps: int = setting(50, "Checkpoint every this many steps (what a crash can lose).")
    seed: int = setting(0, "Seed of the data order and the sampling.")
    min_pixels: int = setting(MIN_PIXELS, "Smallest image size in pixels (0: the processor's own).")
    max_pixels: int = setting(MAX_PIXELS, "Largest image size in pixels (0: the processor's own).")
    use_vllm: str = setting("auto", "auto (vLLM when a GPU and the vllm package are present), true or false.")
    vllm_mode: str = setting("colocate", "colocate (vLLM inside the trainer) or server (trl vllm-serve).")
    vllm_server_base_url: str = setting("", "With vllm_mode server: the trl vllm-serve URL (empty: TRL's default, "
                                            "localhost:8000).")
    merge_lora_for_generation: bool = setting(False, "Without vLLM: decode with the LoRA folded into copies of the "
                                                     "weights (one matmul per layer instead of three; 2 bytes more "
                                                     "per adapted weight while generating; no LoRA dropout then).")
    cache_implementation: str = setting("dynamic", "Without vLLM: the KV cache, dynamic (grows per token) or static "
                                                   "(preallocated; needed by compile_generation).")
    compile_generation: bool = setting(False, "Without vLLM, on a GPU: torch.compile the decoding step (static cache; "
                                              "the first steps pay the compilation).")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"tasks must name one or more of {', '.join(TASKS)}; got {list(self.tasks)}")
        # Registry order, no repeats: the same subset is the same setting (and the same run fingerprint).
        object.__setattr__(self, "tasks", tuple(name for name in TASKS if name in self.tasks))


def task_rows(records: Sequence[dict[str, Any]], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The ``grpo_dataset`` records of ``tasks``; a clear error when none is left, or when a row's truth is
    unusable (``rewards.check_solutions``: the row named, before any model is loaded)."""
    kept = [record for record in records if record.get("task") in tasks]
    if not kept:
        raise ValueError(f"the GRPO dataset has no rows of the tasks {list(tasks)}")
    check_solutions(kept)
    return kept


def reward_parts(tasks: Sequence[str]) -> dict[str, RewardFunction]:
    """The ungated rewards logged beside the trained total: the format reward and the rewards of ``tasks``."""
    return {"format": REWARD_FUNCTIONS["format"], **{TASKS[name].reward_name: TASKS[name].reward for name in tasks}}


def reward_curves(tasks: Sequence[str]) -> tuple[str, ...]:
    """The reward means TRL logs for the functions ``train_grpo`` passes, each under its function's name
    (``rewards/<name>/mean``): the gated total, then the ungated parts of ``tasks`` (``reward_parts``)."""
    return ("rewards/total/mean", *(f"rewards/{function.__name__}/mean" for function in reward_parts(tasks).values()))


def vllm_enabled(setting: str, cuda: bool) -> bool:
    """Whether generation goes through vLLM: "auto" needs a GPU and the vllm package; "true" insists."""
    available = cuda and importlib.util.find_spec("vllm") is not None
    if setting == "true" and not available:
        raise RuntimeError("use_vllm='true' needs a CUDA GPU and the vllm package (the `vllm` extra)")
    return setting == "true" or (setting == "auto" and available)


def completion_logger(path: Path, parts: dict[str, RewardFunction]) -> Callable[..., list[float]]:
    """``total_reward`` that also appends every completion with its rewards (the total and ``parts``) to ``path``
    (JSON lines): the completions are what to read first when a reward misbehaves."""

    def total(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        totals = total_reward(completions, **kwargs)
        state = kwargs.get("trainer_state")
        values = {name: fn(completions, **kwargs) for name, fn in parts.items()}
        with path.open("a", encoding="utf-8") as handle:
            for row, completion in enumerate(completions):
                handle.write(json.dumps({
                    "step": getattr(state, "global_step", None), "row_id": (kwargs.get("row_id") or [None] * len(completions))[row],
                    "task": (kwargs.get("task") or [None] * len(completions))[row],
                    "solution": (kwargs.get("solution") or [None] * len(completions))[row],
                    "completion": completion_text(completion), "total": totals[row],
                    **{name: value[row] for name, value in values.items()},
                }, ensure_ascii=False) + "\n")
        return totals

    return total


def train_grpo(model_path: Path, init_adapter: Path | None, records: list[dict[str, Any]], output_dir: Path,
               settings: GRPOSettings, use_cpu: bool | None = None, callbacks: Sequence[Any] = (),
               resume_from: str | None = None, completions_path: Path | None = None, model: Any = None):
    """GRPO of ``init_adapter`` (the stage-1 LoRA; a fresh LoRA with the stage-1 recipe when None, as on a fully
    fine-tuned stage-1 model) on the model at ``model_path`` (or the already loaded ``model``, with its processor
    at ``model_path``) over the ``grpo_dataset`` records of ``settings.tasks``. Trains on the gated ``total``
    reward; the ungated parts of those tasks are passed with weight 0 so TRL logs their means too. Returns the
    trainer after training."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText
    from trl import GRPOConfig

    from eemo_pipeline.training.sft import SFTSettings, load_processor, lora_config

    cpu = (not torch.cuda.is_available()) if use_cpu is None else use_cpu
    bf16 = not cpu and torch.cuda.is_bf16_supported()
    vllm = vllm_enabled(settings.use_vllm, cuda=not cpu)
    records = task_rows(records, settings.tasks)
    parts = reward_parts(settings.tasks)
    if settings.compile_generation and settings.cache_implementation != "static":
        raise ValueError("compile_generation needs cache_implementation='static'")
    config = GRPOConfig(
        output_dir=str(output_dir), learning_rate=settings.learning_rate, lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_ratio, num_train_epochs=settings.num_train_epochs,
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, num_generations=settings.num_generations,
        generation_batch_size=settings.generation_batch_size or None, cache_implementation=settings.cache_implementation,
        max_completion_length=settings.max_completion_length, temperature=settings.temperature, beta=settings.beta,
        gradient_checkpointing=settings.gradient_checkpointing, bf16=bf16, use_cpu=cpu,
        max_steps=settings.max_steps, seed=settings.seed, logging_steps=1, save_strategy="steps",
        save_steps=settings.save_steps, report_to=[], log_completions=False, use_vllm=vllm,
        vllm_mode=settings.vllm_mode, vllm_server_base_url=settings.vllm_server_base_url or None, reward_weights=[1.0] + [0.0] * len(parts),
        remove_unused_columns=False,
    )
    dtype = torch.bfloat16 if bf16 else torch.float32
    if model is None:
        model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)
    processor = load_processor(init_adapter if _has_processor(init_adapter) else model_path, settings.min_pixels,
                               settings.max_pixels)
    if init_adapter is not None:
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
        peft_config = None
    else:
        peft_config = lora_config(SFTSettings())
    total = completion_logger(completions_path, parts) if completions_path else total_reward
    total.__name__ = "total"
    trainer_class = grpo_trainer_class(merge_lora=settings.merge_lora_for_generation and not vllm)
    trainer = trainer_class(model=model, reward_funcs=[total, *parts.values()], args=config,
                            train_dataset=Dataset.from_list(records), processing_class=processor,
                            peft_config=peft_config, callbacks=list(callbacks))
    if settings.compile_generation and not vllm:
        from transformers import CompileConfig

        # TRL turns compilation off; PEFT's layers break the graph, so not fullgraph.
        trainer.generation_config.disable_compile = False
        trainer.generation_config.compile_config = CompileConfig(fullgraph=False)
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer


def grpo_trainer_class(merge_lora: bool):
    """TRL's GRPOTrainer, or one that generates with the LoRA merged (``merged_lora``) when ``merge_lora``."""
    from trl import GRPOTrainer

    if not merge_lora:
        return GRPOTrainer

    class MergedLoRAGenerationTrainer(GRPOTrainer):
        # TRL 1.16's one place where transformers generates (vLLM syncs merged weights on its own).
        def _generate_single_turn(self, *args, **kwargs):
            with merged_lora(self.accelerator.unwrap_model(self.model_wrapped)):
                return super()._generate_single_turn(*args, **kwargs)

    return MergedLoRAGenerationTrainer


@contextmanager
def merged_lora(model: Any) -> Iterator[Any]:
    """``model`` (a PeftModel) with every active LoRA adapter folded into fresh copies of its base weights.

    Decoding is launch-bound: an unmerged LoRA layer costs dropout, A, B, scale and add on top of the base
    matmul. The original weights are put back untouched on exit: PEFT's merge/unmerge subtracts the delta
    again, which in bf16 rounds the base weights a little on every step of a long run."""
    import torch
    from peft.tuners.lora import Linear as LoraLinear

    swapped = []
    try:
        with torch.no_grad():
            for module in model.modules():
                if not isinstance(module, LoraLinear) or module.merged:
                    continue
                adapters = [name for name in module.active_adapters if name in module.lora_A]
                if not adapters:
                    continue
                base = module.base_layer
                merged = base.weight.detach().clone()
                for name in adapters:
                    merged += module.get_delta_weight(name).to(merged.dtype)
                swapped.append((module, base.weight, adapters))
                base.weight = torch.nn.Parameter(merged, requires_grad=False)
                module.merged_adapters.extend(adapters)  # the layer's forward then calls the base layer only
        yield model
    finally:
        for module, original, adapters in swapped:
            module.base_layer.weight = original
            module.merged_adapters[:] = [name for name in module.merged_adapters if name not in adapters]


def _has_processor(directory: Path | None) -> bool:
    return directory is not None and any((Path(directory) / name).is_file()
                                         for name in ("processor_config.json", "preprocessor_config.json"))
