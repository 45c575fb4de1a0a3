from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.subsets.export import grpo_records, sft_records, write_jsonl, write_records
from eemo_pipeline.tasks.questions import DEFAULT_SYSTEM_PROMPT
from eemo_pipeline_tests.subsets.test_assess import build_sample_tables, run


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_sample_tables(tmp_path_factory.mktemp("export_sample"))


@pytest.fixture(scope="module")
def assess(sample: dict) -> pl.DataFrame:
    return run(sample)


def qa_frame() -> pl.DataFrame:
    """Two QA-shaped rows: a single-image and a pair question."""
    return table_contract("eemodb_qa").conform(pl.DataFrame({
        "row_id": ["r1", "r2"], "task": ["perception", "perception"], "sub_task": ["a", "b"],
        "template_id": ["t@1", "t@1"], "question": ["Is it sad?", "Which is calmer? A. first B. second"],
        "options": [["yes", "no"], ["A", "B"]], "answer": ["yes", "B"],
        "image_paths": [["oasis/images/Cat 2.jpg"], ["gaped/P/P001.bmp", "oasis/images/Lake 2.jpg"]],
        "sources": [["oasis"], ["gaped", "oasis"]], "source_image_ids": [["Cat 2"], ["P001", "Lake 2"]],
        "provenance": ["{}", "{}"],
    }))


def check_sft(records: pl.DataFrame, source: pl.DataFrame) -> None:
    assert records.columns == ["row_id", "messages", "images"]
    answers = dict(zip(source["row_id"], source["answer"]))
    questions = dict(zip(source["row_id"], source["question"]))
    for r in records.iter_rows(named=True):
        user, assistant = r["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        images = [p for p in user["content"] if p["type"] == "image"]
        assert len(images) == len(r["images"]) >= 1
        assert user["content"][-1] == {"type": "text", "text": questions[r["row_id"]]}
        assert all(p["type"] == "image" for p in user["content"][:-1])
        assert assistant["content"] == [{"type": "text", "text": answers[r["row_id"]]}]


def test_sft_records_of_qa_rows_with_one_and_two_images(tmp_path: Path) -> None:
    qa = qa_frame()
    records = sft_records(qa)
    check_sft(records, qa)
    assert records["images"].to_list() == qa["image_paths"].to_list()
    roots = {"oasis": tmp_path / "o", "gaped": tmp_path / "g"}
    resolved = sft_records(qa, roots)
    assert resolved["images"].to_list() == [
        [str((tmp_path / "o" / "images/Cat 2.jpg").resolve())],
        [str((tmp_path / "g" / "P/P001.bmp").resolve()), str((tmp_path / "o" / "images/Lake 2.jpg").resolve())],
    ]
    with pytest.raises(KeyError):
        sft_records(qa, {"oasis": tmp_path})


def test_sft_records_of_the_assess_sample(sample: dict, assess: pl.DataFrame) -> None:
    records = sft_records(assess, sample["roots"])
    check_sft(records, assess)
    for paths in records["images"]:
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)


def test_grpo_records_shape(sample: dict, assess: pl.DataFrame) -> None:
    records = grpo_records(assess, sample["roots"])
    assert records.columns == ["prompt", "image", "solution", "task", "sub_task", "row_id"]
    assert records.height == assess.height
    expected = {r["row_id"]: r for r in assess.iter_rows(named=True)}
    for r in records.iter_rows(named=True):
        source = expected[r["row_id"]]
        system, user = r["prompt"]
        assert system["role"] == "system" and system["content"] == [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]
        assert user["role"] == "user"
        assert [p["type"] for p in user["content"]] == ["image", "text"]
        assert user["content"][1]["text"] == source["question"]
        assert r["solution"] == source["answer"]
        assert (r["task"], r["sub_task"]) == (source["task"], source["sub_task"])
        assert Path(r["image"]).is_file()
        relative = source["image_paths"][0].split("/", 1)[1]
        assert r["image"] == str((sample["roots"][source["sources"][0]] / relative).resolve())
    unresolved = grpo_records(assess, system_prompt="be brief")
    assert unresolved["image"].to_list() == [p[0] for p in assess["image_paths"]]
    assert unresolved["prompt"][0][0]["content"][0]["text"] == "be brief"
    assert "<think>" in DEFAULT_SYSTEM_PROMPT and "<answer>" in DEFAULT_SYSTEM_PROMPT


def test_grpo_records_refuse_pairs() -> None:
    with pytest.raises(ValueError):
        grpo_records(qa_frame())


def test_write_jsonl_and_parquet_round_trip(assess: pl.DataFrame, tmp_path: Path) -> None:
    records = grpo_records(assess.head(5))
    path = write_jsonl(records, tmp_path / "grpo.jsonl")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == records.to_dicts()
    parquet = write_records(sft_records(assess.head(5)), tmp_path / "sft.parquet")
    assert pl.read_parquet(parquet).equals(sft_records(assess.head(5)))
