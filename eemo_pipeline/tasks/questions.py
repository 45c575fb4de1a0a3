"""The EEmoDB-Assess questions (paper section 3.4) and the trainers' system prompt.

The GRPO stage trains on these questions and ``eemo assess`` asks them again, so they live here, beside the
parsers that read their answers. Every question states the answer format the rewards parse
(``<think>...</think><answer>Valence: x.xxxx</answer>`` and so on).
"""

from __future__ import annotations

from dataclasses import dataclass

from eemo_pipeline.labels.taxonomy import TARGETS

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert in visual emotion analysis: you judge which emotions an image evokes in the people who "
    "look at it, and how pleasant, arousing and dominant that feeling is, from its content, composition, colour "
    "and atmosphere. For every question, first reason about the visual evidence inside <think> </think>, then "
    "give only the final answer inside <answer> </answer>, in exactly the format the question asks for."
)
"""The system turn of the SFT and GRPO records, and of ``eemo assess``."""

VAD_DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")
RANKING_LENGTH = 3
"""A ranking ranks three emotions: EEmo-Bench scores within the permutations of three (paper section 5). How a
longer or repeated answer is read (``parsing.parse_ranking``, ``parsing.ranked``): a repeat is dropped, so an
emotion keeps its first place; the GRPO format reward fails an answer naming more than three distinct emotions
(``registry.RANKING``), so ``total`` gives it 0; the benchmark and the ranking reward score the first three."""


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    text: str

    @property
    def template_id(self) -> str:
        return f"{self.name}@{self.version}"


_THINK = "First reason step by step inside <think></think>, then give only the final answer inside <answer></answer>"

RANKING_TEMPLATE = Template(
    "assess_emotion_ranking", 1,
    "Which three emotions does this image evoke most widely in viewers? Choose from: {candidates}. Order them "
    "from the emotion felt by the most people to the one felt by the fewest. " + _THINK + ", exactly as "
    "<think>...</think><answer>Emotion ranking: a, b, c</answer> with three different emotions from the list.",
)
VAD_TEMPLATE = Template(
    "assess_vad", 1,
    "Rate the {dimension} this image evokes in viewers on a scale from 0 to 1, where 0 means {low} and 1 means "
    "{high}. " + _THINK + ", exactly as <think>...</think><answer>{label}: x.xxxx</answer> with a number "
    "between 0 and 1 written with four decimal places.",
)
DOMINANT_TEMPLATE = Template(
    "assess_dominant_emotion", 1,
    "Which single emotion does this image evoke most in viewers? Candidates: {candidates}. " + _THINK
    + ", exactly as <think>...</think><answer>Dominant emotion: x</answer>, writing the emotion exactly as it "
    "is spelled among the candidates.",
)
ASSESS_TEMPLATES: dict[str, Template] = {t.template_id: t for t in (RANKING_TEMPLATE, VAD_TEMPLATE, DOMINANT_TEMPLATE)}
"""Every Assess question template by id (the ``template_id`` column)."""

VAD_WORDING: dict[str, tuple[str, str]] = {
    "valence": ("very unpleasant, negative", "very pleasant, positive"),
    "arousal": ("very calm, relaxed", "very excited, stimulated"),
    "dominance": ("helpless, controlled by the scene", "powerful, in control of the scene"),
}


def ranking_question() -> str:
    return RANKING_TEMPLATE.text.format(candidates=", ".join(TARGETS))


def vad_question(dimension: str) -> str:
    low, high = VAD_WORDING[dimension]
    return VAD_TEMPLATE.text.format(dimension=dimension, low=low, high=high, label=dimension.capitalize())


def dominant_question(candidates: tuple[str, ...]) -> str:
    return DOMINANT_TEMPLATE.text.format(candidates=", ".join(candidates))
