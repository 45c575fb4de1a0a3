"""``eemo-offline-rules-v1``: the offline server's model, rules rather than a neural network.

It reads the ``Task: <name>`` line of the system message and the ``Facts:`` block of the last user message,
and writes text the pipeline's validators accept: image statistics for ``describe``; for ``reason`` a
paragraph within the word limit naming every ranked emotion in order, never copying more than five
consecutive words of the comments; for the descriptive tasks a paragraph with the ranked emotions and the VAD
levels as words; for ``reasoning_choice`` a sentence of the reasoning naming the dominant emotion as the
correct option and the same sentence with every ranked emotion swapped for an unranked one as each distractor.
No digits in any answer, except ``judge``: the description judge's reply ``<Metric>: n``
scores the ``Response`` fact against the ``Reference`` by word overlap (completeness: share of the reference's
content words the response has; precision: share of the response's found in the reference; relevance: how
many emotion words it names); n = 2, 1, 0.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

from eemo_pipeline.generation.offline_server.chat_api import (
    DEFAULT_MODEL,
    TASKS,
    BadRequest,
    body_hash,
    count_tokens,
    text_of,
)
from eemo_pipeline.generation.offline_server.image_stats import decode_data_url, describe_image
from eemo_pipeline.generation.templates import unquoted
from eemo_pipeline.generation.validators import content_words
from eemo_pipeline.labels.vocabulary import CORRECT_PREFIX, DISTRACTOR_PREFIX, EMOTION_FORMS, missing_emotions
from eemo_pipeline.vad.levels import LEVELS, vad_level

DEFAULT_WORD_LIMIT = 200  # REFERENCE section 5: the reasoner writes at most 200 words
MAX_COPIED_WORDS = 5  # never more than this many consecutive words of the comments

_FACT_KEYS = (
    "Emotion ranking", "Dominant emotion", "Valence level", "Arousal level", "Dominance level", "Description",
    "Comments", "Reasoning", "Distractors", "Dimension", "Image A ranking", "Image B ranking",
    "Image A valence level", "Image A arousal level", "Image A dominance level",
    "Image B valence level", "Image B arousal level", "Image B dominance level",
    "Image A description", "Image B description", "Word limit", "Metric", "Question", "Reference", "Response",
)
_KNOWN_KEYS = {key.lower() for key in _FACT_KEYS}
_FREE_TEXT_KEYS = {"description", "comments", "reasoning", "image a description", "image b description", "question",
                   "reference", "response"}
_KEY_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]{0,40}?)\s*:\s*(.*)$")
_TASK_LINE = re.compile(r"^\s*Task:\s*([A-Za-z_]+)\s*$", re.MULTILINE | re.IGNORECASE)
_DIMENSIONS = ("valence", "arousal", "dominance")
_GLOSS = {
    "valence": {"low": "unpleasant", "medium": "mixed", "high": "pleasant"},
    "arousal": {"low": "calm", "medium": "moderately stirring", "high": "intense"},
    "dominance": {"low": "overpowering for the viewer", "medium": "balanced", "high": "leaving the viewer in control"},
}
_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
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
    return {key: unquoted(value) for key, value in facts.items()}  # an earlier model's text comes fenced


def _level(value: str | None) -> str | None:
    """A level word in the value, else the level of the first number in it (``vad_level``)."""
    if not value:
        return None
    match = re.search(r"\b(low|medium|high)\b", value, re.IGNORECASE)
    if match:
        return match.group(1).lower()
    number = re.search(r"\d*\.?\d+", value)
    return vad_level(float(number.group())) if number else None


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
        system = "\n".join(text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
        match = _TASK_LINE.search(system) or _TASK_LINE.search("\n".join(text_of(m.get("content")) for m in messages))
        users = [m for m in messages if m.get("role") == "user"]
        last_user = users[-1] if users else messages[-1]
        if match is None:
            words = count_tokens(text_of(last_user.get("content")))
            return (f"This is {self.name}, a rule-based offline stand-in for a chat model; the request names no "
                    f"task line, so it only acknowledges a message of {'one word' if words == 1 else 'several words'}.")
        task = match.group(1).lower()
        if task not in TASKS:
            raise BadRequest(f"unknown task {task!r}; the offline model knows {', '.join(TASKS)}")
        facts = parse_facts(text_of(last_user.get("content")))
        if not facts:
            for message in reversed(messages):
                facts = parse_facts(text_of(message.get("content")))
                if facts:
                    break
        if task == "judge":  # the score is a digit: returned before the no-digits rule
            return _judge(facts)
        if task == "describe":
            urls = [url for m in users for url in _image_urls(m.get("content"))]
            if not urls:
                raise BadRequest("describe needs an image", "messages")
            text = describe_image(decode_data_url(urls[-1]), rng)
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

    def _reasoning_choice(self, facts: dict[str, str], rng: random.Random) -> str:
        ranking = [e.lower() for e in self._ranking(facts)]
        if not ranking:
            raise BadRequest("reasoning_choice needs an Emotion ranking fact")
        number = re.search(r"\d+", facts.get("distractors", ""))
        count = int(number.group()) if number else 3
        correct = _choice_sentence(facts.get("reasoning", ""), ranking)
        unranked = [e for e in EMOTION_FORMS if e not in ranking]
        rng.shuffle(unranked)
        lines = [f"{CORRECT_PREFIX} {correct}"]
        # Distractor k gives the j-th ranked emotion the (k + j)-th unranked one: distinct options, no ranked word.
        lines += [f"{DISTRACTOR_PREFIX} "
                  f"{_capital(_swap_emotions(correct, {e: unranked[(k + j) % len(unranked)] for j, e in enumerate(ranking)}))}"
                  for k in range(count)]
        return "\n".join(lines)

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


CHOICE_SENTENCE_WORDS = 30  # a correct option (and so each distractor) stays under the template's word limit


_CAUSAL = re.compile(r"\b(?:because|since|so|drawn by|which is why|as a result)\b", re.IGNORECASE)


def _choice_sentence(reasoning: str, ranking: list[str]) -> str:
    """A sentence of the reasoning of at most ``CHOICE_SENTENCE_WORDS`` words that names the dominant emotion and
    no unranked one, a causal one ("because ...") first; else one built from six content words of the reasoning."""
    unranked = [e for e in EMOTION_FORMS if e not in ranking]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(reasoning.split()))
                 if len(s.split()) <= CHOICE_SENTENCE_WORDS and not missing_emotions(s, ranking[:1])
                 and len(missing_emotions(s, unranked)) == len(unranked) and len(content_words(s)) >= 2]
    if sentences:
        return min(sentences, key=lambda s: _CAUSAL.search(s) is None)
    words = list(dict.fromkeys(w for w in re.findall(r"[a-z]+", reasoning.lower()) if w in content_words(w)))[:6]
    return f"The {_join(words)} lead viewers to {ranking[0]}."


def _swap_emotions(sentence: str, swaps: dict[str, str]) -> str:
    """``sentence`` with every spelling of each ranked emotion (the keys of ``swaps``) replaced by its swap."""
    spelled = {w: swaps[e] for e in swaps for w in EMOTION_FORMS.get(e, (e,))}
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in sorted(spelled, key=len, reverse=True)) + r")\b",
                         re.IGNORECASE)
    return pattern.sub(lambda match: spelled[match.group().lower()], sentence)


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
