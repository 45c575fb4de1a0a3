"""N steps of each training stage at the real scale on one GPU: tokens per second and peak GPU memory.

The model is Qwen2.5-VL-7B's architecture, built from its published configuration with random bf16 weights:
the same FLOPs and memory as the real checkpoint, and nothing to download. The tokenizer is trained on the spot
(eemo_pipeline.training.tiny), so a sentence has more tokens than under Qwen's tokenizer; every count printed is of
tokens the model really processed (text and image tokens). Images are 640x480 (392 visual tokens each, inside the
paper's 256-1280 x 28x28 budget). Both stages go through the project's own train_sft / train_grpo.

    python perf/train_gpu.py                     # on a GPU machine
    python perf/train_gpu.py --tiny --steps 2    # the same path on a CPU with the tiny model (smoke run)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
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


class StepClock:
    """Wall time of every optimizer step, measured from one step's end to the next (from the start of training
    for the first), so fetching and collating the batch counts too. A TrainerCallback built lazily."""

    def __new__(cls):
        from transformers import TrainerCallback

        def now() -> float:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter()

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


def summarize(stage: str, trainer, clock, extra: dict) -> dict:
    import torch

    logs = [entry for entry in trainer.state.log_history if "num_tokens" in entry]
    tokens = [entry["num_tokens"] for entry in logs]
    per_step = [b - a for a, b in zip([0.0, *tokens], tokens)]
    # The first step pays for allocator warm-up and kernel selection: measure from the second on.
    measured_tokens, measured_time = sum(per_step[1:]), sum(clock.times[1:])
    result = {
        "stage": stage, "steps": len(clock.times), "tokens_per_step": per_step,
        "step_seconds": [round(t, 3) for t in clock.times],
        "tokens_per_second": round(measured_tokens / measured_time, 1) if measured_time else None,
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        **extra,
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="SFT steps (the first is not measured)")
    parser.add_argument("--grpo-steps", type=int, default=3, help="GRPO steps (the first is not measured; 0 skips GRPO)")
    parser.add_argument("--batch", type=int, default=8, help="SFT sequences per step (no accumulation)")
    parser.add_argument("--generations", type=int, default=8, help="GRPO group size (one prompt per step)")
    parser.add_argument("--completion-length", type=int, default=256, help="GRPO max completion tokens")
    parser.add_argument("--workers", type=int, default=4, help="SFT dataloader worker processes")
    parser.add_argument("--tiny", action="store_true", help="the tiny offline model on the CPU (smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    from eemo_pipeline.training.grpo import GRPOSettings, train_grpo
    from eemo_pipeline.training.sft import SFTSettings, train_sft

    tolerate_unhashable_datasets()
    cpu = args.tiny or not torch.cuda.is_available()
    if not args.tiny and cpu:
        print("no CUDA GPU: run with --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="eemo-train-gpu-"))
    started = time.perf_counter()
    model, processor_dir = build_model(work / "processor", args.tiny)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {parameters / 1e9:.2f} B parameters, built in {time.perf_counter() - started:.1f} s "
          f"on {torch.cuda.get_device_name() if not cpu else 'cpu'}", flush=True)
    size = (96, 96) if args.tiny else (640, 480)
    images = make_images(work, 8, size)
    budget = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28} if args.tiny else {}
    results = []

    sft_records = [{
        "messages": [{"role": "user", "content": [{"type": "image", "text": None},
                                                  {"type": "text", "text": "Rank the three emotions this image "
                                                                           "evokes most, most felt first."}]},
                     {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}],
        "images": [images[i % len(images)]],
    } for i in range(args.batch * args.steps)]
    settings = SFTSettings(global_batch_size=args.batch, per_device_batch_size=args.batch, max_steps=args.steps,
                           save_steps=10**9, warmup_ratio=0.0, dataloader_num_workers=args.workers, **budget)
    clock = StepClock()
    trainer = train_sft(processor_dir, sft_records, work / "sft", settings, use_cpu=cpu, callbacks=[clock],
                        model=model)
    results.append(summarize("sft", trainer, clock, {"batch": args.batch, "lora_r": settings.lora_r,
                                                     "dataloader_num_workers": args.workers,
                                                     "gradient_checkpointing": settings.gradient_checkpointing}))
    model = trainer.model.unload() if hasattr(trainer.model, "unload") else trainer.model  # the bare base again
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if args.grpo_steps <= 0:
        return _write(args, cpu, parameters, results)

    prompt = [{"role": "system", "content": [{"type": "text", "text": "You are an expert in visual emotion analysis."}]},
              {"role": "user", "content": [{"type": "image", "text": None},
                                           {"type": "text", "text": "Rate the valence from 0 to 1. Answer as "
                                                                    "<think>...</think><answer>Valence: x.xxxx</answer>."}]}]
    grpo_records = [{"prompt": prompt, "image": images[i % len(images)], "solution": "0.6250", "task": "vad",
                     "sub_task": "valence", "row_id": f"r{i}"} for i in range(args.grpo_steps)]
    grpo = GRPOSettings(num_generations=args.generations, per_device_batch_size=args.generations,
                        max_steps=args.grpo_steps, max_completion_length=args.completion_length, save_steps=10**9,
                        warmup_ratio=0.0, use_vllm="false", **budget)
    clock = StepClock()
    trainer = train_grpo(processor_dir, None, grpo_records, work / "grpo", grpo, use_cpu=cpu, callbacks=[clock],
                         model=model)
    lengths = [e["completions/mean_length"] * args.generations for e in trainer.state.log_history
               if "completions/mean_length" in e]
    results.append(summarize("grpo", trainer, clock, {
        "generations": args.generations, "max_completion_length": args.completion_length,
        "generation": "transformers", "completion_tokens_per_step": lengths,
        "completion_tokens_per_second": round(sum(lengths[1:]) / sum(clock.times[1:]), 1) if len(lengths) > 1 else None,
    }))
    return _write(args, cpu, parameters, results)


def _write(args: argparse.Namespace, cpu: bool, parameters: int, results: list[dict]) -> int:
    import torch

    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name() if not cpu else "cpu",
                                         "parameters": parameters, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
