"""The task registry: every entry is complete, and a task defined here flows through every consumer (Assess rows,
the rewards and the hacking sweep, the training curves, EEmo-Bench's reader, the benchmark runner, the report
and ``eemo assess``) without an edit anywhere else."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.evaluation.predict import assessment_questions, read_assessment
from eemo_pipeline.evaluation.readers import ITEM_SCHEMA, read_eemo_bench
from eemo_pipeline.evaluation.report import table1_rows
from eemo_pipeline.evaluation.runner import run_items, score_all
from eemo_pipeline.evaluation.samples import write_sample_benchmarks
from eemo_pipeline.subsets.assess import build_assess
from eemo_pipeline.tasks import benchmark
from eemo_pipeline.tasks.assess_rows import AssessInputs, assess_frame
from eemo_pipeline.tasks.parsing import answer_text, extract_answer
from eemo_pipeline.tasks.probes import HackingProbe, Informative
from eemo_pipeline.tasks.questions import THINK_INSTRUCTION, Template
from eemo_pipeline.tasks.registry import TASKS, assess_templates, report_columns
from eemo_pipeline.tasks.task import ImageQuestion, ReportColumn, Task
from eemo_pipeline.training import rewards as training_rewards
from eemo_pipeline.training.reward_sweep import sweep_all


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_complete(name: str) -> None:
    task = TASKS[name]
    assert task.name == name
    assert callable(task.parse) and callable(task.row_reward) and callable(task.score)
    assert callable(task.benchmark_asks) and callable(task.read_reply)
    assert callable(task.assess_rows) and callable(task.eemo_bench_item)
    assert task.identifiers and all(identifier.endswith(":") for identifier in task.identifiers)
    assert task.templates and all(assess_templates()[t.template_id] is t for t in task.templates)
    assert task.metric_names and task.report_columns and task.image_questions
    assert all(set(column.metrics) <= set(task.metric_names) for column in task.report_columns)
    assert training_rewards.REWARD_FUNCTIONS[task.reward_name] is task.reward
    assert "Range [0, 1]" in (task.row_reward.__doc__ or "")
    # every question template names one of the task's identifiers in its answer format
    for template in task.templates:
        assert any(identifier in template.text for identifier in task.identifiers) or "{label}:" in template.text


def test_names_identifiers_templates_and_fields_are_unique() -> None:
    reward_names = [task.reward_name for task in TASKS.values()]
    template_ids = [t for task in TASKS.values() for t in task.template_ids]
    assert len(set(reward_names)) == len(reward_names) and not {"format", "total"} & set(reward_names)
    assert len(set(template_ids)) == len(template_ids)
    keys = [(column.table, column.key) for task in TASKS.values() for column in task.report_columns]
    assert len(set(keys)) == len(keys)
    fields = [asked.field for task in TASKS.values() for asked in task.image_questions]
    assert len(set(fields)) == len(fields) and "unparsed" not in fields


def test_a_sub_task_narrows_the_identifiers() -> None:
    assert TASKS["vad"].answer_identifiers("arousal") == ("Arousal:",)
    assert TASKS["vad"].answer_identifiers(None) == ("Valence:", "Arousal:", "Dominance:")
    assert TASKS["ranking"].answer_identifiers("emotion_ranking") == ("Emotion ranking:",)


# ------------------------------------------------------------------------------- a task defined here

COLOURS = ("red", "green", "blue")
COLOUR_TEMPLATE = Template("assess_colour", 1, "Which colour dominates this image: red, green or blue? "
                           + THINK_INSTRUCTION + ", exactly as <think>...</think><answer>Colour: name</answer>.")


def _exact_match(truth: str | None, predicted: str | None, sub_task: str) -> float:
    """1.0 when the parsed colour equals the solution's, else 0.0. Range [0, 1]. ValueError for a solution that
    names no colour (an unusable truth)."""
    if truth is None:
        raise ValueError("the solution names no colour")
    return float(truth == predicted)


def _parse_colour(answer: str | None, sub_task: str) -> str | None:
    colour = (answer or "").removeprefix("Colour:").strip().lower()
    return colour if colour in COLOURS else None


def _colour_rows(inputs: AssessInputs) -> pl.DataFrame:
    """Every decodable image, its colour the first letter's place in the alphabet modulo three."""
    images = inputs.images.with_columns(
        pl.col("image_id").map_elements(lambda i: COLOURS[ord(i[0]) % 3], return_dtype=pl.String).alias("answer"))
    return assess_frame(images.with_columns(task=pl.lit("colour"), sub_task=pl.lit("hue"),
                                            template_id=pl.lit(COLOUR_TEMPLATE.template_id),
                                            question=pl.lit(COLOUR_TEMPLATE.text),
                                            provenance_facts=pl.lit(json.dumps({"colour_rule": "first letter"}))))


def _colour_item(truth: Mapping[str, Any]) -> dict[str, Any]:
    return {"answer": "red" if truth["valence"] >= 0.5 else "blue"}


def _colour_asks(item, modes):
    return [benchmark.Ask("", "generate", "Which colour dominates? Answer as <answer>Colour: name</answer>.")]


def _read_colour(item, sub_task, mode, reply, probabilities):
    parsed = _parse_colour(extract_answer(reply or ""), sub_task)
    return {"parsed": parsed, "correct": parsed == item["answer"]}


def _score_colour(predictions: pl.DataFrame, task: str) -> pl.DataFrame:
    rows = [benchmark.metric_row(model, benchmark_name, task, "overall", "all", "accuracy",
                                 100.0 * frame["correct"].mean(), frame.height, int(frame["parse_failed"].sum()))
            for (model, benchmark_name), frame in predictions.group_by("model", "benchmark", maintain_order=True)]
    return benchmark.metrics_frame(rows)


COLOUR_PROBE = HackingProbe(
    sub_tasks=lambda: ("hue",), truths=lambda sub_task, rng, n: [rng.choice(COLOURS) for _ in range(n)],
    constants=lambda sub_task, truths: [f"Colour: {colour}" for colour in COLOURS],
    informative=(Informative("half right", "the colour half the time, else red",
                             lambda truth, sub_task, rng: f"Colour: {truth if rng.random() < 0.5 else 'red'}"),),
)
COLOUR = Task(
    name="colour", sub_tasks=("hue",), identifiers=("Colour:",), templates=(COLOUR_TEMPLATE,),
    assess_rows=_colour_rows, parse=_parse_colour, row_reward=_exact_match, reward_name="colour",
    probe=COLOUR_PROBE, eemo_bench_item=_colour_item, benchmark_asks=_colour_asks, read_reply=_read_colour,
    score=_score_colour, metric_names=("accuracy",),
    image_questions=(ImageQuestion("colour", lambda: COLOUR_TEMPLATE.text,
                                   lambda reply: _parse_colour(answer_text(reply), "hue")),),
    report_columns=(ReportColumn("table1", "colour", "Colour ACC", "eemo_bench", "overall", "all", ("accuracy",)),),
)


class ColourModel:
    """Answers every colour question "Red" and nothing else."""

    name = "colours"

    def generate(self, requests):
        return ["<think>look</think><answer>Colour: Red</answer>" if "olour" in r.prompt else "no idea"
                for r in requests]

    def keyword_probabilities(self, requests, keywords):
        return None


@pytest.fixture
def colour_registered(monkeypatch: pytest.MonkeyPatch) -> Task:
    monkeypatch.setitem(TASKS, COLOUR.name, COLOUR)
    return COLOUR


def test_a_new_task_gets_assess_rows(colour_registered: Task) -> None:
    manifest = pl.DataFrame({"source": ["oasis"] * 3, "image_id": ["a1", "b2", "c3"],
                             "image_path": ["a.jpg", "b.jpg", None], "decodable": [True, True, True]})
    manifest = table_contract("image_manifest").conform(manifest)
    empty = {name: table_contract(name).empty() for name in ("mapped_labels", "vad_scores", "raw_annotations")}
    assess = build_assess(empty["mapped_labels"], empty["vad_scores"], manifest, empty["raw_annotations"],
                          {"image_manifest[oasis]": "v1"})
    assert table_contract("eemodb_assess").violations(assess) == []
    colour = assess.filter(pl.col("task") == "colour")
    assert sorted(colour["source_image_ids"].to_list()) == [["a1"], ["b2"]]  # c3 has no file
    assert set(colour["answer"]) <= set(COLOURS) and set(colour["template_id"]) == {"assess_colour@1"}
    provenance = json.loads(colour["provenance"][0])
    assert provenance["colour_rule"] == "first letter" and provenance["inputs"] == {"image_manifest[oasis]": "v1"}


def test_a_task_whose_rows_are_not_its_own_is_refused(colour_registered: Task, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dataclasses.replace(COLOUR, sub_tasks=("saturation",))
    monkeypatch.setitem(TASKS, COLOUR.name, wrong)
    manifest = table_contract("image_manifest").conform(pl.DataFrame(
        {"source": ["oasis"], "image_id": ["a1"], "image_path": ["a.jpg"], "decodable": [True]}))
    empty = {name: table_contract(name).empty() for name in ("mapped_labels", "vad_scores", "raw_annotations")}
    with pytest.raises(ValueError, match="task 'colour' built an Assess row that is not its own"):
        build_assess(empty["mapped_labels"], empty["vad_scores"], manifest, empty["raw_annotations"], {})


def test_a_new_task_flows_through_rewards_curves_and_the_sweep(colour_registered: Task) -> None:
    from eemo_pipeline.assets.training import curve_columns

    completions = ["<think>red things</think><answer>Colour: Red</answer>", "<think>x</think><answer>blue</answer>",
                   "<think>x</think><answer>Valence: 0.5</answer>"]
    columns = {"solution": ["red", "red", "0.5000"], "task": ["colour", "colour", "vad"],
               "sub_task": ["hue", "hue", "valence"]}
    assert COLOUR.reward(completions, **columns) == [1.0, 0.0, None]
    assert COLOUR.reward.__doc__.startswith("1.0 when")
    assert training_rewards.format_reward(completions, **columns) == [1.0, 0.0, 1.0]
    weight = training_rewards.FORMAT_WEIGHT
    assert training_rewards.total_reward(completions, **columns) == pytest.approx([weight + 1.0, 0.0, weight + 1.0])
    assert "rewards/_exact_match/mean" in curve_columns()
    # the reward-hacking sweep covers the new entry through its probe
    swept = {result.task: result for result in sweep_all(n=60) if result.task == "colour"}
    assert swept["colour"].holds and len(swept["colour"].constants) == len(COLOURS)


def test_a_new_task_flows_through_the_benchmark_and_the_report(colour_registered: Task, tmp_path: Path) -> None:
    roots = write_sample_benchmarks(tmp_path)
    items = read_eemo_bench(roots["eemo_bench"])
    colour_items = items.filter(pl.col("task") == "colour")
    assert colour_items.height == items.filter(pl.col("task") == "ranking").height > 0
    assert colour_items["item_id"].str.starts_with("colour/").all()

    image = tmp_path / "red.png"
    image.write_bytes(b"not read by the scripted model")
    extra = pl.DataFrame(
        [{"benchmark": "colour_bench", "item_id": str(i), "task": "colour", "carrier": "single",
          "images": [str(image)], "answer": answer, "option_keys": [], "option_texts": [], "labels": [],
          "ranking": [], "source_file": "colours.json", "source_row": str(i)} for i, answer in enumerate(["red", "blue"])],
        schema=ITEM_SCHEMA)
    predictions = run_items(pl.concat([colour_items, extra]), ColourModel()).predictions
    assert set(predictions["parsed"]) == {"red"}
    table = score_all(predictions)
    bench = colour_items["answer"].to_list()
    assert table.filter((pl.col("task") == "colour") & (pl.col("benchmark") == "eemo_bench"))["value"].to_list() \
        == [pytest.approx(100.0 * bench.count("red") / len(bench))]
    assert table.filter((pl.col("task") == "colour") & (pl.col("benchmark") == "colour_bench"))["value"].to_list() \
        == [50.0]
    keys = [c.key for c in report_columns("table1")]
    assert keys[0] == "ranking" and keys[-1] == "colour"  # after the registered tasks' columns
    assert table1_rows(table)[0]["colour"] == pytest.approx(100.0 * bench.count("red") / len(bench))


def test_eemo_assess_asks_and_reads_a_new_task(colour_registered: Task) -> None:
    questions = assessment_questions()
    assert questions["colour"] == COLOUR_TEMPLATE.text and list(questions)[-1] == "colour"
    read = read_assessment(dict.fromkeys(questions, "<answer>Colour: Green</answer>"))
    assert read["colour"] == "green" and "colour" not in read["unparsed"] and "ranking" in read["unparsed"]
