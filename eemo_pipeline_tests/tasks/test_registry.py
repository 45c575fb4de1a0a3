"""The task registry: every entry is complete, and a new entry flows through the rewards, the benchmark runner and
the report."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.evaluation.readers import ITEM_SCHEMA
from eemo_pipeline.evaluation.report import table1_rows
from eemo_pipeline.evaluation.runner import run_items, score_all
from eemo_pipeline.tasks import benchmark
from eemo_pipeline.tasks.parsing import extract_answer
from eemo_pipeline.tasks.probes import HackingProbe, Informative
from eemo_pipeline.tasks.questions import ASSESS_TEMPLATES
from eemo_pipeline.tasks.registry import TASKS, ReportColumn, Task, report_columns
from eemo_pipeline.training import rewards as training_rewards
from eemo_pipeline.training.reward_sweep import sweep_all


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_complete(name: str) -> None:
    task = TASKS[name]
    assert task.name == name
    assert callable(task.parse) and callable(task.row_reward) and callable(task.score)
    assert callable(task.benchmark_asks) and callable(task.read_reply)
    assert task.identifiers and all(identifier.endswith(":") for identifier in task.identifiers)
    assert task.template_ids and all(template_id in ASSESS_TEMPLATES for template_id in task.template_ids)
    assert task.metric_names and task.report_columns
    assert all(set(column.metrics) <= set(task.metric_names) for column in task.report_columns)
    assert training_rewards.REWARD_FUNCTIONS[task.reward_name] is task.reward
    assert "Range [0, 1]" in (task.row_reward.__doc__ or "")
    # every question template names one of the task's identifiers in its answer format
    for template_id in task.template_ids:
        text = ASSESS_TEMPLATES[template_id].text
        assert any(identifier in text for identifier in task.identifiers) or "{label}:" in text


def test_names_identifiers_and_templates_are_unique() -> None:
    reward_names = [task.reward_name for task in TASKS.values()]
    template_ids = [t for task in TASKS.values() for t in task.template_ids]
    assert len(set(reward_names)) == len(reward_names) and not {"format", "total"} & set(reward_names)
    assert len(set(template_ids)) == len(template_ids)
    keys = [(column.table, column.key) for task in TASKS.values() for column in task.report_columns]
    assert len(set(keys)) == len(keys)


def test_a_sub_task_narrows_the_identifiers() -> None:
    assert TASKS["vad"].answer_identifiers("arousal") == ("Arousal:",)
    assert TASKS["vad"].answer_identifiers(None) == ("Valence:", "Arousal:", "Dominance:")
    assert TASKS["ranking"].answer_identifiers("emotion_ranking") == ("Emotion ranking:",)


def _exact_match(truth: str | None, predicted: str | None, sub_task: str) -> float | None:
    """1.0 when the parsed colour equals the solution's, else 0.0. Range [0, 1]."""
    return None if truth is None else float(truth == predicted)


def _parse_colour(answer: str | None, sub_task: str) -> str | None:
    return (answer or "").removeprefix("Colour:").strip().lower() or None


def _colour_asks(item, modes):
    return [benchmark.Ask("", "generate", "Which colour dominates? Answer as <answer>Colour: name</answer>.")]


def _read_colour(item, sub_task, mode, reply, probabilities):
    parsed = _parse_colour(extract_answer(reply or ""), sub_task)
    return {"parsed": parsed, "correct": parsed == item["answer"]}


def _score_colour(predictions: pl.DataFrame, task: str) -> pl.DataFrame:
    rows = [benchmark.metric_row(model, "colour_bench", task, "overall", "all", "accuracy",
                                 100.0 * frame["correct"].mean(), frame.height, int(frame["parse_failed"].sum()))
            for (model,), frame in predictions.group_by("model", maintain_order=True)]
    return benchmark.metrics_frame(rows)


COLOURS = ("red", "green", "blue")
COLOUR_PROBE = HackingProbe(
    sub_tasks=lambda: ("hue",), truths=lambda sub_task, rng, n: [rng.choice(COLOURS) for _ in range(n)],
    constants=lambda sub_task, truths: [f"Colour: {colour}" for colour in COLOURS],
    informative=(Informative("half right", "the colour half the time, else red",
                             lambda truth, sub_task, rng: f"Colour: {truth if rng.random() < 0.5 else 'red'}"),),
)
COLOUR = Task(
    name="colour", sub_tasks=("hue",), identifiers=("Colour:",), template_ids=("assess_colour@1",),
    parse=_parse_colour, row_reward=_exact_match, reward_name="colour", benchmark_asks=_colour_asks,
    read_reply=_read_colour, score=_score_colour, metric_names=("accuracy",), probe=COLOUR_PROBE,
    report_columns=(ReportColumn("table1", "colour", "Colour ACC", "colour_bench", "overall", "all", ("accuracy",)),),
)


class ColourModel:
    name = "colours"

    def generate(self, requests):
        return ["<think>look</think><answer>Colour: Red</answer>" for _ in requests]

    def keyword_probabilities(self, requests, keywords):
        return None


def test_a_new_entry_flows_through_rewards_benchmark_and_report(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setitem(TASKS, COLOUR.name, COLOUR)
    completions = ["<think>red things</think><answer>Colour: Red</answer>", "<think>x</think><answer>blue</answer>",
                   "<think>x</think><answer>Valence: 0.5</answer>"]
    columns = {"solution": ["red", "red", "0.5000"], "task": ["colour", "colour", "vad"],
               "sub_task": ["hue", "hue", "valence"]}
    assert COLOUR.reward(completions, **columns) == [1.0, 0.0, None]
    assert COLOUR.reward.__doc__.startswith("1.0 when")
    assert training_rewards.format_reward(completions, **columns) == [1.0, 0.0, 1.0]
    weight = training_rewards.FORMAT_WEIGHT
    assert training_rewards.total_reward(completions, **columns) == pytest.approx([weight + 1.0, 0.0, weight + 1.0])
    # the reward-hacking sweep covers the new entry through its probe
    swept = {result.task: result for result in sweep_all(n=60) if result.task == "colour"}
    assert swept["colour"].holds and len(swept["colour"].constants) == len(COLOURS)

    image = tmp_path / "red.png"
    image.write_bytes(b"not read by the scripted model")
    items = pl.DataFrame(
        [{"benchmark": "colour_bench", "item_id": str(i), "task": "colour", "carrier": "single",
          "images": [str(image)], "answer": answer, "option_keys": [], "option_texts": [], "labels": [],
          "ranking": [], "source_file": "colours.json", "source_row": str(i)} for i, answer in enumerate(["red", "blue"])],
        schema=ITEM_SCHEMA)
    predictions = run_items(items, ColourModel()).predictions
    assert predictions["parsed"].to_list() == ["red", "red"]
    table = score_all(predictions)
    assert table.filter(pl.col("task") == "colour")["value"].to_list() == [50.0]
    assert [c.key for c in report_columns("table1")] == ["ranking", "colour"]
    assert table1_rows(table)[0]["colour"] == 50.0
