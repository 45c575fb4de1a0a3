"""The benchmark-only tasks' prompts (multiple choice, description) and the benchmarks' system prompt (our own
wording of the protocols in REFERENCE.md section 3); the registry's tasks have theirs in their modules
(``tasks/ranking.py``...).

Every reply format ends in an ``<answer>...</answer>`` block, the one the parsers read (the last block wins);
a model that answers without the block is still read from its whole reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from eemo_pipeline.tasks.questions import EMOTIONS_TEXT

PROMPT_VERSION = "eval-v1"
SYSTEM_PROMPT = (
    "You are an expert in emotional psychology who analyses the emotions that images evoke in the people "
    "who look at them. Think the question through inside <think></think>, then give your final answer "
    "inside <answer></answer>."
)


def _images_note(n_images: int) -> str:
    return "" if n_images <= 1 else "You are shown two images: the first image, then the second image.\n"


def choice_prompt(question: str, keys: Sequence[str], texts: Sequence[str], n_images: int = 1) -> str:
    """A multiple-choice question: the options as ``A: text`` lines; answer with the letter."""
    options = "\n".join(f"{key}: {text}" for key, text in zip(keys, texts))
    return (f"{_images_note(n_images)}{question}\nOptions:\n{options}\n"
            f"Choose exactly one option and answer with its letter, e.g. <answer>{keys[0]}</answer>.")


def description_prompt(question: str, n_images: int = 1) -> str:
    """An open-ended EEmo-Bench question."""
    return (f"{_images_note(n_images)}{question}\nAnswer in one well-organised paragraph about the emotions the "
            f"image evokes in viewers ({EMOTIONS_TEXT}; valence, arousal and dominance where they matter), "
            "inside <answer></answer>.")
