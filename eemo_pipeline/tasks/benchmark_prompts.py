"""The benchmark prompts of the registry's tasks (our own wording of the protocols in REFERENCE.md section 3).

Every reply format ends in an ``<answer>...</answer>`` block, the one the parsers read (the last block wins);
a model that answers without the block is still read from its whole reply. The prompts of benchmark-only
tasks (multiple choice, description) and the system prompt are in ``evaluation/prompts.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from eemo_pipeline.tasks.metrics import VAD_KEYWORDS

EMOTIONS_TEXT = "anger, disgust, fear, joy, neutral, sadness and surprise"
_DIMENSION_GLOSS = {
    "valence": "valence (how pleasant the evoked feeling is: 0 very negative, 1 very positive)",
    "arousal": "arousal (how intense the evoked feeling is: 0 very calm, 1 very excited)",
    "dominance": "dominance (how much in control the viewer feels: 0 helpless, 1 powerful)",
}


def ranking_prompt() -> str:
    """EEmo-Bench ranking: the three strongest of the seven emotions, strongest first."""
    return (f"Which three of these emotions does the image evoke most strongly in viewers: {EMOTIONS_TEXT}? "
            "Rank them from the strongest to the weakest, separated by commas, as "
            "<answer>Emotion ranking: first, second, third</answer>.")


def vad_direct_prompt(dimension: str) -> str:
    """Direct-mode VAD: a number on 0-1 after the dimension's identifier."""
    return (f"Rate the {_DIMENSION_GLOSS[dimension]} that the image evokes, on a scale from 0 to 1 with four "
            f"decimals, as <answer>{dimension.capitalize()}: x.xxxx</answer>.")


def vad_probability_prompt(dimension: str) -> str:
    """Probability-mode VAD: the reply's first word is one of the dimension's three level keywords; the model's
    next-token probabilities over them are read (``VisionChatModel.keyword_probabilities``)."""
    high, medium, low = VAD_KEYWORDS[dimension]
    return (f"Is the {dimension} the image evokes in you {high}, {medium} or {low}? "
            f"Answer with one word: {high}, {medium} or {low}.")


def dominant_prompt(labels: Sequence[str]) -> str:
    """Dominant emotion with the data set's own label set."""
    return (f"Which one emotion does the image evoke most strongly in viewers? Choose from: {', '.join(labels)}. "
            "Answer as <answer>Dominant emotion: label</answer>.")
