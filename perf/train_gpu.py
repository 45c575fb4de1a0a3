"""N steps of each training stage at the real scale on one GPU, baseline and tuned settings in one run:
tokens per second, MFU and peak GPU memory of each.

The model is Qwen2.5-VL-7B's architecture, built from its published configuration with random bf16 weights:
the same FLOPs and memory as the real checkpoint, and nothing to download. The tokenizer is trained on the spot
(eemo_pipeline.training.tiny), so a sentence has more tokens than under Qwen's tokenizer; every count printed is of
tokens the model really processed (text and image tokens). Images are 640x480 (392 visual tokens each, inside the
paper's 256-1280 x 28x28 budget). Both stages go through the project's own train_sft / train_grpo; each variant
below is the baseline with some settings changed (SFTSettings / GRPOSettings fields). A variant that fails (out of
memory, a missing package) is recorded with its error and the run goes on; the JSON is rewritten after each.

MFU counts model FLOPs (recomputation by gradient checkpointing excluded) from the configuration, vision tower
included, against the GPU's dense bf16 peak: SFT 3 forward passes' worth per step (forward and backward), GRPO 5
(generation, forward and backward, the KL reference's forward).

    python perf/train_gpu.py --json perf/results/train_gpu_h200.json   # on a GPU machine (perf/gpu_check.sh)
    python perf/train_gpu.py --tiny                                     # every variant's path on a CPU (smoke run)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Qwen2.5-VL-7B-Instruct's config.json (text and vision parts), as published with the model.
QWEN25_VL_7B_TEXT = {
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "tie_word_embeddings": False, "hidden_act": "silu",
}
QWEN25_VL_7B_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "in_chans": 3, "tokens_per_second": 2, "hidden_act": "silu",
}
ANSWER = ("<think>The warm light, the open smiles and the crowded square point to shared delight; the dark clouds "
          "at the edge add a little unease, but the people's gestures stay relaxed and celebratory.</think>"
          "<answer>Emotion ranking: joy, surprise, fear</answer>")


def build_model(processor_dir: Path, tiny: bool):
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from eemo_pipeline.training.tiny import SPECIAL_TOKENS, build_tiny_model, build_tiny_processor

    if tiny:
        path = build_tiny_model(processor_dir / "tiny", processor_dir / "tiny")
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(path), path
    build_tiny_processor(processor_dir, min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28)
    tokenizer = AutoProcessor.from_pretrained(processor_dir).tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    special = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
               "pad_token_id": ids["<|endoftext|>"]}
    config = Qwen2_5_VLConfig(text_config={**QWEN25_VL_7B_TEXT, **special}, vision_config=QWEN25_VL_7B_VISION,
                              image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                              vision_start_token_id=ids["<|vision_start|>"], **special)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return model, processor_dir


def tolerate_unhashable_datasets() -> None:
    """On the lent GPU image (Python 3.12, dill 0.4.1, pyarrow 26), ``datasets`` fails to fingerprint an
    in-memory table ("Can't pickle <class 'MonthDayNano'>"). A fingerprint only names cache files, so fall
    back to a random one, as ``datasets`` itself does for unhashable transforms."""
    import datasets.arrow_dataset as arrow_dataset
    from datasets import fingerprint

    original = fingerprint.generate_fingerprint

    def generate_fingerprint(dataset):
        try:
            return original(dataset)
        except Exception as error:  # noqa: BLE001 - pickling errors of every kind end here
            print(f"datasets fingerprint failed ({type(error).__name__}); using a random one", file=sys.stderr)
            return fingerprint.generate_random_fingerprint()

    arrow_dataset.generate_fingerprint = generate_fingerprint


def make_images(directory: Path, count: int, size: tuple[int, int]) -> list[str]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = directory / f"image_{i}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


# Dense bf16 tensor-core peak FLOP/s (no sparsity), by a name's part as torch.cuda.get_device_name() gives it.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}

# (stage, name, settings changed from the baseline). Liger patches the model's modules in place for good, so
# its variant runs last; the compiled decoding step stays cached on the model, so it is the last GRPO one.
VARIANTS = (
    ("sft", "baseline", {}),
    ("sft", "no_checkpointing", {"gradient_checkpointing": False}),
    ("grpo", "baseline", {}),
    ("grpo", "batched", {"batched": True}),
    ("grpo", "batched_no_checkpointing_merged", {"batched": True, "gradient_checkpointing": False,
                                                 "merge_lora_for_generation": True}),
    ("grpo", "batched_no_checkpointing_merged_compiled", {"batched": True, "gradient_checkpointing": False,
                                                          "merge_lora_for_generation": True,
                                                          "cache_implementation": "static",
                                                          "compile_generation": True}),
    ("sft", "no_checkpointing_liger", {"gradient_checkpointing": False, "use_liger_kernel": True}),
)


def forward_flops_per_token(config, sequence_length: float) -> float:
    """Language-model FLOPs of one token's forward pass: 2 per weight of every matmul (lm_head included, the
    embedding lookup not) plus causal attention over ``sequence_length`` on average half of it."""
    text = config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    kv = text.num_key_value_heads * head_dim
    layer = text.hidden_size * (2 * text.hidden_size + 2 * kv) + 3 * text.hidden_size * text.intermediate_size
    attention = 2 * text.hidden_size * sequence_length  # QK^T and AV, 2 FLOPs each, over half the sequence
    return 2 * text.num_hidden_layers * layer + 2 * text.hidden_size * text.vocab_size + text.num_hidden_layers * attention


def vision_flops_per_image(config, patches: int) -> float:
    """The vision tower's forward FLOPs for one image of ``patches`` patches: patch embedding, blocks (windowed
    attention except the full-attention ones) and the merger (one output token per spatial_merge_size^2 patches)."""
    vision = config.vision_config
    h, i = vision.hidden_size, vision.intermediate_size
    merge = vision.spatial_merge_size ** 2
    window = min(patches, (vision.window_size // vision.patch_size) ** 2)
    full = len(vision.fullatt_block_indexes)
    embed = 2 * 3 * vision.temporal_patch_size * vision.patch_size ** 2 * h
    block = 2 * (4 * h * h + 3 * h * i)
    attention = 4 * h * (full * patches + (vision.depth - full) * window)
    merger = 2 * (merge * h * merge * h + merge * h * vision.out_hidden_size) / merge
    return patches * (embed + vision.depth * block + merger) + patches * attention


def peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for part, peak in PEAK_BF16_FLOPS.items() if part in name), None)


def now() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


class StepClock:
    """Wall time of every optimizer step, measured from one step's end to the next (from the start of training
    for the first), so fetching and collating the batch counts too. A TrainerCallback built lazily."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self.last = 0.0

            def on_train_begin(self, args, state, control, **kwargs):
                self.last = now()

            def on_step_end(self, args, state, control, **kwargs):
                ended = now()
                self.times.append(ended - self.last)
                self.last = ended

        return _Clock()


class GenerationClock:
    """Times every ``generate`` call of ``model`` (TRL reaches the base model's through the PEFT wrappers)."""

    def __init__(self, model) -> None:
        self.model, self.times = model, []
        self.original = model.generate

        def generate(*args, **kwargs):
            started = now()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.times.append(now() - started)

        model.generate = generate

    def close(self) -> None:
        del self.model.generate  # the class's method again


def summarize(stage: str, variant: str, trainer, clock, model_config, image_patches: int, images_per_step: int,
              passes: int, extra: dict) -> dict:
    import torch

    logs = [entry for entry in trainer.state.log_history if "num_tokens" in entry]
    tokens = [entry["num_tokens"] for entry in logs]
    per_step = [b - a for a, b in zip([0.0, *tokens], tokens)]
    # The first step pays for allocator warm-up, kernel selection and compilation: measure from the second on.
    measured_tokens, measured_time = sum(per_step[1:]), sum(clock.times[1:])
    sequence = per_step[0] / max(1, images_per_step) if per_step else 0.0  # one image per sequence
    flops = passes * sum(step * forward_flops_per_token(model_config, sequence) for step in per_step[1:])
    flops += passes * (len(per_step) - 1) * images_per_step * vision_flops_per_image(model_config, image_patches)
    peak = peak_flops()
    result = {
        "stage": stage, "variant": variant, "steps": len(clock.times), "tokens_per_step": per_step,
        "step_seconds": [round(t, 3) for t in clock.times],
        "tokens_per_second": round(measured_tokens / measured_time, 1) if measured_time else None,
        "mfu": round(flops / measured_time / peak, 4) if measured_time and peak else None,
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        **extra,
    }
    print(json.dumps(result), flush=True)
    return result


def run_sft(model, processor_dir: Path, work: Path, images: list[str], args, overrides: dict, budget: dict):
    from eemo_pipeline.training.sft import SFTSettings, train_sft

    records = [{
        "messages": [{"role": "user", "content": [{"type": "image", "text": None},
                                                  {"type": "text", "text": "Rank the three emotions this image "
                                                                           "evokes most, most felt first."}]},
                     {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}],
        "images": [images[i % len(images)]],
    } for i in range(args.batch * args.steps)]
    settings = SFTSettings(global_batch_size=args.batch, per_device_batch_size=args.batch, max_steps=args.steps,
                           save_steps=10**9, warmup_ratio=0.0, dataloader_num_workers=args.workers,
                           **{**budget, **overrides})
    clock = StepClock()
    trainer = train_sft(processor_dir, records, work, settings, use_cpu=args.tiny, callbacks=[clock], model=model)
    return trainer, clock, settings.per_device_batch_size, {"batch": args.batch, "lora_r": settings.lora_r,
                                                            "settings": overrides}


def run_grpo(model, processor_dir: Path, work: Path, images: list[str], args, overrides: dict, budget: dict):
    from eemo_pipeline.training.grpo import GRPOSettings, train_grpo

    overrides = dict(overrides)
    prompts = args.prompts if overrides.pop("batched", False) else 1
    steps = args.batched_grpo_steps if prompts > 1 else args.grpo_steps
    prompt = [{"role": "system", "content": [{"type": "text", "text": "You are an expert in visual emotion analysis."}]},
              {"role": "user", "content": [{"type": "image", "text": None},
                                           {"type": "text", "text": "Rate the valence from 0 to 1. Answer as "
                                                                    "<think>...</think><answer>Valence: x.xxxx</answer>."}]}]
    records = [{"prompt": prompt, "image": images[i % len(images)], "solution": "0.6250", "task": "vad",
                "sub_task": "valence", "row_id": f"r{i}"} for i in range(prompts * steps)]
    # Several prompts per step the way TRL does it: one generation batch for all accumulated micro-batches
    # of one group each, so the update stays on-policy.
    settings = GRPOSettings(num_generations=args.generations, per_device_batch_size=args.generations,
                            gradient_accumulation_steps=prompts, max_steps=steps,
                            max_completion_length=args.completion_length, save_steps=10**9, warmup_ratio=0.0,
                            use_vllm="false", **{**budget, **overrides})
    clock, generation = StepClock(), GenerationClock(model)
    try:
        trainer = train_grpo(processor_dir, None, records, work, settings, use_cpu=args.tiny, callbacks=[clock],
                             model=model)
    finally:
        generation.close()
    completions = prompts * args.generations
    lengths = [e["completions/mean_length"] * completions for e in trainer.state.log_history
               if "completions/mean_length" in e]
    measured = sum(clock.times[1:])
    generated = sum(generation.times[1:]) if len(generation.times) == len(clock.times) else None
    return trainer, clock, completions, {
        "generations": args.generations, "prompts_per_step": prompts, "max_completion_length": args.completion_length,
        "generation": "transformers", "settings": {**overrides, "gradient_accumulation_steps": prompts},
        "completion_tokens_per_step": lengths,
        "completion_tokens_per_second": round(sum(lengths[1:]) / measured, 1) if len(lengths) > 1 else None,
        "generation_seconds": [round(t, 3) for t in generation.times],
        "generation_completion_tokens_per_second": round(sum(lengths[1:]) / generated, 1) if generated else None,
        "decode_ms_per_token_step": round(1000 * generated / sum(length / completions for length in lengths[1:]), 1)
        if generated else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="sft,grpo", help="comma-separated: sft, grpo")
    parser.add_argument("--variants", default="", help="comma-separated variant names (default: all of the stages)")
    parser.add_argument("--steps", type=int, default=6, help="SFT steps (the first is not measured)")
    parser.add_argument("--grpo-steps", type=int, default=3, help="GRPO steps of one prompt (the first is not measured)")
    parser.add_argument("--batched-grpo-steps", type=int, default=2, help="GRPO steps of --prompts prompts")
    parser.add_argument("--batch", type=int, default=8, help="SFT sequences per step (no accumulation)")
    parser.add_argument("--generations", type=int, default=8, help="GRPO group size")
    parser.add_argument("--prompts", type=int, default=8, help="prompts (groups) per step of the batched GRPO variants")
    parser.add_argument("--completion-length", type=int, default=256, help="GRPO max completion tokens")
    parser.add_argument("--workers", type=int, default=4, help="SFT dataloader worker processes")
    parser.add_argument("--tiny", action="store_true", help="the tiny offline model on the CPU (smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures here (after every variant)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.grpo_steps, args.batched_grpo_steps = min(args.steps, 2), min(args.grpo_steps, 2), 2
        args.batch, args.generations, args.prompts, args.completion_length = 2, 2, 2, min(args.completion_length, 8)

    import torch

    tolerate_unhashable_datasets()
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA GPU: run with --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    stages = set(args.stages.split(","))
    chosen = set(filter(None, args.variants.split(",")))
    work = Path(tempfile.mkdtemp(prefix="eemo-train-gpu-"))
    started = time.perf_counter()
    model, processor_dir = build_model(work / "processor", args.tiny)
    parameters = sum(p.numel() for p in model.parameters())
    device = "cpu" if args.tiny else torch.cuda.get_device_name()
    print(f"model: {parameters / 1e9:.2f} B parameters, built in {time.perf_counter() - started:.1f} s on {device}",
          flush=True)
    images = make_images(work, 8, (96, 96) if args.tiny else (640, 480))
    budget = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28} if args.tiny else {}
    patches = image_patches(processor_dir, images[0], budget)
    results = []
    for stage, name, overrides in VARIANTS:
        if stage not in stages or (chosen and name not in chosen):
            continue
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        print(f"--- {stage} {name}", flush=True)
        runner, passes = (run_sft, 3) if stage == "sft" else (run_grpo, 5)
        try:
            trainer, clock, images_per_step, extra = runner(model, processor_dir, work / f"{stage}-{name}", images,
                                                            args, overrides, budget)
            results.append(summarize(stage, name, trainer, clock, model.config, patches, images_per_step, passes,
                                     extra))
            model = _bare(trainer.model.unload() if hasattr(trainer.model, "unload") else trainer.model)
            del trainer
        except Exception as error:  # noqa: BLE001 - a failed variant is a result too (out of memory, no package)
            traceback.print_exc()
            results.append({"stage": stage, "variant": name, "settings": overrides, "error": repr(error)[:500]})
            model = _bare(model)
        _write(args, device, parameters, results)
    return 0


def image_patches(processor_dir: Path, image: str, budget: dict) -> int:
    """Vision patches of one benchmark image under the pixel budget the stages use."""
    from PIL import Image

    from eemo_pipeline.training.sft import load_processor

    processor = load_processor(processor_dir, budget.get("min_pixels", 0), budget.get("max_pixels", 0))
    return int(processor.image_processor(images=[Image.open(image)])["image_grid_thw"][0].prod())


def _bare(model):
    """The base model as the next variant expects it: LoRA layers removed (a failed variant may leave them
    injected) and gradient checkpointing off (a trainer turns it on, none turns it off)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                setattr(parent, name, child.get_base_layer())
    if model.is_gradient_checkpointing:
        model.gradient_checkpointing_disable()
    return model


def _write(args: argparse.Namespace, device: str, parameters: int, results: list[dict]) -> None:
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": device, "parameters": parameters, "results": results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
