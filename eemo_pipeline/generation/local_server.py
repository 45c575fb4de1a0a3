"""A local OpenAI-compatible chat server with fault injection and a rule-based offline model.

Tests, the embedded sample and benchmarks point the generation client at this server instead of a real
endpoint (``vllm serve``, DeepSeek): it speaks HTTP/1.1 on ``asyncio.start_server`` (keep-alive,
``Content-Length`` or chunked bodies), answers ``POST /v1/chat/completions`` and ``GET /v1/models`` in the
OpenAI shape, and binds to the loopback interface only.

Faults (``FaultPlan``) are counted per distinct request body, the sha256 of its JSON with keys sorted
(``body_hash``): the first ``rate_limit_first`` requests of a body get 429 with ``Retry-After``, the next
``server_error_first`` get 500, the next ``drop_first`` have their connection closed without an answer, the
next ``malformed_first`` get 200 with a broken body; after that a body is answered, except where the seeded
random mode (``*_rate``, ``seed``) draws a fault from (seed, body hash, attempt number), which is the same
whatever order concurrent requests arrive in. ``latency_s`` is the time from a request's arrival to its
answer, 500, malformed body or dropped connection (``asyncio.sleep``; the model's own work is part of it); a
429 and a 400 (invalid request) come at once. The request log counts, per body hash, requests received and
requests answered with a valid completion.

The model is ``eemo-offline-rules-v1`` (``OfflineRulesModel``): rules, not a neural network, and every
response's ``model`` field says so. It reads the ``Task: <name>`` line of the system message and the
``Facts:`` block of the last user message, and writes text the pipeline's validators accept: image
statistics for ``describe``; for ``reason`` a paragraph within the word limit naming every ranked emotion in
order, never copying more than five consecutive words of the comments; for the descriptive tasks a paragraph
with the ranked emotions and the VAD levels as words. No digits in any answer, except ``judge``: the
description judge's reply ``<Metric>: n`` scores the ``Response`` fact against the ``Reference`` by word
overlap (completeness: share of the reference's content words the response has; precision: share of the
response's found in the reference; relevance: how many emotion words it names); n = 2, 1, 0.

Run it alone with ``python -m eemo_pipeline.generation.local_server --port 8765 --latency 0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_MODEL = "eemo-offline-rules-v1"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_BODY_BYTES = 64 * 1024 * 1024  # data-URL images travel in the body
MAX_HEADER_BYTES = 64 * 1024
TASKS = ("describe", "reason", "narrative", "causal", "evocation", "pair_ranking", "pair_dimension", "judge")
ANSWER_CACHE_SIZE = 1024  # answers kept per body hash: retries of a body cost no model work
DEFAULT_WORD_LIMIT = 200  # REFERENCE section 5: the reasoner writes at most 200 words
MAX_COPIED_WORDS = 5  # never more than this many consecutive words of the comments

_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    411: "Length Required", 413: "Payload Too Large", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented",
}


def body_hash(body: Any) -> str:
    """sha256 of a request body's canonical JSON (keys sorted): what faults and the request log count by."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def count_tokens(text: str) -> int:
    """Tokens as whitespace-separated words (good enough for usage figures of an offline model)."""
    return len(text.split())


# --- fault injection ----------------------------------------------------------------------------------------

FAULT_KINDS = ("rate_limit", "server_error", "drop", "malformed")


@dataclass(frozen=True)
class FaultPlan:
    """Which chat requests fail, and how; counted per distinct request body (``body_hash``).

    The first-N faults come in this order for each body: ``rate_limit_first`` 429s (with ``Retry-After:
    retry_after_s``), ``server_error_first`` 500s, ``drop_first`` closed connections, ``malformed_first``
    broken 200s (``malformed_kind``: ``"invalid_json"`` or ``"no_choices"``). Later requests of that body are
    answered, unless the random mode draws a fault: with probability ``rate_limit_rate``,
    ``server_error_rate``, ``drop_rate``, ``malformed_rate`` (summing to at most 1), decided by
    ``seed``, the body hash and the request's number within its body, so a run is reproducible.
    """

    latency_s: float = 0.0
    rate_limit_first: int = 0
    retry_after_s: float = 1.0
    server_error_first: int = 0
    drop_first: int = 0
    malformed_first: int = 0
    malformed_kind: str = "invalid_json"
    rate_limit_rate: float = 0.0
    server_error_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.retry_after_s < 0:
            raise ValueError("latency_s and retry_after_s must be >= 0")
        firsts = (self.rate_limit_first, self.server_error_first, self.drop_first, self.malformed_first)
        if any(n < 0 for n in firsts):
            raise ValueError("the *_first fault counts must be >= 0")
        rates = self._rates()
        if any(r < 0 for r in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")
        if self.malformed_kind not in ("invalid_json", "no_choices"):
            raise ValueError("malformed_kind must be 'invalid_json' or 'no_choices'")

    def _rates(self) -> tuple[float, float, float, float]:
        return (self.rate_limit_rate, self.server_error_rate, self.drop_rate, self.malformed_rate)

    def outcome(self, digest: str, attempt: int) -> str:
        """``"ok"`` or the fault kind for the ``attempt``-th (0-based) request of the body ``digest``."""
        left = attempt
        for kind, count in zip(FAULT_KINDS, (self.rate_limit_first, self.server_error_first,
                                             self.drop_first, self.malformed_first)):
            if left < count:
                return kind
            left -= count
        rates = self._rates()
        if any(rates):
            draw = random.Random(f"{self.seed}:{digest}:{attempt}").random()
            edge = 0.0
            for kind, rate in zip(FAULT_KINDS, rates):
                edge += rate
                if draw < edge:
                    return kind
        return "ok"


# --- the offline model --------------------------------------------------------------------------------------


class BadRequest(Exception):
    """A request the model cannot answer: sent back as HTTP 400 with this message."""

    def __init__(self, message: str, param: str | None = None):
        self.message, self.param = message, param
        super().__init__(message)


_FACT_KEYS = (
    "Emotion ranking", "Dominant emotion", "Valence level", "Arousal level", "Dominance level", "Description",
    "Comments", "Dimension", "Image A ranking", "Image B ranking",
    "Image A valence level", "Image A arousal level", "Image A dominance level",
    "Image B valence level", "Image B arousal level", "Image B dominance level",
    "Image A description", "Image B description", "Word limit", "Metric", "Question", "Reference", "Response",
)
_KNOWN_KEYS = {key.lower() for key in _FACT_KEYS}
_FREE_TEXT_KEYS = {"description", "comments", "image a description", "image b description", "question",
                   "reference", "response"}
_KEY_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]{0,40}?)\s*:\s*(.*)$")
_TASK_LINE = re.compile(r"^\s*Task:\s*([A-Za-z_]+)\s*$", re.MULTILINE | re.IGNORECASE)
_DIMENSIONS = ("valence", "arousal", "dominance")
_GLOSS = {
    "valence": {"low": "unpleasant", "medium": "mixed", "high": "pleasant"},
    "arousal": {"low": "calm", "medium": "moderately stirring", "high": "intense"},
    "dominance": {"low": "overpowering for the viewer", "medium": "balanced", "high": "leaving the viewer in control"},
}
_LEVEL_RANK = {"low": 0, "medium": 1, "high": 2}
# What in a picture tends to draw each emotion; free of other emotion names, so a ranking's own words are the
# only emotion words an answer carries. Unknown emotions get a generic cue.
_CUES = {
    "amusement": "playful, funny details", "anger": "something provocative or unjust",
    "awe": "the scale and grandeur on show", "contentment": "calm, comfortable elements",
    "content": "calm, comfortable elements", "disgust": "repellent details", "excitement": "energetic motion",
    "fear": "a sense of threat", "sadness": "signs of loss or loneliness", "sad": "signs of loss or loneliness",
    "joy": "warm, cheerful elements", "happiness": "warm, cheerful elements", "surprise": "something unexpected",
    "neutral": "an everyday, unremarkable scene", "pleasure": "inviting, agreeable elements",
    "peace": "a quiet, undisturbed setting", "trust": "reassuring, dependable figures",
}
_STOPWORDS = frozenset(
    "a about above after again against all also am an and any are as at be because been before being below "
    "between both but by can could did do does doing down during each few for from further had has have having "
    "he her here hers herself him himself his how i if in into is it its itself just like me more most my "
    "myself no nor not now of off on once only or other our ours out over own really same she should so some "
    "such than that the their theirs them then there these they this those through to too under until up very "
    "was we were what when where which while who whom why will with would you your yours yourself image picture "
    "photo painting looks look makes make feel feels felt seems seem something thing things think much many "
    "even still would could gives give".split()
)
_SYNONYMS = {
    "image": "picture", "photo": "picture", "photograph": "picture", "shows": "presents", "depicts": "presents",
    "showing": "presenting", "depicting": "presenting", "features": "offers", "contains": "holds",
    "large": "big", "small": "little", "people": "figures", "person": "figure", "standing": "placed",
    "sitting": "seated", "walking": "moving", "near": "close to", "beside": "next to", "big": "large",
}
_LEADING_FRAME = re.compile(
    r"^(?:the|this|a|an|in the|in this)\s+(?:image|photo|photograph|picture|scene|painting|artwork)\s+"
    r"(?:shows|depicts|features|contains|presents|captures|displays|is of|we see)\s+",
    re.IGNORECASE,
)
_PEOPLE_WORDS = re.compile(
    r"\b(?:person|people|man|men|woman|women|child|children|kid|kids|boy|girl|face|faces|crowd|figure|figures|"
    r"baby|family|couple|friends|player|players|soldier|soldiers|climber|rider|worker|workers|dancer|dancers|"
    r"crowd|audience|mother|father|girl|girls|boys|student|students|athlete|athletes|he|she|they)\b",
    re.IGNORECASE,
)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _image_urls(content: Any) -> list[str]:
    urls = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                entry = part.get("image_url")
                url = entry.get("url") if isinstance(entry, dict) else entry
                if isinstance(url, str):
                    urls.append(url)
    return urls


def parse_facts(text: str) -> dict[str, str]:
    """The ``key: value`` lines after a ``Facts:`` line, keys lower-cased; a blank line ends the block.

    A line that is not ``key: value`` continues the value before it, and so does a ``word: ...`` line inside a
    free-text value (description, comments) unless its key is one of the known fact keys.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().lower() == "facts:"), None)
    if start is None:
        return {}
    facts: dict[str, str] = {}
    current: str | None = None
    for line in lines[start + 1:]:
        if not line.strip():
            if facts:
                break
            continue
        match = _KEY_LINE.match(line)
        key = match.group(1).strip().lower() if match else None
        if key is not None and (key in _KNOWN_KEYS or current not in _FREE_TEXT_KEYS):
            current = key
            facts[key] = match.group(2).strip()
        elif current is not None:
            facts[current] = f"{facts[current]} {line.strip()}".strip()
    return facts


def _level(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"\b(low|medium|high)\b", value, re.IGNORECASE)
    if match:
        return match.group(1).lower()
    number = re.search(r"\d*\.?\d+", value)
    if number:
        score = float(number.group())
        return "low" if score < 0.4 else "medium" if score <= 0.6 else "high"
    return None


def _emotions(value: str | None) -> list[str]:
    if not value:
        return []
    value = re.sub(r"\([^)]*\)", " ", value)
    found: list[str] = []
    for piece in re.split(r"[,;>|\n]+|\s+then\s+", value):
        name = re.sub(r"[\d%:=#*\"\[\]]+", " ", piece)
        name = " ".join(name.split()).strip(" .-")
        if name and name.lower() not in (e.lower() for e in found):
            found.append(name)
    return found


def _join(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


_DIGIT = re.compile(r"\d")
_DIGIT_WORD = re.compile(r"\S*\d\S*\s*")


def _no_digits(text: str) -> str:
    """Drops every word holding a digit (descriptions or facts may carry numbers; answers never do)."""
    if not _DIGIT.search(text):
        return text
    return " ".join(_DIGIT_WORD.sub("", text).split())


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0] if text else ""


def _paraphrase(description: str | None, max_words: int = 30) -> tuple[str, bool] | None:
    """The description's first sentence reworded (a few synonyms, no digits, no quotes), and whether it was a
    noun phrase after "The image shows" (which is dropped); ``None`` without a description."""
    sentence = _no_digits(_first_sentence(description or ""))
    stripped = _LEADING_FRAME.sub("", sentence)
    framed = stripped != sentence
    sentence = stripped.strip().rstrip(".!?;:")
    words = []
    for word in sentence.split()[:max_words]:
        core = word.strip(",;:")
        swap = _SYNONYMS.get(core.lower())
        words.append(word.replace(core, swap) if swap else word)
    text = " ".join(words).strip(",;: ")
    for quote in ('"', "\u201c", "\u201d"):
        text = text.replace(quote, "")
    if not text:
        return None
    if framed and len(text) > 1 and not text[:2].isupper():
        text = text[0].lower() + text[1:]
    return (text if framed else _capital(text)), framed


_PUNCTUATION = str.maketrans("", "", "".join(ch for ch in map(chr, range(128)) if not ch.isalnum() and ch not in "'_"))


def _norm_words(text: str) -> list[str]:
    """Words lower-cased without punctuation ('' for a word of punctuation only)."""
    return [word.lower().translate(_PUNCTUATION) for word in text.split()]


def _avoid_copying(text: str, source: str, protected: set[str], limit: int = MAX_COPIED_WORDS) -> str:
    """Removes words until no run of ``limit + 1`` consecutive words of ``source`` is left in ``text``.

    Words compare lower-cased without punctuation; words in ``protected`` (emotion names) are removed last.
    """
    span = limit + 1
    source_words = [w for w in _norm_words(source) if w]
    vocabulary = set(source_words)
    grams = {tuple(source_words[i:i + span]) for i in range(len(source_words) - span + 1)}
    words = text.split()
    while grams:
        norm = _norm_words(" ".join(words))
        index = [i for i, w in enumerate(norm) if w]
        hit = None
        run = 0
        for k, i in enumerate(index):  # only a run of span words all found in the source can be a copy
            run = run + 1 if norm[i] in vocabulary else 0
            if run >= span and tuple(norm[j] for j in index[k - span + 1:k + 1]) in grams:
                hit = k - span + 1
                break
        if hit is None:
            break
        window = index[hit:hit + span]
        victims = ([i for i in window if norm[i] in ("a", "an", "the") and norm[i] not in protected]
                   or [i for i in window if norm[i] in _STOPWORDS and norm[i] not in protected]
                   or [i for i in window[1:] if norm[i] not in protected] or window[-1:])
        del words[victims[len(victims) // 2]]
    return " ".join(words)


def _fit(sentences: list[str], limit: int, priority: list[int] | None = None) -> str:
    """The sentences that fit within ``limit`` words, in their order; chosen by ``priority`` (lower first).

    Sentences are taken by priority until one does not fit; the first one is cut to the limit if it alone is
    too long.
    """
    order = sorted(range(len(sentences)), key=lambda i: (priority[i] if priority else 0, i))
    chosen: set[int] = set()
    used = 0
    for i in order:
        n = count_tokens(sentences[i])
        if used + n > limit:
            if not chosen:
                return " ".join(sentences[i].split()[:limit])
            break
        chosen.add(i)
        used += n
    return " ".join(sentences[i] for i in sorted(chosen))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


class OfflineRulesModel:
    """Deterministic rule-based answers for the pipeline's generation tasks (see the module docstring)."""

    def __init__(self, name: str = DEFAULT_MODEL):
        self.name = name

    # -- request handling

    def complete(self, body: dict[str, Any], digest: str | None = None) -> list[tuple[str, str]]:
        """``(text, finish_reason)`` for each of the ``n`` choices of a chat request body; raises ``BadRequest``.

        ``digest`` is the body's ``body_hash`` when the caller has it already.
        """
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("messages must be a non-empty list of message objects", "messages")
        if body.get("stream"):
            raise BadRequest("stream is not supported by the offline server", "stream")
        temperature = body.get("temperature", 1.0)
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise BadRequest("temperature must be a number >= 0", "temperature")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise BadRequest("max_tokens must be a positive integer", "max_tokens")
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 16:
            raise BadRequest("n must be an integer from 1 to 16", "n")
        # Greedy decoding (temperature 0) ignores the seed; otherwise the wording follows the whole body, so a
        # retry with another seed reads differently.
        variant = body_hash(messages) if temperature == 0 else digest or body_hash(body)
        choices = []
        for index in range(n):
            text = self.answer(messages, random.Random(f"{variant}:{index}"))
            words = text.split()
            if max_tokens is not None and len(words) > max_tokens:
                choices.append((" ".join(words[:max_tokens]), "length"))
            else:
                choices.append((text, "stop"))
        return choices

    def answer(self, messages: list[dict[str, Any]], rng: random.Random) -> str:
        system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
        match = _TASK_LINE.search(system) or _TASK_LINE.search("\n".join(_text_of(m.get("content")) for m in messages))
        users = [m for m in messages if m.get("role") == "user"]
        last_user = users[-1] if users else messages[-1]
        if match is None:
            words = count_tokens(_text_of(last_user.get("content")))
            return (f"This is {self.name}, a rule-based offline stand-in for a chat model; the request names no "
                    f"task line, so it only acknowledges a message of {'one word' if words == 1 else 'several words'}.")
        task = match.group(1).lower()
        if task not in TASKS:
            raise BadRequest(f"unknown task {task!r}; the offline model knows {', '.join(TASKS)}")
        facts = parse_facts(_text_of(last_user.get("content")))
        if not facts:
            for message in reversed(messages):
                facts = parse_facts(_text_of(message.get("content")))
                if facts:
                    break
        if task == "judge":  # the score is a digit: returned before the no-digits rule
            return _judge(facts)
        if task == "describe":
            urls = [url for m in users for url in _image_urls(m.get("content"))]
            if not urls:
                raise BadRequest("describe needs an image", "messages")
            text = describe_image(_decode_data_url(urls[-1]), rng)
        else:
            text = getattr(self, f"_{task}")(facts, rng)
        return _no_digits(text)

    # -- tasks

    @staticmethod
    def _word_limit(facts: dict[str, str]) -> int:
        number = re.search(r"\d+", facts.get("word limit", ""))
        return max(1, int(number.group())) if number else DEFAULT_WORD_LIMIT

    @staticmethod
    def _ranking(facts: dict[str, str], prefix: str = "") -> list[str]:
        ranking = _emotions(facts.get(f"{prefix}emotion ranking" if not prefix else f"{prefix}ranking"))
        if not ranking and not prefix:
            ranking = _emotions(facts.get("dominant emotion"))
        return ranking

    @staticmethod
    def _levels(facts: dict[str, str], prefix: str = "") -> dict[str, str]:
        levels = {}
        for dim in _DIMENSIONS:
            level = _level(facts.get(f"{prefix}{dim} level"))
            if level:
                levels[dim] = level
        return levels

    @staticmethod
    def _levels_sentence(levels: dict[str, str], rng: random.Random, subject: str = "the picture") -> str | None:
        """The VAD levels as words, e.g. "In the picture, valence is high (pleasant) and arousal is low (calm)."."""
        if not levels:
            return None
        parts = [f"{dim} is {lvl} ({_GLOSS[dim][lvl]})" for dim, lvl in levels.items()]
        return _capital(rng.choice([f"In {subject}, ", f"For {subject}, "]) + _join(parts)) + "."

    def _cue(self, emotion: str, levels: dict[str, str]) -> str:
        cue = _CUES.get(emotion.lower())
        if cue:
            return cue
        valence = levels.get("valence")
        return {"low": "its unsettling side", "high": "its agreeable side"}.get(valence or "", "what the scene suggests")

    def _ranking_sentence(self, ranking: list[str], rng: random.Random) -> str:
        if not ranking:
            return "No ranking of emotions was given, so the answer rests on the scene alone."
        if len(ranking) == 1:
            return rng.choice([
                f"The only emotion in the ranking is {ranking[0]}, which reflects what the viewers felt rather than "
                "a sequence in time.",
                f"Viewers reported a single emotion, {ranking[0]}, and it describes how they felt, not a moment in "
                "a sequence.",
            ])
        listed = _join(ranking)
        return rng.choice([
            f"Ranked by how many viewers felt each, the emotions are {listed}; the order reflects that count, not "
            "a sequence in time.",
            f"By the number of viewers who felt each, the order is {listed}, most widely shared first, which is a "
            "count of people rather than a sequence in time.",
            f"The ranking {listed} follows how many viewers felt each emotion, from most to fewest, and says "
            "nothing about a sequence in time.",
        ])

    def _scene(self, facts: dict[str, str], rng: random.Random, key: str = "description", subject: str = "The picture",
               max_words: int = 30) -> str | None:
        """A sentence restating the first sentence of the description in other words."""
        found = _paraphrase(facts.get(key), max_words)
        if found is None:
            return None
        text, framed = found
        if framed:  # a noun phrase: "a lone climber on a ridge"
            return rng.choice([f"{subject} presents {text}.", f"{subject} centres on {text}."])
        if subject != "The picture":
            return f"In {subject}, {text[0].lower() + text[1:] if not text[:2].isupper() else text}."
        return f"{text}."

    def _reason(self, facts: dict[str, str], rng: random.Random) -> str:
        ranking, levels = self._ranking(facts), self._levels(facts)
        parts = [(0, self._ranking_sentence(ranking, rng))]
        found = _paraphrase(facts.get("description"))
        if found:
            scene, framed = found
            parts.append((1, rng.choice([
                f"The picture's key elements, {scene}, set the tone for these responses.",
                f"Its visual core, {scene}, drives how people respond.",
            ]) if framed else rng.choice([
                f"{scene}, and this sets the tone for these responses.",
                f"{scene}; that is where these feelings start.",
            ])))
        if ranking:
            first = f"{_capital(ranking[0])} leads because of {self._cue(ranking[0], levels)}"
            rest = [f"{e} follows for fewer viewers, drawn by {self._cue(e, levels)}" for e in ranking[1:3]]
            parts.append((3, "; ".join([first, *rest]) + "."))
        vad = self._levels_sentence(levels, rng, "the scene")
        if vad:
            parts.append((2, vad[:-1] + rng.choice([", which fits this mix of feelings.", ", in line with the ranking."])))
        comments = facts.get("comments") or ""
        if comments.strip().lower() in {"none", "none available"}:  # the templates' word for no comments
            comments = ""
        topics = _topics(comments, exclude={e.lower() for e in ranking})
        if topics:
            parts.append((4, rng.choice([
                f"Viewers' remarks keep returning to {_join(topics)}, describing how the scene makes them feel.",
                f"In their own words viewers dwell on {_join(topics)}, which shapes what they feel.",
            ])))
        parts.append((5, rng.choice([
            "Together these elements explain why the emotions fall in this order of how widely they were felt.",
            "Taken together, the visual elements account for how many viewers shared each feeling.",
        ])))
        text = _fit_parts(parts, self._word_limit(facts))
        if comments:
            text = _avoid_copying(text, comments, {w for e in ranking for w in _norm_words(e)})
        return text

    def _narrative(self, facts: dict[str, str], rng: random.Random) -> str:
        ranking, levels = self._ranking(facts), self._levels(facts)
        parts = [(0, self._ranking_sentence(ranking, rng)), (2, self._scene(facts, rng)),
                 (1, self._levels_sentence(levels, rng))]
        if ranking:
            parts.append((3, rng.choice([
                f"A viewer stepping into this moment is met first by {ranking[0]}, carried by "
                f"{self._cue(ranking[0], levels)}, while the other feelings linger at the edges.",
                f"As the viewer takes in the scene, {ranking[0]} settles in through {self._cue(ranking[0], levels)}.",
            ])))
        return _fit_parts(parts, self._word_limit(facts))

    def _causal(self, facts: dict[str, str], rng: random.Random) -> str:
        ranking, levels = self._ranking(facts), self._levels(facts)
        parts = [(0, self._ranking_sentence(ranking, rng)), (3, self._scene(facts, rng))]
        for position, emotion in enumerate(ranking[:3]):
            verb = "most viewers feel" if position == 0 else "fewer viewers feel"
            parts.append((2 if position == 0 else 3 + position, f"Because of {self._cue(emotion, levels)}, {verb} {emotion}."))
        vad = self._levels_sentence(levels, rng)
        if vad:
            parts.append((1, vad[:-1] + ", which is the result of these causes."))
        return _fit_parts(parts, self._word_limit(facts))

    def _evocation(self, facts: dict[str, str], rng: random.Random) -> str:
        ranking, levels = self._ranking(facts), self._levels(facts)
        parts = [(0, self._ranking_sentence(ranking, rng)), (3, self._scene(facts, rng))]
        lead = ranking[0] if ranking else "the feeling"
        if _PEOPLE_WORDS.search(facts.get("description", "")):
            parts.append((1, f"The evocation is mostly direct: the figures' expressions and actions pass {lead} "
                             "straight to the viewer."))
            parts.append((4, "Indirectly, the setting and its colours reinforce that response through association."))
        else:
            parts.append((1, f"The evocation is mostly indirect: with no expressive figures, {lead} arises from "
                             "atmosphere, colour and what the setting brings to mind."))
            parts.append((4, "Directly, the visible objects themselves add only a little to the response."))
        parts.append((2, self._levels_sentence(levels, rng)))
        return _fit_parts(parts, self._word_limit(facts))

    def _pair_opening(self, facts: dict[str, str]) -> list[tuple[int, str | None]]:
        a, b = self._ranking(facts, "image a "), self._ranking(facts, "image b ")
        parts: list[tuple[int, str | None]] = [(0, (
            f"Image A's emotions, ranked by how many viewers felt each, are {_join(a) or 'not given'}, while "
            f"Image B's are {_join(b) or 'not given'}."
        ))]
        shared = [e for e in a if e.lower() in {x.lower() for x in b}]
        if a and b:
            if a[0].lower() == b[0].lower():
                parts.append((3, f"Both images are led by {a[0]}."))
            else:
                parts.append((3, f"Image A is led by {a[0]} and Image B by {b[0]}."))
            parts.append((4, f"They share {_join(shared)}." if shared else "They share no ranked emotion."))
        return parts

    def _pair_ranking(self, facts: dict[str, str], rng: random.Random) -> str:
        parts = self._pair_opening(facts)
        for label in ("A", "B"):
            parts.append((5, self._scene(facts, rng, f"image {label.lower()} description", f"Image {label}", 20)))
        for label in ("A", "B"):
            parts.append((1, self._levels_sentence(self._levels(facts, f"image {label.lower()} "), rng, f"Image {label}")))
        return _fit_parts(parts, self._word_limit(facts))

    def _pair_dimension(self, facts: dict[str, str], rng: random.Random) -> str:
        parts = self._pair_opening(facts)
        dim_match = re.search(r"valence|arousal|dominance", facts.get("dimension", ""), re.IGNORECASE)
        dims = [dim_match.group().lower()] if dim_match else list(_DIMENSIONS)
        compared: list[tuple[int, str | None]] = []
        for dim in dims:
            la = _level(facts.get(f"image a {dim} level"))
            lb = _level(facts.get(f"image b {dim} level"))
            if la and lb:
                diff = _LEVEL_RANK[la] - _LEVEL_RANK[lb]
                relation = "higher than" if diff > 0 else "lower than" if diff < 0 else "about the same as"
                compared.append((1, f"On {dim}, Image A is {la} ({_GLOSS[dim][la]}) and Image B is {lb} "
                                    f"({_GLOSS[dim][lb]}), so Image A sits {relation} Image B."))
            elif la or lb:
                compared.append((1, f"On {dim}, only Image {'A' if la else 'B'}'s level is known: {la or lb}."))
        parts[1:1] = compared
        return _fit_parts(parts, self._word_limit(facts))


def _fit_parts(parts: list[tuple[int, str | None]], limit: int) -> str:
    """``_fit`` over ``(priority, sentence)`` pairs, skipping missing sentences."""
    present = [(priority, sentence) for priority, sentence in parts if sentence]
    return _fit([sentence for _, sentence in present], limit, [priority for priority, _ in present])


_JUDGE_EMOTION_WORDS = frozenset(
    "anger angry disgust fear joy sadness sad surprise neutral valence arousal dominance emotion emotions "
    "feel feeling feelings evokes evoke mood".split())


def _judge(facts: dict[str, str]) -> str:
    """A description judge's score: word overlap of the response with the reference (see the module docstring)."""
    metric = facts.get("metric", "").strip().lower()
    if metric not in ("completeness", "precision", "relevance"):
        raise BadRequest(f"judge needs a Metric fact of completeness, precision or relevance, got {metric!r}")
    reference = {w for w in _norm_words(facts.get("reference", "")) if w and w not in _STOPWORDS}
    response = {w for w in _norm_words(facts.get("response", "")) if w and w not in _STOPWORDS}
    if metric == "relevance":
        named = len(response & _JUDGE_EMOTION_WORDS)
        score = 2 if named >= 2 else named
    else:
        base = reference if metric == "completeness" else response
        share = len(reference & response) / len(base) if base else 0.0
        score = 2 if share >= 0.5 else 1 if share >= 0.2 else 0
    return f"{metric.capitalize()}: {score}"


def _topics(comments: str, exclude: set[str], count: int = 3) -> list[str]:
    """The most frequent content words of the comments: a summary of what viewers talk about, never a quote."""
    words = [w for w in re.findall(r"[a-z]+", comments.lower()) if len(w) >= 4 and w not in _STOPWORDS]
    ranked = [w for w, _ in Counter(words).most_common() if w not in exclude]
    return ranked[:count]


# --- describe: statistics of the image ----------------------------------------------------------------------


def _decode_data_url(url: str) -> bytes:
    if not url.startswith("data:"):
        raise BadRequest("the offline server reads images only from data URLs (data:image/...;base64,...)", "messages")
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise BadRequest("image data URLs must be base64-encoded", "messages")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as error:
        raise BadRequest(f"image data URL is not valid base64 ({error})", "messages") from error


def _colour_names(rgb: Any) -> list[str]:
    """Named palette colour of each row of an ``(n, 3)`` array of 0-1 RGB means."""
    import numpy as np

    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    chroma = mx - mn
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-9), 0.0)
    safe = np.maximum(chroma, 1e-9)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    names = []
    for h, s, v in zip(hue.tolist(), sat.tolist(), mx.tolist()):
        if v < 0.16:
            names.append("black")
        elif s < 0.18 or (s < 0.3 and v < 0.3):
            names.append("white" if v > 0.85 else "grey" if v > 0.3 else "black")
        elif h < 15 or h >= 340:
            names.append("red")
        elif h < 45:
            names.append("orange" if v > 0.65 else "brown")
        elif h < 70:
            names.append("yellow" if v > 0.55 else "olive")
        elif h < 165:
            names.append("green")
        elif h < 195:
            names.append("teal")
        elif h < 255:
            names.append("blue")
        elif h < 290:
            names.append("purple")
        else:
            names.append("pink")
    return names


@dataclass(frozen=True)
class ImageStats:
    brightness: str  # dark / dim / bright
    colours: tuple[str, ...]  # one or two palette names, most pixels first
    contrast: str  # flat / strong
    orientation: str  # landscape / portrait / square
    lighter_half: str | None  # "upper" / "lower" / None when even


def image_stats(data: bytes) -> ImageStats:
    """Brightness, two dominant palette colours (quantized histogram), contrast, orientation of an image."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", (128, 128))
            small = image.convert("RGB")
            small.thumbnail((64, 64))
            pixels = np.asarray(small, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise BadRequest(f"the image could not be decoded ({type(error).__name__})", "messages") from error
    flat = pixels.reshape(-1, 3)
    luma = flat @ np.array([0.2126, 0.7152, 0.0722])
    lightness = 0.5 * luma + 0.5 * flat.max(axis=1)  # saturated colours read as bright though their luma is low
    mean_light = float(lightness.mean())
    brightness = "dark" if mean_light < 0.3 else "dim" if mean_light < 0.55 else "bright"
    contrast = "strong" if float(luma.std()) > 0.15 else "flat"
    orientation = "landscape" if width > 1.1 * height else "portrait" if height > 1.1 * width else "square"
    # quantized histogram: 8 levels per channel, each occupied bin named by its mean colour
    bins = np.minimum((flat * 8).astype(np.int64), 7)
    index = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
    counts = np.bincount(index, minlength=512)
    occupied = np.nonzero(counts)[0]
    means = np.stack([np.bincount(index, weights=flat[:, c], minlength=512)[occupied] for c in range(3)], axis=1)
    means /= counts[occupied][:, None]
    share: Counter[str] = Counter()
    for name, n in zip(_colour_names(means), counts[occupied].tolist()):
        share[name] += n
    ranked = share.most_common(2)
    colours = tuple(name for name, n in ranked if n >= 0.05 * len(flat)) or (ranked[0][0],)
    rows = lightness.reshape(pixels.shape[:2])
    half = rows.shape[0] // 2
    upper, lower = (float(rows[:half].mean()), float(rows[half:].mean())) if half else (0.0, 0.0)
    lighter = "upper" if upper - lower > 0.1 else "lower" if lower - upper > 0.1 else None
    return ImageStats(brightness, colours, contrast, orientation, lighter)


def describe_image(data: bytes, rng: random.Random) -> str:
    """Two or three sentences from the image's statistics, with no numbers."""
    stats = image_stats(data)
    article = "an" if stats.brightness[0] in "aeiou" else "a"
    shape, light = stats.orientation, stats.brightness
    if len(stats.colours) > 1:
        tones = f"{stats.colours[0]} and {stats.colours[1]} tones"
        first = rng.choice([
            f"{_capital(article)} {light} {shape} picture dominated by {tones}.",
            f"This {shape} picture is {light} overall, with {tones} taking up most of the frame.",
            f"The {shape} frame looks {light}, and {tones} dominate it.",
        ])
    else:
        tones = f"{stats.colours[0]} tones"
        first = rng.choice([
            f"{_capital(article)} {light} {shape} picture dominated almost entirely by {tones}.",
            f"This {shape} picture is {light} overall, with {tones} filling almost all of the frame.",
            f"The {shape} frame looks {light}, and {tones} fill almost all of it.",
        ])
    if stats.contrast == "strong":
        second = rng.choice(["The contrast is strong, so shapes and edges stand out clearly.",
                             "Strong contrast separates light and shadow sharply."])
    else:
        second = rng.choice(["The contrast is flat, so the areas blend softly into one another.",
                             "Flat contrast gives the scene a soft, even look."])
    if stats.lighter_half:
        other = "lower" if stats.lighter_half == "upper" else "upper"
        third = f"The {stats.lighter_half} part of the frame is lighter than the {other} part."
    else:
        third = "Light is spread fairly evenly across the frame."
    return " ".join([first, second, third])


# --- the HTTP server ----------------------------------------------------------------------------------------


class _Drop(Exception):
    """Close the connection without answering."""


def _check_loopback(host: str) -> str:
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the local chat server binds to the loopback interface only ({', '.join(LOOPBACK_HOSTS)}), "
                         f"not {host!r}")
    return "127.0.0.1" if host == "localhost" else host


def _error(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class LocalChatServer:
    """OpenAI-compatible chat completions on the loopback interface, answered by ``OfflineRulesModel``.

    ``faults`` (a ``FaultPlan``) may be replaced while the server runs. With ``api_key`` every request must carry
    ``Authorization: Bearer <api_key>`` (else 401); the key is never logged, echoed or shown in ``repr``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, model: str = DEFAULT_MODEL,
                 faults: FaultPlan | None = None, api_key: str | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self.host = _check_loopback(host)
        self.port = port
        self.model = model
        self.faults = faults or FaultPlan()
        self._api_key = api_key.encode("utf-8") if api_key else None
        self.max_body_bytes = max_body_bytes
        self._engine = OfflineRulesModel(model)
        self._lock = threading.Lock()
        self._received: dict[str, int] = {}
        self._completed: dict[str, int] = {}
        self._outcomes: Counter[str] = Counter()
        self._connections = 0
        self._answers: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()  # body hash -> choices (LRU)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._created = int(time.time())

    def __repr__(self) -> str:
        auth = "on" if self._api_key else "off"
        return f"LocalChatServer(base_url={self.base_url!r}, model={self.model!r}, auth={auth})"

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    # -- request log (safe to read from any thread)

    def requests_for(self, digest: str) -> int:
        """Chat requests received with the body whose ``body_hash`` is ``digest``."""
        with self._lock:
            return self._received.get(digest, 0)

    def completed_for(self, digest: str) -> int:
        """Chat requests with that body answered with a valid completion."""
        with self._lock:
            return self._completed.get(digest, 0)

    def total_requests(self) -> int:
        with self._lock:
            return sum(self._received.values())

    def completed_count(self) -> int:
        with self._lock:
            return sum(self._completed.values())

    def request_log(self) -> dict[str, tuple[int, int]]:
        """``{body hash: (received, completed)}``."""
        with self._lock:
            return {h: (n, self._completed.get(h, 0)) for h, n in self._received.items()}

    def outcome_counts(self) -> dict[str, int]:
        """How many HTTP requests ended each way: ok, rate_limit, server_error, drop, malformed, bad_request,
        unauthorized, not_found, models."""
        with self._lock:
            return dict(self._outcomes)

    def connection_count(self) -> int:
        """TCP connections accepted so far (keep-alive reuses one for many requests)."""
        with self._lock:
            return self._connections

    def reset_log(self) -> None:
        """Forget every count (the fault plan starts afresh for every body)."""
        with self._lock:
            self._received.clear()
            self._completed.clear()
            self._outcomes.clear()
            self._connections = 0

    def _note(self, outcome: str, digest: str | None = None, completed: bool = False) -> None:
        with self._lock:
            self._outcomes[outcome] += 1
            if completed and digest is not None:
                self._completed[digest] = self._completed.get(digest, 0) + 1

    # -- lifecycle

    async def start(self) -> LocalChatServer:
        if self._server is not None:
            raise RuntimeError("the server is already running")
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port,
                                                  limit=MAX_HEADER_BYTES, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> LocalChatServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self, timeout_s: float = 10.0) -> Iterator[LocalChatServer]:
        """Runs the server's event loop in a daemon thread for the ``with`` block; yields the server."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="eemo-local-chat-server", daemon=True)
        thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError("the local chat server did not start in time")
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout_s)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout_s)

    # -- HTTP

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        with self._lock:
            self._connections += 1
        try:
            while True:
                keep_alive = await self._serve_one(reader, writer)
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, _Drop):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._handlers.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            self._send(writer, 431, _error("request headers too large", "invalid_request_error"), keep_alive=False)
            return False
        lines = head[:-4].decode("latin-1").split("\r\n")
        request_line = lines[0].split()
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
            self._send(writer, 400, _error("malformed request line", "invalid_request_error"), keep_alive=False)
            return False
        method, target, version = request_line
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._send(writer, 400, _error("malformed header line", "invalid_request_error"), keep_alive=False)
                return False
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection

        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader, writer)
            if body is None:
                return False
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
                if length < 0:
                    raise ValueError
            except ValueError:
                self._send(writer, 400, _error("bad Content-Length", "invalid_request_error"), keep_alive=False)
                return False
            if length > self.max_body_bytes:
                self._send(writer, 413, _error("request body too large", "invalid_request_error"), keep_alive=False)
                return False
            if length and headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length) if length else b""
        elif method == "POST":
            self._send(writer, 411, _error("a Content-Length or chunked body is required", "invalid_request_error"),
                       keep_alive=False)
            return False

        path = urlsplit(target).path.rstrip("/")

        if self._api_key is not None and not self._authorized(headers.get("authorization", "")):
            self._note("unauthorized")
            self._send(writer, 401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
                       keep_alive)
            return keep_alive

        if path in ("/v1/chat/completions", "/chat/completions"):
            if method != "POST":
                self._send(writer, 405, _error("use POST", "invalid_request_error"), keep_alive, {"Allow": "POST"})
                return keep_alive
            status, payload, extra = await self._chat(body)
        elif path in ("/v1/models", "/models") or path.startswith(("/v1/models/", "/models/")):
            if method != "GET":
                self._send(writer, 405, _error("use GET", "invalid_request_error"), keep_alive, {"Allow": "GET"})
                return keep_alive
            status, payload, extra = self._models(path)
        else:
            self._note("not_found")
            status, payload, extra = 404, _error(f"no route {method} {path or '/'}", "invalid_request_error"), None
        self._send(writer, status, payload, keep_alive, extra)
        await writer.drain()
        return keep_alive

    async def _read_chunked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._send(writer, 400, _error("bad chunk size", "invalid_request_error"), keep_alive=False)
                return None
            if chunk == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            size += chunk
            if size > self.max_body_bytes:
                self._send(writer, 413, _error("request body too large", "invalid_request_error"), keep_alive=False)
                return None
            parts.append(await reader.readexactly(chunk))
            await reader.readexactly(2)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8"), self._api_key or b"")

    def _send(self, writer: asyncio.StreamWriter, status: int, payload: Any, keep_alive: bool,
              extra: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", "Connection: keep-alive" if keep_alive else "Connection: close"]
        if extra:
            head.extend(f"{k}: {v}" for k, v in extra.items())
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)

    def _models(self, path: str) -> tuple[int, Any, None]:
        self._note("models")
        card = {"id": self.model, "object": "model", "created": self._created, "owned_by": "eemo-pipeline"}
        wanted = path.split("/models", 1)[1].strip("/")
        if not wanted:
            return 200, {"object": "list", "data": [card]}, None
        if wanted == self.model:
            return 200, card, None
        return 404, _error(f"the model {wanted!r} does not exist", "invalid_request_error", "model_not_found"), None

    async def _chat(self, raw: bytes) -> tuple[int, Any, dict[str, str] | None]:
        arrived = time.monotonic()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._note("bad_request")
            return 400, _error("the request body is not valid JSON", "invalid_request_error"), None
        if not isinstance(body, dict):
            self._note("bad_request")
            return 400, _error("the request body must be a JSON object", "invalid_request_error"), None
        digest = body_hash(body)
        with self._lock:
            attempt = self._received.get(digest, 0)
            self._received[digest] = attempt + 1
        plan = self.faults
        outcome = plan.outcome(digest, attempt)
        if outcome == "rate_limit":  # a gateway refuses at once
            self._note("rate_limit")
            return 429, _error("Rate limit reached (injected fault); retry later.", "rate_limit_error",
                               "rate_limit_exceeded"), {"Retry-After": f"{plan.retry_after_s:g}"}
        choices: list[tuple[str, str]] = []
        if outcome == "ok":
            try:
                choices = self._answer(body, digest)
            except BadRequest as error:  # request validation answers at once, too
                self._note("bad_request")
                return 400, _error(error.message, "invalid_request_error", param=error.param), None
        # the latency counts from the request's arrival, so the model's own work is part of it
        delay = plan.latency_s - (time.monotonic() - arrived)
        if delay > 0:
            await asyncio.sleep(delay)
        if outcome == "server_error":
            self._note("server_error")
            return 500, _error("The server had an error (injected fault).", "server_error"), None
        if outcome == "drop":
            self._note("drop")
            raise _Drop()
        if outcome == "malformed":
            self._note("malformed")
            if plan.malformed_kind == "no_choices":
                return 200, {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                             "created": int(time.time()), "model": self.model}, None
            return 200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess', None
        prompt_tokens = sum(count_tokens(_text_of(m.get("content"))) for m in body["messages"])
        completion_tokens = sum(count_tokens(text) for text, _ in choices)
        self._note("ok", digest, completed=True)
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
                        for i, (text, reason) in enumerate(choices)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }, None

    def _answer(self, body: dict[str, Any], digest: str) -> list[tuple[str, str]]:
        """The model's choices for a body, from the LRU of recent answers when the same body came before."""
        choices = self._answers.get(digest)
        if choices is not None:
            self._answers.move_to_end(digest)
            return choices
        choices = self._engine.complete(body, digest)
        self._answers[digest] = choices
        if len(self._answers) > ANSWER_CACHE_SIZE:
            self._answers.popitem(last=False)
        return choices


@contextmanager
def running_in_thread(**kwargs: Any) -> Iterator[LocalChatServer]:
    """``LocalChatServer(**kwargs)`` running in a daemon thread for the ``with`` block."""
    with LocalChatServer(**kwargs).running_in_thread() as server:
        yield server


@dataclass(frozen=True)
class ServerProcess:
    base_url: str
    process: subprocess.Popen[str]


@contextmanager
def running_in_subprocess(latency_s: float = 0.0, model: str = DEFAULT_MODEL, extra_args: tuple[str, ...] = (),
                          timeout_s: float = 30.0) -> Iterator[ServerProcess]:
    """The server as ``python -m eemo_pipeline.generation.local_server`` on a free port, for the ``with`` block.

    For throughput benchmarks: a client in the same process competes with an in-thread server for the GIL.
    The request log stays in the child; use ``running_in_thread`` where a test reads it.
    """
    command = [sys.executable, "-m", "eemo_pipeline.generation.local_server", "--port", "0",
               "--latency", str(latency_s), "--model", model, *extra_args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(process.stdout.readline() if process.stdout else ""),
                                  daemon=True)
        reader.start()
        reader.join(timeout_s)
        line = ready[0].strip() if ready else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"the local chat server did not start (exit code {process.poll()})")
        yield ServerProcess(line.removeprefix("listening on "), process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()


# --- command line -------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eemo_pipeline.generation.local_server",
                                     description="Local OpenAI-compatible chat server with the offline rule model.")
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK_HOSTS)
    parser.add_argument("--port", type=int, default=8765, help="0 picks any free port")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before each answer")
    parser.add_argument("--api-key-env", default=None,
                        help="name of an environment variable holding the key clients must send")
    for kind in FAULT_KINDS:
        flag = kind.replace("_", "-")
        parser.add_argument(f"--{flag}-first", type=int, default=0)
        parser.add_argument(f"--{flag}-rate", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser


async def _serve_until_signalled(server: LocalChatServer) -> None:
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - platforms without signal handlers
            pass
    print(f"listening on {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"the environment variable {args.api_key_env} is not set")
    faults = FaultPlan(
        latency_s=args.latency, retry_after_s=args.retry_after, seed=args.seed,
        **{f"{kind}_first": getattr(args, f"{kind}_first") for kind in FAULT_KINDS},
        **{f"{kind}_rate": getattr(args, f"{kind}_rate") for kind in FAULT_KINDS},
    )
    server = LocalChatServer(args.host, args.port, model=args.model, faults=faults, api_key=api_key)
    asyncio.run(_serve_until_signalled(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
