"""``eemo assess``: ask a model what emotions images evoke, with the GRPO stage's questions and system prompt.

Per image the model answers every registered task's questions (``Task.image_questions``), exactly as in
EEmoDB-Assess training: the emotion ranking (three of the seven targets), valence, arousal and dominance on 0-1,
and the dominant emotion among the seven targets. The replies are read with the benchmarks' parsers; a field
that cannot be read is null and listed in ``unparsed``, and every raw reply is kept beside it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from eemo_pipeline.evaluation.chat_model import ChatRequest, VisionChatModel
from eemo_pipeline.settings import EndpointNotConfigured, Settings
from eemo_pipeline.tasks.questions import DEFAULT_SYSTEM_PROMPT
from eemo_pipeline.tasks.registry import TASKS

DEFAULT_MAX_NEW_TOKENS = 512
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)


def assessment_questions() -> dict[str, str]:
    """Field name -> question, in the order the fields are reported: every registered task's
    ``image_questions``."""
    return {asked.field: asked.question() for task in TASKS.values() for asked in task.image_questions}


def reasoning_of(reply: str) -> str | None:
    """The text of the reply's last ``<think>`` block, stripped; None without one."""
    blocks = _THINK.findall(reply or "")
    return blocks[-1].strip() if blocks else None


def read_assessment(replies: dict[str, str]) -> dict[str, Any]:
    """Fields read from one image's replies (keyed like ``assessment_questions``) by their task's reader
    (``ImageQuestion.read``); unreadable ones are None and named in ``unparsed``.

    The ranking is read as the benchmark reads it (its first three distinct emotions, ``parsing.ranked``) and
    keeps the known target emotions among them; VAD values must lie in [0, 1]; the dominant emotion must be one
    of the targets.
    """
    fields: dict[str, Any] = {asked.field: asked.read(replies[asked.field])
                              for task in TASKS.values() for asked in task.image_questions}
    fields["unparsed"] = [name for name, value in fields.items() if value is None]
    return fields


def assess_images(model: VisionChatModel, images: Sequence[Path], *, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                  max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[dict[str, Any]]:
    """One record per image: image, model, the fields of ``assessment_questions`` (ranking, valence, arousal,
    dominance, dominant_emotion), unparsed, reasoning (each reply's think block) and replies (raw), all questions
    asked in one batch."""
    questions = assessment_questions()
    requests = [ChatRequest(question, (Path(image),), system=system_prompt, max_new_tokens=max_new_tokens,
                            tags={"image": str(image), "field": field})
                for image in images for field, question in questions.items()]
    replies = model.generate(requests)
    records = []
    for index, image in enumerate(images):
        answered = dict(zip(questions, replies[index * len(questions):(index + 1) * len(questions)], strict=True))
        records.append({
            "image": str(image), "model": model.name, **read_assessment(answered),
            "reasoning": {field: reasoning_of(reply) for field, reply in answered.items()},
            "replies": answered,
        })
    return records


def run_assess(images: Sequence[str], spec: str, *, settings: Settings, cache_path: Path | None, batch_size: int,
               max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, timeout_s: float | None = None,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``eemo assess`` command: checks every image first, loads the model (``endpoint:<role>`` from
    ``settings``; ``timeout_s``: the total time of one request to it), prints one JSON line per image to ``out``
    (default: the current stdout). Returns 0; 2 with a message naming the file or spec at fault (an image, the model,
    a response cache that cannot be opened or written); 1 naming the request and cause when the endpoint fails a request
    (down, refusing, answering garbage): no image is printed with fields a failed request left empty.
    """
    out, err = out or sys.stdout, err or sys.stderr
    from eemo_pipeline.evaluation.chat_model import ModelSpecError
    from eemo_pipeline.evaluation.endpoint_model import EndpointRequestError
    from eemo_pipeline.evaluation.images import ImageError, check_images
    from eemo_pipeline.evaluation.models import load_model
    from eemo_pipeline.generation.cache import CacheError, ResponseCache
    from eemo_pipeline.progress import progress

    paths = [Path(image) for image in images]
    try:
        check_images(paths)
        # Its opening notes printed here, once (not also logged by the cache).
        cache = ResponseCache(cache_path, log_opening_notes=False) if cache_path is not None else None
        for note in cache.notes if cache is not None else ():
            print(f"eemo assess: {note}", file=err)
        model = load_model(spec, settings=settings, cache=cache, batch_size=batch_size, strict=True,
                           timeout_s=timeout_s)
        # A batch's worth of questions at a time, each image printed as soon as its answers are in.
        per_chunk = max(1, batch_size // len(assessment_questions()))
        with progress(len(paths), "assess", stream=err) as shown:
            for start in range(0, len(paths), per_chunk):
                for record in assess_images(model, paths[start:start + per_chunk], max_new_tokens=max_new_tokens):
                    shown.write(json.dumps(record, ensure_ascii=False), stream=out)
                shown.advance(len(paths[start:start + per_chunk]))
    except (ImageError, ModelSpecError, EndpointNotConfigured, CacheError) as error:
        print(f"eemo assess: {error}", file=err)
        return 2
    except EndpointRequestError as error:
        print(f"eemo assess: {error}", file=err)
        return 1
    return 0
