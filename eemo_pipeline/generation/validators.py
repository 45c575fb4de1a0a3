"""Validators of the generation stages' answers: each takes the answer text and its ``WorkItem`` and returns
the problem in words, or None for an acceptable answer (``VALIDATORS`` by template name).

A rejected answer gets one fresh sample, then its item is quarantined (``generation/batch.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from eemo_pipeline.generation.stages.kinds import (
    CHOICE_DISTRACTORS,
    DESCRIBE,
    DESCRIPTIVE_KINDS,
    REASON,
    REASONING_CHOICE,
)
from eemo_pipeline.generation.templates import load_template
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline.labels.vocabulary import EMOTION_FORMS, choice_options, missing_emotions

# Words that state a VAD level. "moderate" is accepted for medium, and for valence the paper's
# negative / neutral / positive reading as well.
LEVEL_WORDS: dict[str, tuple[str, ...]] = {
    "low": ("low",),
    "medium": ("medium", "moderate", "moderately"),
    "high": ("high",),
}
VALENCE_LEVEL_WORDS: dict[str, tuple[str, ...]] = {"low": ("negative",), "medium": ("neutral",), "high": ("positive",)}
# The verdict of VERDICT_KINDS answers: "more direct", "more indirect" or "both direct and indirect" as the
# template asks, or the same verdict with mostly / mainly / primarily / predominantly / largely for "more".
EVOCATION_VERDICT = re.compile(
    r"\b(?:(?:more|mostly|mainly|primarily|predominantly|largely) (?:direct|indirect)|both direct and indirect)\b"
)
COPY_RUN_WORDS = 8  # a run of this many consecutive words shared with a comment counts as a quote
REFUSAL = re.compile(
    r"\b(i cannot|i can not|i can't|i am unable|i'm unable|i am not able|i'm not able|i'm sorry|i am sorry"
    r"|as an ai\b|unable to (?:see|view|access|open) (?:the|this) image)"
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+", re.MULTILINE)
_BLANK_LINE = re.compile(r"\n\s*\n")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _normalised(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def word_count(text: str) -> int:
    """Whitespace-separated tokens holding at least one letter or digit (dashes and bullets do not count)."""
    return sum(1 for token in text.split() if any(c.isalnum() for c in token))


def _has_any(text: str, words: Iterable[str]) -> bool:
    return re.search(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", text) is not None


def _word_limit(item: WorkItem) -> int:
    limit = item.context.get("word_limit")
    return int(limit) if limit is not None else load_template(item.template).word_limit


def _common_problems(text: str, item: WorkItem) -> str | None:
    if not text or not text.strip():
        return "empty answer"
    if REFUSAL.search(_normalised(text)):
        return "the answer reads as a refusal"
    words, limit = word_count(text), _word_limit(item)
    if words > limit:
        return f"{words} words, over the limit of {limit}"
    return None


def copied_run(text: str, comments: Iterable[str], run: int = COPY_RUN_WORDS) -> str | None:
    """The first run of ``run`` consecutive words of ``text`` that also occurs in one of ``comments``
    (lower case, punctuation ignored), else None."""
    seen: set[tuple[str, ...]] = set()
    for comment in comments:
        words = _WORD.findall(_normalised(comment))
        seen.update(tuple(words[i:i + run]) for i in range(len(words) - run + 1))
    if not seen:
        return None
    words = _WORD.findall(_normalised(text))
    for i in range(len(words) - run + 1):
        if tuple(words[i:i + run]) in seen:
            return " ".join(words[i:i + run])
    return None


def missing_levels(text: str, levels: Iterable[tuple[str, str]]) -> list[str]:
    """``"<dimension> <level>"`` for each pair not stated: a sentence must name the dimension (valence,
    arousal, dominance) and one of the level's ``LEVEL_WORDS`` (valence also ``VALENCE_LEVEL_WORDS``)."""
    sentences = [_normalised(s) for s in _SENTENCE_END.split(text)]
    missing = []
    for dimension, level in levels:
        words = LEVEL_WORDS[level] + (VALENCE_LEVEL_WORDS[level] if dimension == "valence" else ())
        if not any(_has_any(s, (dimension,)) and _has_any(s, words) for s in sentences):
            missing.append(f"{dimension} {level}")
    return missing


def validate_description(text: str, item: WorkItem) -> str | None:
    """A describer answer: non-empty, at most the template's word limit, not a refusal ("I cannot ...")."""
    return _common_problems(text, item)


def validate_reasoning(text: str, item: WorkItem) -> str | None:
    """A reasoner answer: non-empty, no refusal, one paragraph (no blank line, no bullet or numbered lines),
    at most the word limit (200), every ranked emotion named (``EMOTION_FORMS``), and no run of
    ``COPY_RUN_WORDS`` (8) consecutive words copied from any of the image's comments."""
    problem = _common_problems(text, item)
    if problem:
        return problem
    if _BLANK_LINE.search(text.strip()) or _BULLET.search(text):
        return "not a single paragraph (blank lines or list items)"
    missing = missing_emotions(text, item.context.get("ranking", []))
    if missing:
        return f"ranked emotions not mentioned: {', '.join(missing)}"
    copied = copied_run(text, item.context.get("comments", []))
    if copied:
        return f"copies {COPY_RUN_WORDS} consecutive words from a comment: {copied!r}"
    return None


def validate_descriptive(text: str, item: WorkItem) -> str | None:
    """A descriptive answer: non-empty, no refusal, at most the word limit, every emotion of the context's
    ``emotions`` named; where the item states levels (``levels`` non-empty): no digits at all and each
    ``(dimension, level)`` stated in words (``missing_levels``); for ``evocation`` one of
    ``EVOCATION_VERDICT`` (e.g. "more direct")."""
    problem = _common_problems(text, item)
    if problem:
        return problem
    missing = missing_emotions(text, item.context.get("emotions", []))
    if missing:
        return f"ranked emotions not mentioned: {', '.join(missing)}"
    levels = [tuple(level) for level in item.context.get("levels", [])]
    if levels:
        if re.search(r"\d", text):
            return "states numbers where only VAD levels in words are allowed"
        unstated = missing_levels(text, levels)
        if unstated:
            return f"VAD levels not stated in words: {', '.join(unstated)}"
    if item.context.get("verdict_required") and not EVOCATION_VERDICT.search(_normalised(text)):
        return "no verdict (more direct / more indirect / both direct and indirect)"
    return None


# --- reasoning-grounded multiple choice ----------------------------------------------------------------------

OPTION_WORD_LIMIT = 40  # words per option: a statement, not a paragraph
GROUNDED_SHARE = 0.6  # share of the correct option's content words that must occur in the reasoning
MIN_SHARED_WORDS = 2  # content words a distractor must share with the reasoning (it speaks of the same image)
STOP_WORDS = frozenset(
    "a an the and or but of to in on at by for with from as is are was were be been being it its this that these"
    " those their there they them he she his her which who whom what while so because than then into over under"
    " up down out about also very more most less many some any each other such not no".split()
)


def content_words(text: str) -> set[str]:
    """Lower-case words of ``text`` outside ``STOP_WORDS`` and every emotion word (``EMOTION_FORMS``)."""
    emotion_words = {w for variants in EMOTION_FORMS.values() for w in variants}
    return {w for w in _WORD.findall(_normalised(text)) if w not in STOP_WORDS and w not in emotion_words}


def validate_reasoning_choice(text: str, item: WorkItem) -> str | None:
    """A reasoning-grounded multiple-choice answer (paper 3.3): exactly one ``Correct:`` line and
    ``CHOICE_DISTRACTORS`` ``Distractor:`` lines, nothing else; options distinct, non-empty, at most
    ``OPTION_WORD_LIMIT`` words. Grounding, checked against the context's ``reasoning`` and ``ranking``: the
    correct option restates the reasoning (names the dominant emotion, no emotion outside the ranking, and at
    least ``GROUNDED_SHARE`` of its content words occur in the reasoning); each distractor contradicts it (names
    an emotion outside the ranking and none of the ranked ones) while speaking of the same image (at least
    ``MIN_SHARED_WORDS`` content words of the reasoning)."""
    problem = _common_problems(text, item)
    if problem:
        return problem
    correct, distractors, other = choice_options(text)
    if other:
        return f"lines that are no option: {other[0]!r}"
    if len(correct) != 1:
        return f"{len(correct)} correct options, expected exactly one"
    if len(distractors) != CHOICE_DISTRACTORS:
        return f"{len(distractors)} distractors, expected {CHOICE_DISTRACTORS}"
    options = correct + distractors
    if any(not option for option in options):
        return "an empty option"
    if len({" ".join(_WORD.findall(_normalised(o))) for o in options}) != len(options):
        return "options repeat one another"
    long = [o for o in options if word_count(o) > OPTION_WORD_LIMIT]
    if long:
        return f"an option of {word_count(long[0])} words, over {OPTION_WORD_LIMIT}"
    ranking = list(item.context.get("ranking", []))
    others = [e for e in EMOTION_FORMS if e not in ranking]
    reasoning_words = content_words(item.context.get("reasoning", ""))
    answer = correct[0]
    if ranking and missing_emotions(answer, ranking[:1]):
        return f"the correct option does not name the dominant emotion {ranking[0]}"
    if len(missing_emotions(answer, others)) != len(others):
        return "the correct option names an emotion outside the ranking"
    words = content_words(answer)
    if not words or len(words & reasoning_words) < GROUNDED_SHARE * len(words):
        return "the correct option is not grounded in the reasoning"
    for distractor in distractors:
        if len(missing_emotions(distractor, ranking)) != len(ranking):
            return f"a distractor names a ranked emotion, so it does not contradict the reasoning: {distractor!r}"
        if len(missing_emotions(distractor, others)) == len(others):
            return f"a distractor names no emotion outside the ranking: {distractor!r}"
        if len(content_words(distractor) & reasoning_words) < MIN_SHARED_WORDS:
            return f"a distractor does not speak of the image's elements: {distractor!r}"
    return None


VALIDATORS: dict[str, Callable[[str, WorkItem], str | None]] = {
    DESCRIBE: validate_description,
    REASON: validate_reasoning,
    **{kind: validate_descriptive for kind in DESCRIPTIVE_KINDS},
    REASONING_CHOICE: validate_reasoning_choice,
}
