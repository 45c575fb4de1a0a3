"""A tiny offline Qwen2.5-VL on disk and tiny SFT / GRPO exports, shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.tasks.questions import DEFAULT_SYSTEM_PROMPT

# Small images keep a CPU step well under a second.
TINY_BUDGET = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("trl", reason="the train extra (torch, transformers, peft, trl) is not installed")
    from eemo_pipeline.training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def toy_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from PIL import Image

    directory = tmp_path_factory.mktemp("images")
    images = {"red": (96, 96, (200, 10, 10)), "blue": (112, 84, (10, 10, 200)), "green": (84, 112, (10, 180, 40))}
    paths = {}
    for name, (width, height, colour) in images.items():
        paths[name] = directory / f"{name}.png"
        Image.new("RGB", (width, height), colour).save(paths[name])
    return paths


def grpo_row(image: Path, question: str, solution: str, task: str, sub_task: str, row_id: str) -> dict:
    """One grpo_dataset record, as subsets.export.grpo_records writes it."""
    return {
        "prompt": [{"role": "system", "content": [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]},
                   {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": question}]}],
        "image": str(image), "solution": solution, "task": task, "sub_task": sub_task, "row_id": row_id,
    }


@pytest.fixture(scope="session")
def grpo_records(toy_images: dict[str, Path]) -> list[dict]:
    return [
        grpo_row(toy_images["red"], "Rank the top three emotions. Answer as Emotion ranking: a, b, c.",
                 "joy, surprise, fear", "ranking", "emotion_ranking", "g1"),
        grpo_row(toy_images["blue"], "Rate the valence from 0 to 1. Answer as Valence: x.xxxx.", "0.7321", "vad",
                 "valence", "g2"),
        grpo_row(toy_images["green"], "Which emotion dominates? Answer as Dominant emotion: x.", "Amusement",
                 "dominant_emotion", "mikels8", "g3"),
        grpo_row(toy_images["red"], "Rate the arousal from 0 to 1. Answer as Arousal: x.xxxx.", "0.2", "vad",
                 "arousal", "g4"),
    ]


@pytest.fixture(scope="session")
def sft_records(toy_images: dict[str, Path]) -> list[dict]:
    rows = []
    for name, answer in (("red", "yes"), ("blue", "no")):
        rows.append({
            "row_id": name,
            "messages": [
                {"role": "user", "content": [{"type": "image", "text": None},
                                             {"type": "text", "text": "Does this image evoke joy? Answer yes or no."}]},
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            ],
            "images": [str(toy_images[name])],
        })
    return rows * 4


def write_exports(storage: Path, sft: list[dict], grpo: list[dict]) -> None:
    """The two exports where the training assets look for them (as build_subsets leaves them)."""
    storage.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(sft).write_parquet(storage / "sft_dataset.parquet")
    pl.DataFrame(grpo).write_parquet(storage / "grpo_dataset.parquet")
