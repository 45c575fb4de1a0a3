"""The exports loaded by TRL's own data handling, with a tiny Qwen2.5-VL processor built offline."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.subsets.export import grpo_records, sft_records
from eemo_pipeline.subsets.qa import build_qa
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline_tests.subsets.test_assess import build_sample_tables, run
from eemo_pipeline_tests.subsets.test_qa import generated_rows

pytest.importorskip("trl", reason="the train extra (torch, transformers, trl) is not installed")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_sample_tables(tmp_path_factory.mktemp("trl_sample"))


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoProcessor

    from eemo_pipeline.training.tiny import build_tiny_processor

    return AutoProcessor.from_pretrained(build_tiny_processor(tmp_path_factory.mktemp("tiny_processor")))


def _qa(sample: dict) -> pl.DataFrame:
    t = sample["tables"]
    return build_qa(t["mapped_labels"], t["vad_scores"], t["manifest"],
                    generated_rows(t["mapped_labels"], t["manifest"]), sample["inputs"])


def test_sft_export_goes_through_the_vision_collator(tables: dict, processor, tmp_path: Path) -> None:
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    qa = _qa(tables)
    records = sft_records(qa, tables["roots"], tmp_path / "converted")
    # GAPED's BMP images are handed to the trainer as PNG copies (torchvision cannot decode BMP).
    images = records["images"].explode()
    assert not images.str.to_lowercase().str.ends_with(".bmp").any()
    assert images.str.starts_with(str(tmp_path / "converted")).any()
    # One single-image and one pair row, as the trainer's dataloader hands them over.
    single = records.filter(pl.col("images").list.len() == 1).row(0, named=True)
    pair = records.filter(pl.col("images").list.len() == 2).row(0, named=True)
    batch = DataCollatorForVisionLanguageModeling(processor)([dict(single), dict(pair)])
    assert batch["input_ids"].shape[0] == 2 and batch["labels"].shape == batch["input_ids"].shape
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    patches = batch["image_grid_thw"].prod(dim=1) // 4  # merge 2 x 2 patches into one image token
    assert batch["image_grid_thw"].shape[0] == 3  # three images in the batch
    assert int((batch["input_ids"] == image_pad).sum()) == int(patches.sum())
    # The answer text is in the labels: decoded, each row ends with its assistant turn.
    decoded = processor.tokenizer.decode(batch["input_ids"][0][batch["attention_mask"][0] == 1])
    assert decoded.rstrip().endswith(f"{single['messages'][1]['content'][0]['text']}<|im_end|>")


def test_grpo_export_renders_as_a_trl_prompt(tables: dict, processor, tmp_path: Path) -> None:
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    records = grpo_records(run(tables), tables["roots"], converted_dir=tmp_path / "converted")
    assert set(records["task"]) == set(TASKS)  # every registered task has rows on the sample
    for row in records.group_by("task").head(1).iter_rows(named=True):
        assert Path(row["image"]).is_file()
        prompt = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
        rendered = apply_chat_template({"prompt": prompt}, processor)["prompt"]
        assert rendered.count("<|image_pad|>") == 1 and rendered.endswith("<|im_start|>assistant\n")
        assert row["solution"] and [m["role"] for m in row["prompt"]] == ["system", "user"]
