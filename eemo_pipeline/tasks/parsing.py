"""Reading answers out of model replies, shared by the GRPO rewards and the benchmarks.

Rules: the LAST ``<answer>...</answer>`` block wins (a reply without one is read whole); emotion words are
compared lower case, their forms and plain synonyms read as the target they name
(``labels/vocabulary.py``: "sad" and "happy" read as sadness and joy); a ranking is its distinct emotions in
order of first mention, of which the first ``RANKING_LENGTH`` (three) are scored (``ranked``); a reply that
yields nothing is "unparseable" (None or []), which the benchmarks count as wrong and report separately.

Every reading is linear in the text's length (no pattern here backtracks over a long text): GRPO scores
whatever a policy writes, a megabyte of repeated tags included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from eemo_pipeline.labels.vocabulary import EMOTION_READINGS, emotion_reading
from eemo_pipeline.tasks.questions import RANKING_LENGTH

_ANSWER_TAG = re.compile(r"<(/?)answer>", re.IGNORECASE)
_RANKING_PREFIX = re.compile(r"emotion\s+ranking\s*:", re.IGNORECASE)
_DOMINANT_PREFIX = re.compile(r"dominant\s+emotion\s*:", re.IGNORECASE)
# one way to match each number, so a failed match backs off in linear time ("1111...x" was quadratic)
_NUMBER = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_STRIP = " \t\r\n.;:!\"'`*[]()"


def extract_answer(text: str) -> str | None:
    """The stripped content of the LAST ``<answer>...</answer>`` block (case-insensitive tags), or None.

    A block is an opening tag followed by a closing tag with no answer tag between them, so in
    ``<answer>a<answer>b</answer>`` the block is ``b``; one pass over the tags."""
    block = None
    opened = None  # end of the latest opening tag not yet closed
    for tag in _ANSWER_TAG.finditer(text or ""):
        if tag.group(1):
            if opened is not None:
                block = (opened, tag.start())
            opened = None
        else:
            opened = tag.end()
    return text[block[0]:block[1]].strip() if block else None


def answer_text(reply: str | None) -> str:
    """What a benchmark parses: the last answer block when the reply has one, else the whole reply."""
    found = extract_answer(reply or "")
    return found if found is not None else (reply or "").strip()


def _after(prefix: re.Pattern[str], answer: str) -> str:
    """The text after the last match of ``prefix``, or the whole text when it is absent (bare solutions)."""
    matches = list(prefix.finditer(answer))
    return answer[matches[-1].end():] if matches else answer


def parse_ranking(answer: str | None) -> list[str]:
    """The distinct emotions after "Emotion ranking:" (the whole text when the identifier is absent), split on
    commas, read by ``emotion_reading``, in order of first mention: a repeat is dropped (it neither adds
    an emotion nor moves one), and so are empty items. Every distinct item is kept, so a caller can tell an
    over-long answer (``ranked`` keeps the first ``RANKING_LENGTH``). None or '' gives []."""
    if not answer:
        return []
    items = (emotion_reading(item) for item in _after(_RANKING_PREFIX, answer).split(","))
    return list(dict.fromkeys(item for item in items if item))


def ranked(emotions: Iterable[str]) -> list[str]:
    """The ranking that is scored: the first ``RANKING_LENGTH`` distinct of ``emotions`` (compared stripped and
    lower case, as the ranking score compares them), in their order."""
    return list(dict.fromkeys(emotion.strip().lower() for emotion in emotions))[:RANKING_LENGTH]


def parse_value(answer: str | None, dimension: str) -> float | None:
    """The number after "<Dimension>:" (case-insensitive; the last one when repeated), or the whole answer when
    it is a bare number; None when there is none or it is not finite."""
    if not answer:
        return None
    found = re.findall(rf"{re.escape(dimension)}\s*:\s*{_NUMBER}", answer, re.IGNORECASE)
    if found:
        text = found[-1]
    elif re.fullmatch(rf"\s*{_NUMBER}\s*", answer):
        text = answer.strip()
    else:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_dominant(answer: str | None) -> str | None:
    """The label after "Dominant emotion:" (the whole text when absent), blanks collapsed and surrounding
    punctuation stripped, case kept; None when empty."""
    if not answer:
        return None
    label = " ".join(_after(_DOMINANT_PREFIX, answer).strip(_STRIP).split())
    return label or None


def match_label(answer: str | None, labels: Sequence[str]) -> str | None:
    """The label of ``labels`` that a dominant-emotion answer names, as spelled in ``labels``; None if none.

    The parsed label (``parse_dominant``) is compared case-insensitively with each label and, failing that,
    through ``EMOTION_READINGS`` on both sides (so "sad" finds "sadness" and "happy" finds "joy"); a label set
    spelled with the variant ("sad" in Artphoto) is found from the canonical word too."""
    parsed = parse_dominant(answer)
    if parsed is None:
        return None
    lowered = {label.lower(): label for label in labels}
    if parsed.lower() in lowered:
        return lowered[parsed.lower()]
    canonical = {emotion_reading(label): label for label in labels}
    return canonical.get(emotion_reading(parsed))


_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    """Lower-case words read through ``EMOTION_READINGS`` (so "Fearful" matches an option "Fear")."""
    return [EMOTION_READINGS.get(word, word) for word in _WORD.findall(text.lower())]


def _occurrences(words: list[str], phrase: list[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(words) - n + 1) if n and words[i:i + n] == phrase]


def parse_choice(reply: str | None, options: Mapping[str, str]) -> str | None:
    """The option key (a letter) a multiple-choice reply picks, or None when it cannot be told.

    Read from the last answer block when there is one, else the whole reply. First a letter marker: a key
    written in capitals after a blank, bracket or quote and followed by ``:``, ``)``, ``.``, ``]`` or the end
    ("B: Yes.", "(C)", "option A.", "**D**"); the last such marker wins.
    Failing that, the option texts: the option whose words occur in the reply (case-insensitive, emotion
    variants mapped), the one occurring last when several do; an occurrence inside a longer option's
    occurrence does not count (so "Not sure" is not read as "Sure").
    """
    text = answer_text(reply)
    if not text:
        return None
    keys = [key for key in options if key]
    if keys:
        letters = "".join(sorted({re.escape(key) for key in keys}, key=len, reverse=True))
        marker = re.compile(
            rf"(?:^|(?<=[\s(\[*\"']))([{letters}])(?=\s*[:).\]]|\s*$|\*)",
            re.IGNORECASE | re.MULTILINE,
        )
        upper = {key.upper(): key for key in keys}
        hits = [upper.get(m.group(1).upper()) for m in marker.finditer(text)
                if m.group(1).isupper() or text.strip().upper() == m.group(1).upper()]
        hits = [hit for hit in hits if hit is not None]
        if hits:
            return hits[-1]
    words = _words(text)
    spans = [(start, start + len(phrase), key) for key, option in options.items()
             for phrase in [_words(option)] for start in _occurrences(words, phrase)]
    # an occurrence inside a longer option's occurrence ("sure" in "not sure") does not count
    spans = [span for span in spans
             if not any(o[0] <= span[0] and span[1] <= o[1] and o[1] - o[0] > span[1] - span[0] for o in spans)]
    return max(spans, key=lambda span: (span[1], span[1] - span[0]))[2] if spans else None
