"""GRPO reward functions (paper section 4.2; REFERENCE.md sections 3 and 4), in the style of open-r1's rewards.

Every reward has TRL's signature ``f(completions, **kwargs) -> list[float | None]``:

* ``completions`` are plain strings or conversational lists ``[{"role": "assistant", "content": "..."}]``
  (the last message is scored; a content given as a list of parts has its text parts joined);
* dataset columns arrive as keyword lists of the same length: ``solution`` (the bare answer value of
  EEmoDB-Assess: ``"joy, surprise, fear"``, ``"0.7321"``, ``"Amusement"``; a value written with its identifier
  or inside ``<answer>`` tags is accepted too), ``task`` (``ranking``, ``vad``, ``dominant_emotion``) and
  ``sub_task`` (``emotion_ranking``; ``valence``/``arousal``/``dominance``; the taxonomy name ``ekman7``,
  ``mikels8``, ``artemis9``, ``plutchik24``, ``emotic26``); a single string is broadcast to every row;
  other keyword arguments (``prompts``, ``completion_ids``, ``trainer_state``...) are ignored;
* ``None`` means the reward does not apply to that row (TRL skips it when summing).

Rewards and ranges:

* ``format_reward`` {0, 1}: the reply (surrounding blanks stripped) is exactly ``<think>...</think>`` then
  ``<answer>...</answer>`` (only blanks between and no nested tags), and the answer holds the task's
  identifier (``Emotion ranking:``, ``Valence:``/``Arousal:``/``Dominance:``, ``Dominant emotion:``; case
  insensitive). A row without a known task only needs the two blocks.
* ``ranking_reward`` [0, 1]: ``(ranking_score / 100) ** 2`` (the paper's squared margin).
* ``vad_reward`` [0, 1]: the hybrid regression ("funnel") reward
  ``W_LIN * max(0, 1 - d / D_MAX) + (1 - W_LIN) * exp(-d**2 / (2 * SIGMA**2))`` with ``d = |pred - gt|`` on 0-1.
* ``emotion_similarity_reward`` [0, 1]: 1 for the exact label, else
  ``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P`` from the label set's similarity matrices.
* ``total_reward`` [0, 1 + FORMAT_WEIGHT]: ``FORMAT_WEIGHT * format + gate * task reward`` with the gate the
  format compliance (the task reward counts only when the format reward is 1). This is the paper's reward
  (equation 4) and the one to train with: passing the parts to TRL separately would sum them ungated.

Parsing (``extract_answer``, ``parse_ranking``...) and ``ranking_score`` (EEmo-Bench's per-image score, 0-100)
live in ``eemo_pipeline.evaluation`` and are re-exported here, so rewards and benchmarks read answers alike.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eemo_pipeline.evaluation.metrics import RANKING_WEIGHTS, kendall_tau, ranking_score
from eemo_pipeline.evaluation.parsing import (
    RANKING_VARIANTS,
    extract_answer,
    normalize_emotion,
    parse_dominant,
    parse_ranking,
    parse_value,
)

__all__ = [
    "RANKING_VARIANTS", "RANKING_WEIGHTS", "extract_answer", "kendall_tau", "normalize_emotion", "parse_dominant",
    "parse_ranking", "parse_value", "ranking_score",
]

# ---------------------------------------------------------------------------------------------- constants

FORMAT_WEIGHT = 0.5
"""Scale of the format reward in ``total_reward`` (the paper's lambda; its value was lost). 0.5 keeps the
format signal clearly below a correct answer (1.0) while still rewarding compliance on its own."""

# Hybrid VAD reward: half linear guidance (non-zero up to D_MAX = half the 0-1 scale, so even a coarse answer gets
# a gradient), half a Gaussian precision kernel (SIGMA = 0.1: ~0.88 at d = 0.05, ~0.61 at d = 0.1, ~0.14 at d = 0.2).
VAD_W_LIN = 0.5
VAD_D_MAX = 0.5
VAD_SIGMA = 0.1

# Emotion similarity reward (authors' code): R = (a * S_vad + (1 - a) * S_sem ** k) ** p.
SIM_A = 0.6
SIM_K = 2.0
SIM_P = 3.0
# Weights of valence, arousal and dominance in the Euclidean distance between two emotions' norms.
VAD_DISTANCE_WEIGHTS = (0.5, 0.3, 0.2)

TASK_IDENTIFIERS: dict[str, tuple[str, ...]] = {
    "ranking": ("Emotion ranking:",),
    "vad": ("Valence:", "Arousal:", "Dominance:"),
    "dominant_emotion": ("Dominant emotion:",),
}
VAD_DIMENSIONS = ("valence", "arousal", "dominance")

# Lexicon words tried for a label word that the Warriner norms lack (lower case; tried in order).
LEXICON_ALIASES: dict[str, tuple[str, ...]] = {
    "disquietment": ("disquiet", "unease", "uneasiness", "anxiety"),
    "disconnection": ("disconnect", "detachment", "isolation", "lonely"),
    "pensiveness": ("pensive", "thoughtful"),
    "distraction": ("distracted", "distract"),
    "apprehension": ("apprehensive", "worry"),
    "vigilance": ("vigilant", "alert"),
    "loathing": ("loathe", "hatred"),
    "sad": ("sadness",),
    "content": ("contentment",),
}

# ---------------------------------------------------------------------------------------- definitions

EMOTION_DEFINITIONS: dict[str, str] = {
    # Ekman 7 (and the shared basic words of the other sets)
    "anger": "A strong feeling of displeasure and hostility toward someone or something seen as a wrong or an obstacle.",
    "disgust": "Revulsion at something offensive, dirty or morally repugnant, with an urge to turn away from it.",
    "fear": "An unpleasant, tense feeling that danger, pain or harm is near, with an urge to escape or protect oneself.",
    "joy": "A bright feeling of great pleasure, delight and well-being.",
    "sadness": "A low, heavy feeling of loss, disappointment or helplessness, often with a wish to withdraw.",
    "surprise": "A brief, startled reaction to something unexpected, pleasant or not.",
    "neutral": "No marked emotion: a calm, even, indifferent state without pleasure or displeasure.",
    # Mikels 8 / ArtEmis 9
    "amusement": "Light-hearted enjoyment of something funny or playful that makes one smile or laugh.",
    "awe": "Wonder and reverence before something vast, grand or sublime that exceeds ordinary understanding.",
    "content": "A quiet, satisfied ease with how things are, wanting nothing more.",
    "contentment": "A quiet, satisfied ease with how things are, wanting nothing more.",
    "excitement": "An eager, energised and thrilled anticipation or enthusiasm.",
    "sad": "Feeling unhappy, sorrowful or downcast about something.",
    "something else": "A reaction that none of the named emotions describes.",
    # Plutchik 24
    "ecstasy": "Overwhelming, rapturous joy that carries one away.",
    "serenity": "A mild, peaceful joy: untroubled calm and tranquillity.",
    "trust": "Confident reliance on someone or something, feeling safe and accepting toward it.",
    "admiration": "Warm approval and respect for someone's or something's excellence or beauty.",
    "acceptance": "Calm willingness to take things or people as they are, without resistance.",
    "terror": "Extreme, paralysing fear in the face of overwhelming danger.",
    "apprehension": "Mild, anxious fear that something bad may happen.",
    "amazement": "Intense surprise and astonishment at something remarkable.",
    "distraction": "A mild, scattered surprise in which attention is pulled away and unfocused.",
    "grief": "Deep, intense sorrow, especially over a loss or death.",
    "pensiveness": "A mild, wistful sadness with quiet, reflective thought.",
    "loathing": "Intense disgust and hatred toward something detested.",
    "boredom": "Weary, restless lack of interest when nothing engages or stimulates.",
    "rage": "Violent, uncontrolled anger.",
    "annoyance": "Mild irritation at something bothersome or tiresome.",
    "anticipation": "Looking forward to and expecting something that is about to happen.",
    "vigilance": "Intense, watchful alertness to what may come.",
    "interest": "Curious attention drawn toward something one wants to know more about.",
    # EMOTIC 26
    "engagement": "Being absorbed in, attentive to and involved with an activity or surroundings.",
    "embarrassment": "Self-conscious discomfort and awkwardness after being exposed or making a mistake in front of others.",
    "disquietment": "Unease and nervous restlessness; feeling troubled, worried or unsettled.",
    "doubt/confusion": "Uncertainty and bewilderment: being unsure what to think or unable to make sense of something.",
    "disapproval": "A judgement that something is wrong or unacceptable, with reproach toward it.",
    "aversion": "A strong dislike that makes one want to avoid or move away from something.",
    "suffering": "Enduring prolonged physical or psychological distress and misery.",
    "pain": "Physical hurt or emotional anguish that is acutely unpleasant.",
    "disconnection": "Feeling detached, uninvolved and emotionally cut off from the surroundings or other people.",
    "peace": "Tranquil, undisturbed calm, free of worry or conflict.",
    "fatigue": "Weariness and lack of energy after exertion or strain; tired and drained.",
    "pleasure": "An agreeable sensation of enjoyment and gratification.",
    "happiness": "A lasting state of feeling glad, content and pleased with life.",
    "affection": "Tender fondness, care and love toward someone.",
    "confidence": "Self-assured belief in one's own abilities and judgement.",
    "esteem": "Respect and favourable regard for oneself or others.",
    "sympathy": "Compassionate concern for another person's troubles or misfortune.",
    "sensitivity": "Delicate emotional responsiveness; being easily moved or hurt.",
    "yearning": "A deep, wistful longing for something absent or out of reach.",
}
"""One short definition per label of every label set (keys lower case); embedded later for S_sem."""

# -------------------------------------------------------------------------------------------- parsing


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; for a conversational list, the last message's content
    (text parts joined when the content is a list of parts). Anything else gives ''."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], Mapping) else completion[-1]
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            return "".join(
                part.get("text") or "" if isinstance(part, Mapping) else str(part) for part in content
            )
    return ""


# -------------------------------------------------------------------------------- similarity matrices


@dataclass(frozen=True)
class SimilarityMatrices:
    """Intra-label-set similarities: ``s_vad[i, j]`` and ``s_sem[i, j]`` for ground truth ``labels[i]`` and
    prediction ``labels[j]``, both in [0, 1] with diagonal 1. ``semantic`` is ``"embeddings"`` or
    ``"vad_fallback"`` (S_sem = S_vad when no embeddings were given); ``missing`` lists label words the norms
    lacked (informational)."""

    labels: tuple[str, ...]
    s_vad: np.ndarray
    s_sem: np.ndarray
    semantic: str
    missing: tuple[str, ...] = ()
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {label.lower(): i for i, label in enumerate(self.labels)})

    def reward(self, ground_truth: str, predicted: str | None) -> float:
        """1.0 for the exact label (case-insensitive), 0.0 for a prediction outside the set (or None), else
        ``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P``. Raises KeyError for an unknown ground truth."""
        i = self.index[ground_truth.strip().lower()]
        j = self.index.get((predicted or "").strip().lower())
        if j is None:
            return 0.0
        if i == j:
            return 1.0
        value = SIM_A * self.s_vad[i, j] + (1.0 - SIM_A) * self.s_sem[i, j] ** SIM_K
        return float(np.clip(value, 0.0, 1.0) ** SIM_P)


def vad_similarity(norms: np.ndarray, weights: Sequence[float] = VAD_DISTANCE_WEIGHTS) -> np.ndarray:
    """S_vad(i, j) = 1 - d_ij / max_j d_ij with d the weighted Euclidean distance of rows of ``norms`` (n x 3).
    Row-normalized as written (so not necessarily symmetric); a row whose distances are all 0 is all 1."""
    diff = norms[:, None, :] - norms[None, :, :]
    distance = np.sqrt((np.asarray(weights, dtype=float) * diff**2).sum(axis=-1))
    row_max = distance.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(row_max > 0, 1.0 - distance / np.where(row_max > 0, row_max, 1.0), 1.0)
    return np.clip(similarity, 0.0, 1.0)


def semantic_similarity(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity divided by its largest off-diagonal value, diagonal set to 1, clipped to [0, 1]."""
    vectors = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    cosine = unit @ unit.T
    n = len(cosine)
    off = cosine[~np.eye(n, dtype=bool)]
    top = off.max() if off.size else 1.0
    scaled = cosine / top if top > 0 else cosine
    np.fill_diagonal(scaled, 1.0)
    return np.clip(scaled, 0.0, 1.0)


def build_similarity(
    labels: Sequence[str],
    vad_norms: Mapping[str, Sequence[float]],
    embeddings: Mapping[str, Sequence[float]] | None = None,
    *,
    missing: Sequence[str] = (),
) -> SimilarityMatrices:
    """The similarity matrices of one label set from each label's (v, a, d) norms (any one scale) and, when
    given, each label's definition embedding. Without embeddings S_sem falls back to S_vad (until the embedding
    model arrives with the training issue). Raises KeyError naming a label without norms or embedding."""
    labels = tuple(labels)
    norms = np.array([vad_norms[label] for label in labels], dtype=float)
    s_vad = vad_similarity(norms)
    if embeddings is None:
        return SimilarityMatrices(labels, s_vad, s_vad.copy(), "vad_fallback", tuple(missing))
    vectors = np.array([embeddings[label] for label in labels], dtype=float)
    return SimilarityMatrices(labels, s_vad, semantic_similarity(vectors), "embeddings", tuple(missing))


@functools.cache
def _norm_table() -> dict[str, tuple[float, float, float]]:
    """Lower-cased Warriner word -> (v, a, d) on 0-1, read once through ``load_lexicon``."""
    from eemo_pipeline.vad.lexicon import load_lexicon, lookup_table

    table = lookup_table(load_lexicon())
    return {
        key: ((v - 1.0) / 8.0, (a - 1.0) / 8.0, (d - 1.0) / 8.0)
        for key, v, a, d in table.select("key", "valence", "arousal", "dominance").iter_rows()
    }


def label_norms(
    labels: Sequence[str], table: Mapping[str, Sequence[float]]
) -> tuple[dict[str, tuple[float, float, float]], list[str]]:
    """Each label's (v, a, d): the mean over its words (split on '/', '-' and blanks; each word tried as is, then
    through LEXICON_ALIASES) found in ``table``. A label with no word found gets the scale's midpoint
    (0.5, 0.5, 0.5), a neutral placeholder; every word not found is returned in the second list."""
    norms: dict[str, tuple[float, float, float]] = {}
    missing: list[str] = []
    for label in labels:
        found = []
        for word in re.split(r"[/\-\s]+", label.lower()):
            if not word:
                continue
            hit = next((table[w] for w in (word, *LEXICON_ALIASES.get(word, ())) if w in table), None)
            if hit is None:
                missing.append(word)
            else:
                found.append(hit)
        norms[label] = tuple(np.mean(found, axis=0)) if found else (0.5, 0.5, 0.5)
    return norms, missing


_MATRICES: dict[str, SimilarityMatrices] = {}


def label_set(name: str) -> tuple[str, ...]:
    """The native labels of taxonomy ``name`` as spelled in data_contracts/label_taxonomy.yaml (KeyError if unknown)."""
    from eemo_pipeline.labels.taxonomy import taxonomy_document

    return tuple(taxonomy_document()["taxonomies"][name]["labels"])


def similarity_matrices(name: str) -> SimilarityMatrices:
    """The cached matrices of taxonomy ``name``, built on first use from the Warriner norms (S_sem = S_vad until
    ``set_similarity_matrices`` installs embedding-based ones)."""
    if name not in _MATRICES:
        labels = label_set(name)
        norms, missing = label_norms(labels, _norm_table())
        _MATRICES[name] = build_similarity(labels, norms, None, missing=missing)
    return _MATRICES[name]


def set_similarity_matrices(name: str, matrices: SimilarityMatrices) -> None:
    """Install precomputed matrices for taxonomy ``name`` (e.g. with definition embeddings)."""
    _MATRICES[name] = matrices


def clear_similarity_cache() -> None:
    """Forget cached matrices and the norms table (e.g. after pointing EEMO_VAD_LEXICON elsewhere)."""
    _MATRICES.clear()
    _norm_table.cache_clear()


# ------------------------------------------------------------------------------------------- rewards


def _column(values: Any, n: int, name: str) -> list[Any]:
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} rows for {n} completions")
    return values


def _answers(completions: Sequence[Any]) -> list[str | None]:
    return [extract_answer(completion_text(c)) for c in completions]


_FORMAT = re.compile(r"<think>(.*?)</think>\s*<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)


def _format_ok(text: str, task: str | None, sub_task: str | None) -> bool:
    match = _FORMAT.fullmatch(text.strip())
    if match is None or _TAG.search(match.group(1)) or _TAG.search(match.group(2)):
        return False
    identifiers = TASK_IDENTIFIERS.get(task or "")
    if identifiers is None:
        return True
    if task == "vad" and (sub_task or "").lower() in VAD_DIMENSIONS:
        identifiers = (f"{sub_task.capitalize()}:",)
    answer = match.group(2).lower()
    return any(identifier.lower() in answer for identifier in identifiers)


def format_reward(completions: Sequence[Any], task: Any = None, sub_task: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the reply is ``<think>...</think>`` followed by ``<answer>...</answer>`` (blanks only around
    and between them, no nested tags) and the answer holds the task's identifier (per sub_task for ``vad``);
    else 0.0. Rows without a known task only need the two blocks. Range {0, 1}."""
    n = len(completions)
    tasks, subs = _column(task, n, "task"), _column(sub_task, n, "sub_task")
    return [float(_format_ok(completion_text(c), t, s)) for c, t, s in zip(completions, tasks, subs)]


def ranking_reward(
    completions: Sequence[Any], solution: Any = None, task: Any = None, **kwargs: Any
) -> list[float | None]:
    """``(ranking_score(solution, answer) / 100) ** 2`` for ``task == "ranking"``, None otherwise. An answer
    without ranking scores 0. Range [0, 1]."""
    n = len(completions)
    tasks, solutions = _column(task, n, "task"), _column(solution, n, "solution")
    rewards: list[float | None] = []
    for answer, t, sol in zip(_answers(completions), tasks, solutions):
        if t != "ranking":
            rewards.append(None)
            continue
        truth = parse_ranking(extract_answer(sol) or sol)
        rewards.append((ranking_score(truth, parse_ranking(answer)) / 100.0) ** 2)
    return rewards


def hybrid_regression(distance: float) -> float:
    """``VAD_W_LIN * max(0, 1 - d / VAD_D_MAX) + (1 - VAD_W_LIN) * exp(-d**2 / (2 VAD_SIGMA**2))``. Range [0, 1]."""
    linear = max(0.0, 1.0 - distance / VAD_D_MAX)
    gaussian = math.exp(-(distance**2) / (2.0 * VAD_SIGMA**2))
    return VAD_W_LIN * linear + (1.0 - VAD_W_LIN) * gaussian


def vad_reward(
    completions: Sequence[Any], solution: Any = None, task: Any = None, sub_task: Any = None, **kwargs: Any
) -> list[float | None]:
    """The hybrid regression reward of ``d = |clip(pred, 0, 1) - gt|`` for ``task == "vad"`` (the value is read
    after the sub_task's identifier); 0.0 when the answer has no parseable value; None for other tasks and for a
    row whose sub_task or solution is unusable. Range [0, 1]."""
    n = len(completions)
    tasks, solutions, subs = _column(task, n, "task"), _column(solution, n, "solution"), _column(sub_task, n, "sub_task")
    rewards: list[float | None] = []
    for answer, t, sol, dim in zip(_answers(completions), tasks, solutions, subs):
        dim = (dim or "").lower()
        truth = parse_value(extract_answer(sol) or sol, dim) if t == "vad" and dim in VAD_DIMENSIONS else None
        if truth is None:
            rewards.append(None)
            continue
        predicted = parse_value(answer, dim)
        if predicted is None:
            rewards.append(0.0)
            continue
        rewards.append(hybrid_regression(abs(min(max(predicted, 0.0), 1.0) - truth)))
    return rewards


def emotion_similarity_reward(
    completions: Sequence[Any], solution: Any = None, task: Any = None, sub_task: Any = None, **kwargs: Any
) -> list[float | None]:
    """For ``task == "dominant_emotion"``: 1.0 for the exact label (case-insensitive), 0.0 outside the label set
    of ``sub_task`` (the taxonomy name) or without an answer, else ``(SIM_A * S_vad + (1 - SIM_A) * S_sem **
    SIM_K) ** SIM_P``. None for other tasks. Range [0, 1]."""
    n = len(completions)
    tasks, solutions, subs = _column(task, n, "task"), _column(solution, n, "solution"), _column(sub_task, n, "sub_task")
    rewards: list[float | None] = []
    for answer, t, sol, name in zip(_answers(completions), tasks, solutions, subs):
        if t != "dominant_emotion":
            rewards.append(None)
            continue
        truth = parse_dominant(extract_answer(sol) or sol) or ""
        rewards.append(similarity_matrices(name).reward(truth, parse_dominant(answer)))
    return rewards


TASK_REWARDS: dict[str, Callable[..., list[float | None]]] = {
    "ranking": ranking_reward,
    "vad": vad_reward,
    "dominant_emotion": emotion_similarity_reward,
}


def total_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """``FORMAT_WEIGHT * format + gate * task reward``: the gate is 1 only when the format reward is 1; the
    task reward is the one of ``TASK_REWARDS`` that applies to the row (0 when none does). Range
    [0, 1 + FORMAT_WEIGHT]."""
    formats = format_reward(completions, **kwargs)
    parts = [reward(completions, **kwargs) for reward in TASK_REWARDS.values()]
    totals = []
    for row, fmt in enumerate(formats):
        task_value = next((p[row] for p in parts if p[row] is not None), 0.0)
        totals.append(FORMAT_WEIGHT * fmt + (task_value if fmt == 1.0 else 0.0))
    return totals


REWARD_FUNCTIONS: dict[str, Callable[..., list[float | None]]] = {
    "format": format_reward,
    "ranking": ranking_reward,
    "vad": vad_reward,
    "emotion_similarity": emotion_similarity_reward,
    "total": total_reward,
}
"""Registry by name (as open-r1's ``get_reward_funcs``). Train with ``total`` (the gated paper reward); the
others are ungated parts, useful for logging."""


def get_reward_funcs(names: Sequence[str]) -> list[Callable[..., list[float | None]]]:
    """The reward functions named (KeyError naming an unknown one)."""
    return [REWARD_FUNCTIONS[name] for name in names]
