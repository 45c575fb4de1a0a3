"""Prompt templates: packaged files, conventions (Task line, Facts block), rendering and its errors."""

from __future__ import annotations

import re

import pytest

from eemo_pipeline.generation.templates import (
    FACT_KEYS,
    Template,
    TemplateError,
    facts_block,
    load_template,
    parse_template,
    template_names,
)

TEMPLATES = ("describe", "reason", "narrative", "causal", "evocation", "reasoning_choice", "pair_ranking",
             "pair_dimension")
DATA_URL = "data:image/png;base64,iVBORw0KGgo="


def fields_for(template: Template) -> dict[str, str]:
    return {name: f"<{name}>" for name in template.fields}


def user_text(messages: list[dict]) -> str:
    content = messages[1]["content"]
    return content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")


def test_the_eight_templates_are_packaged() -> None:
    assert set(template_names()) == set(TEMPLATES)


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_loads_with_front_matter(name: str) -> None:
    template = load_template(name)
    assert template.name == name
    # version 2: the templates that quote an earlier model's output say it is data, not instructions
    version = "1" if name == "describe" else "2"
    assert template.version == version
    assert template.id == f"{name}@v{version}"
    assert template.role == ("describer" if name == "describe" else "reasoner")
    assert isinstance(template.word_limit, int) and 0 < template.word_limit <= 200
    assert load_template(name) is template  # cached


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_follows_the_conventions(name: str) -> None:
    template = load_template(name)
    assert f"Task: {name}" in template.system.splitlines()
    lines = template.user.splitlines()
    facts_at = max(i for i, line in enumerate(lines) if line == "Facts:")
    facts = lines[facts_at + 1:]
    assert facts and all(re.fullmatch(r"[A-Za-z {}]+: \{\w+\}", line) for line in facts), facts
    keys = facts_block(template.user)
    assert list(keys)[-1] == "Word limit"
    for key in keys:
        assert key.replace("{dimension}", "valence") in FACT_KEYS


@pytest.mark.parametrize("name", TEMPLATES)
def test_render_fills_every_placeholder(name: str) -> None:
    template = load_template(name)
    fields = fields_for(template)
    messages = template.render(**fields)
    assert [m["role"] for m in messages] == ["system", "user"]
    text = user_text(messages)
    assert not re.search(r"\{\w+\}", messages[0]["content"] + text)
    assert "Task: " + name in messages[0]["content"]
    for key, value in facts_block(text).items():
        assert value.startswith("<"), (key, value)


@pytest.mark.parametrize("name", TEMPLATES)
def test_render_names_a_missing_field(name: str) -> None:
    template = load_template(name)
    fields = fields_for(template)
    fields.pop("word_limit")
    with pytest.raises(KeyError, match="word_limit"):
        template.render(**fields)


def test_render_rejects_an_unknown_field() -> None:
    template = load_template("causal")
    with pytest.raises(TypeError, match="colour"):
        template.render(**fields_for(template), colour="red")


def test_facts_values_stay_on_one_line() -> None:
    template = load_template("reason")
    fields = fields_for(template) | {"description": "A dog.\n\nIt runs  on\tsand.", "comments": "joy [fun\nday]"}
    facts = facts_block(user_text(template.render(**fields)))
    assert facts["Description"] == "A dog. It runs on sand."
    assert facts["Comments"] == "joy [fun day]"


def test_free_text_outside_the_facts_keeps_its_lines() -> None:
    template = load_template("narrative")
    text = user_text(template.render(**fields_for(template) | {"reasoning": "line one\nline two"}))
    assert "line one\nline two" in text


def test_describe_carries_the_image_entry() -> None:
    template = load_template("describe")
    messages = template.render(word_limit=template.word_limit, image_data_url=DATA_URL)
    content = messages[1]["content"]
    assert isinstance(content, list)
    assert content[0] == {"type": "image_url", "image_url": {"url": DATA_URL}}
    assert content[1]["type"] == "text" and facts_block(content[1]["text"]) == {"Word limit": "120"}
    plain = template.render(word_limit=120)
    assert isinstance(plain[1]["content"], str)


def test_reasoner_templates_take_no_image() -> None:
    template = load_template("reason")
    with pytest.raises(ValueError, match="takes no image"):
        template.render(**fields_for(template), image_data_url=DATA_URL)


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown prompt template 'summary'.*describe.*pair_dimension"):
        load_template("summary")


def test_pair_dimension_key_takes_the_dimension() -> None:
    template = load_template("pair_dimension")
    fields = fields_for(template) | {"dimension": "arousal", "level_a": "high", "level_b": "low"}
    facts = facts_block(user_text(template.render(**fields)))
    assert facts["Dimension"] == "arousal"
    assert facts["Image A arousal level"] == "high" and facts["Image B arousal level"] == "low"


GOOD = """---
name: demo
version: "2"
role: reasoner
word_limit: 50
description: a test template
---

## system

Be brief.
Task: demo

## user

Say something about {thing}.

Facts:
Description: {thing}
Word limit: {word_limit}
"""


def test_parse_template_reads_a_good_file() -> None:
    template = parse_template(GOOD)
    assert (template.id, template.word_limit, template.fields) == ("demo@v2", 50, frozenset({"thing", "word_limit"}))


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (GOOD.replace("Task: demo", "Task demo"), "Task: demo"),
        (GOOD.replace("Facts:\n", ""), "Facts"),
        (GOOD.replace("Description: {thing}", "Colour: {thing}"), "Colour"),
        (GOOD.replace("role: reasoner", "role: poet"), "role"),
        (GOOD.replace("word_limit: 50", "word_limit: many"), "word_limit"),
        (GOOD.replace("## user", "## usr"), "sections"),
        (GOOD.replace("Word limit: {word_limit}", "Word limit: {word_limit}\n\nThanks."), "Facts"),
        (GOOD.replace('version: "2"\n', ""), "version"),
    ],
)
def test_parse_template_rejects_broken_files(broken: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse_template(broken)
