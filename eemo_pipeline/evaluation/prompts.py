"""Benchmark prompts, one builder per task (our own wording of the protocols in REFERENCE.md section 3).

Every reply format ends in an ``<answer>...</answer>`` block, the one the parsers read (the last block wins);
a model that answers without the block is still read from its whole reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from eemo_pipeline.tasks.metrics import VAD_KEYWORDS

PROMPT_VERSION = "eval-v1"
SYSTEM_PROMPT = (
    "You are an expert in emotional psychology who analyses the emotions that images evoke in the people "
    "who look at them. Think the question through inside <think></think>, then give your final answer "
    "inside <answer></answer>."
)
EMOTIONS_TEXT = "anger, disgust, fear, joy, neutral, sadness and surprise"
_DIMENSION_GLOSS = {
    "valence": "valence (how pleasant the evoked feeling is: 0 very negative, 1 very positive)",
    "arousal": "arousal (how intense the evoked feeling is: 0 very calm, 1 very excited)",
    "dominance": "dominance (how much in control the viewer feels: 0 helpless, 1 powerful)",
}


def _images_note(n_images: int) -> str:
    return "" if n_images <= 1 else "You are shown two images: the first image, then the second image.\n"


def choice_prompt(question: str, keys: Sequence[str], texts: Sequence[str], n_images: int = 1) -> str:
    """A multiple-choice question: the options as ``A: text`` lines; answer with the letter."""
    options = "\n".join(f"{key}: {text}" for key, text in zip(keys, texts))
    return (f"{_images_note(n_images)}{question}\nOptions:\n{options}\n"
            f"Choose exactly one option and answer with its letter, e.g. <answer>{keys[0]}</answer>.")


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


def description_prompt(question: str, n_images: int = 1) -> str:
    """An open-ended EEmo-Bench question."""
    return (f"{_images_note(n_images)}{question}\nAnswer in one well-organised paragraph about the emotions the "
            f"image evokes in viewers ({EMOTIONS_TEXT}; valence, arousal and dominance where they matter), "
            "inside <answer></answer>.")
