"""What every task's questions share: the trainers' system prompt, the answer-format instruction of the EEmoDB-Assess
questions (paper section 3.4), the ``Template`` they are written in and the seven targets as benchmark prompts
name them. Each task's own templates and prompts are in its module (``tasks/ranking.py``...).

The GRPO stage trains on the Assess questions and ``eemo assess`` asks them again. Every Assess question states
the answer format its task's reward parses (``<think>...</think><answer>Valence: x.xxxx</answer>`` and so on);
every benchmark prompt ends in an ``<answer>...</answer>`` block, the one the parsers read (the last block
wins; a model that answers without the block is still read from its whole reply). The prompts of
benchmark-only tasks (multiple choice, description) and the benchmark system prompt are in
``evaluation/prompts.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert in visual emotion analysis: you judge which emotions an image evokes in the people who "
    "look at it, and how pleasant, arousing and dominant that feeling is, from its content, composition, colour "
    "and atmosphere. For every question, first reason about the visual evidence inside <think> </think>, then "
    "give only the final answer inside <answer> </answer>, in exactly the format the question asks for."
)
"""The system turn of the SFT and GRPO records, and of ``eemo assess``."""

RANKING_LENGTH = 3
"""A ranking ranks three emotions: EEmo-Bench scores within the permutations of three (paper section 5). How a
longer or repeated answer is read (``parsing.parse_ranking``, ``parsing.ranked``): a repeat is dropped, so an
emotion keeps its first place; the GRPO format reward fails an answer naming more than three distinct emotions,
or any item that is not one of the seven (``ranking.names_a_ranking``), so ``total`` gives it 0; the benchmark and
the ranking reward score the first three."""

EMOTIONS_TEXT = "anger, disgust, fear, joy, neutral, sadness and surprise"
"""The seven targets as the benchmark prompts list them."""

THINK_INSTRUCTION = ("First reason step by step inside <think></think>, then give only the final answer inside "
                     "<answer></answer>")
"""How every Assess question asks for its answer; the question goes on with its format (", exactly as ...")."""


@dataclass(frozen=True)
class Template:
    """An Assess question template: ``name@version`` is the ``template_id`` column of its rows."""

    name: str
    version: int
    text: str

    @property
    def template_id(self) -> str:
        return f"{self.name}@{self.version}"
