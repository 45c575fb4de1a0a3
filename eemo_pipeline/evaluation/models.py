"""Which model a spec names, and every configured model over the benchmark items.

``load_model(spec)`` resolves what a user or a config names:

- an existing directory: ``TransformersChatModel`` (``local_model.py``). Either a full transformers model
  (``config.json``) or a PEFT adapter (``adapter_config.json``) whose ``base_model_name_or_path`` is a local
  directory (nothing is fetched from a model hub). The processor is read from the adapter directory when it holds
  one, else from the base.
- ``http(s)://host:port/v1`` (optionally ``#<served model name>``; without it the server's only model is used):
  ``EndpointChatModel`` (``endpoint_model.py``) with the key from ``EEMO_EVAL_API_KEY``.
- ``endpoint:<role>``: ``EndpointChatModel`` on the role's endpoint of the settings the caller passes
  (``EEMO_<ROLE>_BASE_URL``, ``EEMO_<ROLE>_MODEL``, ``EEMO_<ROLE>_API_KEY`` at the edges that read them).

Both adapters answer greedily and keep every answer in the durable response cache
(``eemo_pipeline.generation.cache``), keyed by the model's identity and the request (image content hashes, not
paths), so a rerun of a benchmark never repeats a generation. torch, transformers, peft and openai are imported
inside the functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eemo_pipeline.evaluation.chat_model import ModelSpecError, VisionChatModel
from eemo_pipeline.evaluation.checkpoints import checkpoint_name
from eemo_pipeline.evaluation.endpoint_model import (
    ENDPOINT_PREFIX,
    EndpointChatModel,
    endpoint_settings,
    is_endpoint_spec,
)
from eemo_pipeline.evaluation.local_model import DEFAULT_BATCH_SIZE, TransformersChatModel
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.settings import Settings
from eemo_pipeline.storage import from_storage


def load_model(spec: str, *, settings: Settings | None = None, cache: ResponseCache | None = None,
               name: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, max_new_tokens: int | None = None,
               strict: bool = False, timeout_s: float | None = None) -> VisionChatModel:
    """The model a spec names: a checkpoint directory, an ``http(s)://`` URL or ``endpoint:<role>`` (a role of
    ``settings``).

    ``max_new_tokens`` caps every request's own reply limit (None: no cap). Endpoints always use a cache (their
    calls may be paid): without one, a private in-memory one; with ``strict`` a failed request raises
    ``EndpointRequestError`` rather than leaving an empty reply; ``timeout_s`` replaces the endpoint's total time
    of one request.
    """
    if is_endpoint_spec(spec):
        private = ResponseCache(Path(":memory:")) if cache is None else cache  # an empty cache is falsy
        endpoint = endpoint_settings(spec, settings)
        if timeout_s is not None:
            endpoint = replace(endpoint, timeout_s=timeout_s)
        return EndpointChatModel(endpoint, private, name=name, max_new_tokens=max_new_tokens, strict=strict)
    path = Path(spec).expanduser()
    if path.is_dir():
        return TransformersChatModel(path, name=name, cache=cache, batch_size=batch_size, max_new_tokens=max_new_tokens)
    raise ModelSpecError(f"{spec!r} is neither an existing checkpoint directory nor an http(s):// or endpoint:<role> spec")


# ------------------------------------------------------------------------------------- evaluation runs

_NAMED_SPEC = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


def parse_model_entry(entry: str) -> tuple[str, str]:
    """``(name, spec)`` of a configured ``[NAME=]SPEC``; without a name, the directory name or endpoint model."""
    entry = entry.strip()
    named = _NAMED_SPEC.match(entry)
    if named and not Path(entry).expanduser().exists():
        return named.group(1), named.group(2)
    if entry.startswith(("http://", "https://")):
        return entry.partition("#")[2] or entry, entry
    if entry.startswith(ENDPOINT_PREFIX):
        return entry, entry
    return checkpoint_name(Path(entry).expanduser()), entry


def default_model_entries(checkpoints: Sequence[Mapping[str, Any]], base_model: str | None = None,
                          storage: Path | None = None) -> list[tuple[str, str]]:
    """The base model (``base_model``, else the checkpoints' base) named ``base``, then
    each checkpoint named by its stage (``sft``, ``grpo``). The checkpoint rows' paths are relative to ``storage``
    when they lie inside it (``storage.storage_relative``)."""
    resolve = (lambda value: str(from_storage(value, storage))) if storage is not None else str
    base = base_model or next(
        (resolve(row["base_model_path"]) for row in checkpoints if row.get("base_model_path")), None)
    entries = [("base", str(base))] if base else []
    return entries + [(str(row["stage"]), resolve(row["checkpoint_path"])) for row in checkpoints]


@dataclass
class ModelRun:
    """One model's predictions over the benchmark items, with the runner's notes and the adapter's counters."""

    name: str
    spec: str
    predictions: Any  # polars DataFrame in the runner's PREDICTION_SCHEMA
    notes: list[str]
    stats: dict[str, int]


def release(model: VisionChatModel) -> None:
    """Free a local model's weights (and GPU memory) before the next model loads."""
    if isinstance(model, TransformersChatModel):
        import gc

        import torch

        del model.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_models(items: Any, entries: Sequence[tuple[str, str]], cache: ResponseCache, *,
               settings: Settings | None = None, batch_size: int = DEFAULT_BATCH_SIZE, vad_modes: Sequence[str] | None = None,
               max_new_tokens: int | None = None, log_progress: Callable[[str], None] | None = None) -> list[ModelRun]:
    """Every ``(name, spec)`` model over ``items`` (benchmark items frame), one model loaded at a time;
    ``endpoint:<role>`` specs name endpoints of ``settings``."""
    from eemo_pipeline.evaluation.runner import run_items
    from eemo_pipeline.tasks.benchmark import VAD_MODES

    names = [name for name, _ in entries]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ModelSpecError(f"model names must be unique; {', '.join(duplicated)} appear more than once "
                             "(name them as NAME=SPEC)")
    runs = []
    for name, spec in entries:
        model = load_model(spec, settings=settings, cache=cache, name=name, batch_size=batch_size,
                           max_new_tokens=max_new_tokens)
        try:
            progress = (lambda done, total, name=name: log_progress(f"{name}: {done}/{total} requests")) \
                if log_progress else None
            run = run_items(items, model, batch_size=batch_size, vad_modes=vad_modes or VAD_MODES, progress=progress)
        finally:
            release(model)
        runs.append(ModelRun(name, spec, run.predictions, run.notes, dict(model.stats)))
    return runs
