"""The words that name the seven targets in text, in one place: what generation's validators, the QA builders
and the answer parsers of the tasks accept as naming an emotion.

Two kinds of word, kept apart because they are trusted differently:

* ``EMOTION_FORMS``: a target's own word and its inflections or derived forms ("sad", "saddened", "afraid"
  for fear). A generated text names an emotion only through one of these (``missing_emotions``): the prompts
  ask for each emotion by its own word, and a synonym would let a text drift from the label.
* ``EMOTION_SYNONYMS``: words that are no form of a target but that a model's answer plainly means by it
  ("happy", "scared", "calm"). Reading an answer (``emotion_reading``, ``EMOTION_READINGS``) accepts both.

The words of a ``reasoning_choice`` answer (its ``Correct:`` and ``Distractor:`` lines), written by generation
and read by the QA builders, are here too (``choice_options``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EMOTION_FORMS: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "angers", "angered", "angry", "angrier", "angriest", "angrily"),
    "disgust": ("disgust", "disgusts", "disgusted", "disgusting", "disgustingly"),
    "fear": ("fear", "fears", "feared", "fearing", "fearful", "fearfully", "afraid"),
    "joy": ("joy", "joys", "joyful", "joyfully", "joyfulness", "joyous", "joyously"),
    "sadness": ("sadness", "sad", "sadder", "saddest", "sadly", "saddened"),
    "surprise": ("surprise", "surprises", "surprised", "surprising", "surprisingly"),
    "neutral": ("neutral", "neutrality", "neutrally"),
}
"""Each target's own word and its inflections or derived forms (lower case), the target's word first."""

EMOTION_SYNONYMS: dict[str, str] = {
    "happy": "joy", "happiness": "joy",
    "sorrow": "sadness", "sorrowful": "sadness",
    "scared": "fear",
    # neutral: a calm or emotion-free reading is what the benchmark's "neutral" stands for
    "calm": "neutral", "none": "neutral", "no emotion": "neutral",
}
"""Words a model's answer means by a target without being a form of it (keys lower case). The neutral entries
(calm, none, no emotion) are a choice: a model naming "calm" or "none" means no marked emotion."""

EMOTION_READINGS: dict[str, str] = {
    **{form: target for target, forms in EMOTION_FORMS.items() for form in forms if form != target},
    **EMOTION_SYNONYMS,
}
"""Every word an answer parser maps to a target: the forms (``EMOTION_FORMS``) and the synonyms (keys lower
case; a target's own word is not a key, it reads as itself)."""

_STRIP = " \t\r\n.;:!\"'`*[]()"


def emotion_reading(word: str) -> str:
    """``word`` lower-cased, blanks collapsed, surrounding punctuation stripped and read through
    ``EMOTION_READINGS`` ("Happy." gives "joy"); a word that names no target comes back cleaned."""
    cleaned = " ".join(word.strip(_STRIP).lower().split())
    return EMOTION_READINGS.get(cleaned, cleaned)


def _normalised(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def _names_any(text: str, words: Iterable[str]) -> bool:
    return re.search(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", text) is not None


def missing_emotions(text: str, emotions: Iterable[str]) -> list[str]:
    """The emotions of ``emotions`` that ``text`` names by none of their ``EMOTION_FORMS`` (whole words,
    case-insensitive; a word outside the targets must appear as itself)."""
    lowered = _normalised(text)
    return [e for e in emotions if not _names_any(lowered, EMOTION_FORMS.get(e, (e,)))]


# --- a reasoning_choice answer ------------------------------------------------------------------------------

CORRECT_PREFIX = "Correct:"
DISTRACTOR_PREFIX = "Distractor:"


def choice_options(text: str) -> tuple[list[str], list[str], list[str]]:
    """``(correct, distractors, other)`` lines of a reasoning_choice answer: lines starting with ``Correct:``
    or ``Distractor:`` (prefix dropped, whitespace collapsed), and every other non-blank line."""
    correct, distractors, other = [], [], []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        if line.lower().startswith(CORRECT_PREFIX.lower()):
            correct.append(line[len(CORRECT_PREFIX):].strip())
        elif line.lower().startswith(DISTRACTOR_PREFIX.lower()):
            distractors.append(line[len(DISTRACTOR_PREFIX):].strip())
        else:
            other.append(line)
    return correct, distractors, other
