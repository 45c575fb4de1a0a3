"""Model adapters behind ``VisionChatModel``: a local transformers/PEFT checkpoint or an OpenAI-compatible endpoint.

``load_model(spec)`` resolves what a user or a config names:

- an existing directory: ``TransformersChatModel``. Either a full transformers model (``config.json``) or a PEFT
  adapter (``adapter_config.json``) whose ``base_model_name_or_path`` is a local directory (nothing is fetched
  from a model hub). The processor is read from the adapter directory when it holds one, else from the base.
- ``http(s)://host:port/v1`` (optionally ``#<served model name>``; without it the server's only model is used):
  ``EndpointChatModel`` with the key from ``EEMO_EVAL_API_KEY``.
- ``endpoint:<role>``: ``EndpointChatModel`` configured like the generation roles, from
  ``EEMO_<ROLE>_BASE_URL``, ``EEMO_<ROLE>_MODEL`` and ``EEMO_<ROLE>_API_KEY``.

Both adapters answer greedily and keep every answer in the durable response cache
(``eemo_pipeline.generation.cache``), keyed by the model's identity and the request (image content hashes, not
paths), so a rerun of a benchmark never repeats a generation. torch, transformers, peft and openai are imported
inside the functions.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eemo_pipeline.constants import MAX_PIXELS, MIN_PIXELS
from eemo_pipeline.evaluation.protocol import ChatRequest, VisionChatModel
from eemo_pipeline.generation.cache import ResponseCache, cache_key
from eemo_pipeline.generation.images import fit_pixel_budget
from eemo_pipeline.generation.work import ChatAnswer
from eemo_pipeline.settings import Settings, endpoint_variable, read_secret
from eemo_pipeline.storage import from_storage

log = logging.getLogger(__name__)

LOCAL_ROLE = "local"  # cache role of answers from a local checkpoint
URL_ROLE = "eval"  # role of an endpoint given by URL: its key comes from EEMO_EVAL_API_KEY
GENERATE_VERSION = "evaluation-generate@1"
KEYWORDS_VERSION = "evaluation-keywords@1"
DEFAULT_BATCH_SIZE = 8
# Files hashed whole for a checkpoint's fingerprint; larger ones (weights) by size plus their first and last MiB.
_WHOLE_FILE_BYTES = 1 << 20
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


class ModelSpecError(ValueError):
    """A model spec that names nothing loadable."""


class ImageError(ValueError):
    """An image that cannot be read or decoded; the message names the file."""


# -------------------------------------------------------------------------------------------- images


def image_sha256(path: Path) -> str:
    """Content hash of an image file (the cache keys on content, not on paths); names the file when missing."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from error


def load_rgb(path: Path, min_pixels: int, max_pixels: int):
    """The image as RGB, resized (multiples of 28 pixels) into ``[min_pixels, max_pixels]``; names the file on failure."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageError(f"{path}: not a decodable image ({error})") from error
    size = fit_pixel_budget(rgb.width, rgb.height, min_pixels, max_pixels)
    return rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BICUBIC)


def check_images(paths: Sequence[Path]) -> None:
    """Raise ``ImageError`` naming the first file that is missing or not a decodable image."""
    from PIL import Image, UnidentifiedImageError

    for path in paths:
        if not Path(path).is_file():
            raise ImageError(f"{path}: no such image file")
        try:
            with Image.open(path) as image:
                image.load()  # decodes the pixels: a truncated file passes verify() but not this
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise ImageError(f"{path}: not a decodable image ({error})") from error


def _request_payload(request: ChatRequest, hashes: dict[Path, str]) -> dict[str, Any]:
    """What an answer depends on besides the model: the texts, image content and the token limit."""
    return {"system": request.system, "prompt": request.prompt, "max_new_tokens": request.max_new_tokens,
            "images": [hashes[Path(p)] for p in request.images]}


def capped(requests: Sequence[ChatRequest], max_new_tokens: int | None) -> list[ChatRequest]:
    """The requests with their token limit lowered to ``max_new_tokens`` (None: unchanged)."""
    if max_new_tokens is None:
        return list(requests)
    return [replace(r, max_new_tokens=min(r.max_new_tokens, max_new_tokens)) for r in requests]


def _hashes(requests: Sequence[ChatRequest]) -> dict[Path, str]:
    paths = {Path(p) for request in requests for p in request.images}
    return {path: image_sha256(path) for path in sorted(paths)}


# ------------------------------------------------------------------------------------- local checkpoint


def checkpoint_fingerprint(directory: Path) -> str:
    """sha256 over a checkpoint directory's files: small files whole, large ones by size and first/last MiB.

    Cheap on a 15 GB checkpoint yet changes whenever weights, config or processor change.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(directory).as_posix()}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= _WHOLE_FILE_BYTES:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_WHOLE_FILE_BYTES))
                handle.seek(size - _WHOLE_FILE_BYTES)
                digest.update(handle.read())
    return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointLayout:
    """Where a local checkpoint's parts are: the base weights, the optional adapter and the processor."""

    base: Path
    adapter: Path | None
    processor: Path


def checkpoint_layout(directory: Path) -> CheckpointLayout:
    """Resolve a full model directory or a PEFT adapter directory; raises ``ModelSpecError`` explaining what is missing."""
    directory = Path(directory).resolve()
    adapter_config = directory / "adapter_config.json"
    if adapter_config.is_file():
        try:
            base_name = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except ValueError as error:
            raise ModelSpecError(f"{adapter_config}: not valid JSON ({error})") from error
        if not base_name:
            raise ModelSpecError(f"{adapter_config}: base_model_name_or_path is missing")
        base = Path(base_name).expanduser()
        if not base.is_absolute() and not base.is_dir():
            base = directory / base  # a path relative to the adapter
        if not (base / "config.json").is_file():
            raise ModelSpecError(
                f"{adapter_config}: base model {base_name!r} is not a local model directory with config.json "
                "(models are never fetched from a hub)"
            )
        base = base.resolve()
        has_processor = any((directory / name).is_file() for name in _PROCESSOR_FILES)
        return CheckpointLayout(base=base, adapter=directory, processor=directory if has_processor else base)
    if (directory / "config.json").is_file():
        return CheckpointLayout(base=directory, adapter=None, processor=directory)
    raise ModelSpecError(f"{directory}: neither a transformers model (config.json) nor a PEFT adapter (adapter_config.json)")


def processor_pixel_budget(image_processor: Any) -> tuple[int, int]:
    """The processor's pixel budget, its maximum capped at the training budget (1280 x 28 x 28) and its minimum
    raised to the training minimum (256 x 28 x 28) where the maximum allows."""
    size = getattr(image_processor, "size", None)
    lowest = getattr(size, "shortest_edge", None) or getattr(image_processor, "min_pixels", None) or MIN_PIXELS
    highest = getattr(size, "longest_edge", None) or getattr(image_processor, "max_pixels", None) or MAX_PIXELS
    highest = min(int(highest), MAX_PIXELS)
    return min(max(int(lowest), MIN_PIXELS), highest), highest


class TransformersChatModel:
    """A local Qwen2.5-VL-style checkpoint (full or PEFT adapter): batched greedy generation with left padding.

    bf16 on CUDA when available, fp32 on CPU. With a ``cache``, answers are looked up and stored under the
    checkpoint's fingerprint (base and adapter) and the request.
    """

    def __init__(self, directory: Path, *, name: str | None = None, cache: ResponseCache | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, device: str | None = None, max_new_tokens: int | None = None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.layout = checkpoint_layout(directory)
        self.name = name or checkpoint_name(Path(directory))
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.max_new_tokens = max_new_tokens  # a cap on every request's own limit (quick runs); None: no cap
        parts = [checkpoint_fingerprint(self.layout.base)]
        if self.layout.adapter is not None:
            parts.append(checkpoint_fingerprint(self.layout.adapter))
        self.fingerprint = hashlib.sha256("+".join(parts).encode()).hexdigest()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.processor = AutoProcessor.from_pretrained(self.layout.processor)
        self.processor.tokenizer.padding_side = "left"  # generation continues every row from its last token
        model = AutoModelForImageTextToText.from_pretrained(self.layout.base, dtype=dtype, device_map=self.device)
        if self.layout.adapter is not None:
            from peft import PeftModel

            # Merged once: inference runs at the base model's speed.
            model = PeftModel.from_pretrained(model, self.layout.adapter).merge_and_unload()
        self.model = model.eval()
        self.min_pixels, self.max_pixels = processor_pixel_budget(self.processor.image_processor)
        self.stats = {"generated": 0, "cache_hits": 0}

    def _inputs(self, requests: Sequence[ChatRequest]):
        texts, images = [], []
        for request in requests:
            messages: list[dict[str, Any]] = []
            if request.system:
                messages.append({"role": "system", "content": request.system})
            parts = [{"type": "image"} for _ in request.images] + [{"type": "text", "text": request.prompt}]
            messages.append({"role": "user", "content": parts})
            texts.append(self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
            images.extend(load_rgb(p, self.min_pixels, self.max_pixels) for p in request.images)
        batch = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        return batch.to(self.device)

    def _cached(self, requests: Sequence[ChatRequest], version: str, extra: dict[str, Any]
                ) -> tuple[list[str | None], list[str]]:
        if self.cache is None:
            return [None] * len(requests), [""] * len(requests)
        hashes = _hashes(requests)
        keys = [cache_key(LOCAL_ROLE, self.fingerprint, version, {**_request_payload(r, hashes), **extra})
                for r in requests]
        found = [answer.text if (answer := self.cache.get(key)) is not None else None for key in keys]
        self.stats["cache_hits"] += sum(text is not None for text in found)
        return found, keys

    def _store(self, key: str, version: str, text: str) -> None:
        if self.cache is not None:
            self.cache.put(key, LOCAL_ROLE, self.fingerprint, version, ChatAnswer(text, self.name, 0, 0, False, 1))

    def _batches(self, indices: list[int], requests: Sequence[ChatRequest]) -> list[list[int]]:
        # Equal token limits per batch; prompts of similar length together keep padding small.
        ordered = sorted(indices, key=lambda i: (requests[i].max_new_tokens, len(requests[i].images),
                                                 len(requests[i].prompt)))
        batches: list[list[int]] = []
        for i in ordered:
            last = batches[-1] if batches else None
            if last and len(last) < self.batch_size and requests[last[0]].max_new_tokens == requests[i].max_new_tokens:
                last.append(i)
            else:
                batches.append([i])
        return batches

    def generate(self, requests: Sequence[ChatRequest]) -> list[str]:
        import torch

        requests = capped(requests, self.max_new_tokens)
        replies, keys = self._cached(requests, GENERATE_VERSION, {})
        missing = [i for i, reply in enumerate(replies) if reply is None]
        tokenizer = self.processor.tokenizer
        for batch in self._batches(missing, requests):
            inputs = self._inputs([requests[i] for i in batch])
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs, max_new_tokens=requests[batch[0]].max_new_tokens, do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            texts = self.processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(batch, texts, strict=True):
                replies[i] = text
                self._store(keys[i], GENERATE_VERSION, text)
            self.stats["generated"] += len(batch)
        return [reply or "" for reply in replies]

    def keyword_token_ids(self, keywords: Sequence[str]) -> list[int]:
        """The first sub-token of each keyword (as the answer's first word, no leading space)."""
        ids = []
        for keyword in keywords:
            tokens = self.processor.tokenizer.encode(keyword, add_special_tokens=False)
            if not tokens:
                raise ValueError(f"keyword {keyword!r} has no tokens")
            ids.append(tokens[0])
        if len(set(ids)) < len(ids):
            log.warning("%s: keywords %s share a first sub-token; those share its probability", self.name, list(keywords))
        return ids

    def keyword_probabilities(self, requests: Sequence[ChatRequest], keywords: Sequence[str]) -> list[list[float]]:
        import torch

        if not keywords:
            raise ValueError("keyword_probabilities needs at least one keyword")
        rows, keys = self._cached(requests, KEYWORDS_VERSION, {"keywords": list(keywords)})
        probabilities: list[list[float] | None] = [json.loads(row) if row is not None else None for row in rows]
        ids = torch.tensor(self.keyword_token_ids(keywords))
        missing = [i for i, row in enumerate(probabilities) if row is None]
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start:start + self.batch_size]
            inputs = self._inputs([requests[i] for i in batch])
            with torch.inference_mode():
                logits = self.model(**inputs).logits[:, -1, :].float()  # left padding: the last position is real
            chosen = torch.softmax(logits[:, ids.to(logits.device)], dim=-1).cpu().tolist()
            for i, row in zip(batch, chosen, strict=True):
                probabilities[i] = row
                self._store(keys[i], KEYWORDS_VERSION, json.dumps(row))
        return [row or [] for row in probabilities]


# ---------------------------------------------------------------------------------------------- endpoint


class EndpointChatModel:
    """Any OpenAI-compatible chat endpoint (vLLM serving a checkpoint, a hosted model), greedy (temperature 0).

    Requests go through the generation client (bounded concurrency, retries) and the response cache; images
    travel as JPEG data URLs resized into the training pixel budget. A request that fails for good (after
    retries) gets an empty reply, which no parser accepts, and is counted in ``stats["failed"]``.
    """

    def __init__(self, config: Any, cache: ResponseCache, *, name: str | None = None, max_new_tokens: int | None = None):
        from eemo_pipeline.generation.client import EndpointConfig

        self.config: EndpointConfig = replace(config, temperature=0.0)
        self.cache = cache
        self.name = name or config.model
        self.max_new_tokens = max_new_tokens  # a cap on every request's own limit; None: no cap
        self.stats = {"calls": 0, "cache_hits": 0, "failed": 0}

    def _items(self, requests: Sequence[ChatRequest], indices: list[int]):
        from eemo_pipeline.generation.images import image_data_url
        from eemo_pipeline.generation.work import WorkItem

        urls: dict[Path, tuple[str, str]] = {}
        items = []
        for i in indices:
            request = requests[i]
            parts: list[dict[str, Any]] = []
            hashes = []
            for path in request.images:
                path = Path(path)
                if path not in urls:
                    check_images([path])
                    urls[path] = image_data_url(path)
                parts.append({"type": "image_url", "image_url": {"url": urls[path][0]}})
                hashes.append(urls[path][1])
            parts.append({"type": "text", "text": request.prompt})
            messages = ([{"role": "system", "content": request.system}] if request.system else []) + [
                {"role": "user", "content": parts}]
            payload = {"base_url": self.config.base_url, "system": request.system, "prompt": request.prompt,
                       "images": hashes, "max_new_tokens": request.max_new_tokens}
            tags = ",".join(f"{k}={v}" for k, v in sorted(request.tags.items()))
            items.append(WorkItem(key=f"{i}" + (f" [{tags}]" if tags else ""), messages=messages,
                                  template="evaluation", template_version=GENERATE_VERSION, cache_payload=payload))
        return items

    def generate(self, requests: Sequence[ChatRequest]) -> list[str]:
        from eemo_pipeline.generation.batch import run_batch_sync

        requests = capped(requests, self.max_new_tokens)
        replies = [""] * len(requests)
        limits = sorted({request.max_new_tokens for request in requests})
        for limit in limits:
            indices = [i for i, request in enumerate(requests) if request.max_new_tokens == limit]
            items = self._items(requests, indices)
            result = run_batch_sync(items, replace(self.config, max_tokens=limit), self.cache, lambda text, item: None)
            for i, item in zip(indices, items, strict=True):
                answer = result.answers.get(item.key)
                replies[i] = answer.text if answer is not None else ""
            for record in result.quarantine:
                log.warning("%s: request %s failed: %s", self.name, record["file"], record["reason"])
            self.stats["calls"] += result.stats["calls"]
            self.stats["cache_hits"] += result.stats["cache_hits"]
            self.stats["failed"] += result.stats["quarantined"]
        return replies

    def keyword_probabilities(self, requests: Sequence[ChatRequest], keywords: Sequence[str]) -> None:
        return None  # chat endpoints do not expose next-token logits over a chosen vocabulary


# ------------------------------------------------------------------------------------------------ specs


def served_models(base_url: str, api_key: str) -> list[str]:
    """Model ids an OpenAI-compatible server lists at ``GET /models``."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2, timeout=30)
    try:
        return [model.id for model in client.models.list()]
    finally:
        client.close()


def endpoint_config(spec: str) -> Any:
    """The ``EndpointConfig`` of an ``http(s)://...[#model]`` or ``endpoint:<role>`` spec."""
    from eemo_pipeline.generation.client import EndpointConfig

    if spec.startswith("endpoint:"):
        role = spec.removeprefix("endpoint:").strip()
        if not role.isidentifier():
            raise ModelSpecError(f"{spec!r}: expected endpoint:<role>, e.g. endpoint:describer")
        return EndpointConfig.from_env(role)
    base_url, _, model = spec.partition("#")
    if not model:
        models = served_models(base_url, read_secret(endpoint_variable(URL_ROLE, "api_key")) or "EMPTY")
        if len(models) != 1:
            raise ModelSpecError(f"{base_url} serves {len(models)} models ({', '.join(models) or 'none'}): "
                                 f"name one as {base_url}#<model>")
        model = models[0]
    return EndpointConfig(role=URL_ROLE, base_url=base_url, model=model)


def checkpoint_name(directory: Path) -> str:
    """A short name for reports: the stage for the training assets' ``<stage>_checkpoint/<run>/adapter`` (or
    ``model``, a full fine-tune; ``merged``), else the directory's name."""
    directory = directory.resolve()
    stage = directory.parent.parent.name
    if directory.name in ("adapter", "model", "merged") and stage.endswith("_checkpoint"):
        return stage.removesuffix("_checkpoint") + ("-merged" if directory.name == "merged" else "")
    return directory.name


def load_model(spec: str, *, cache: ResponseCache | None = None, name: str | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE, max_new_tokens: int | None = None) -> VisionChatModel:
    """The model a spec names: a checkpoint directory, an ``http(s)://`` URL or ``endpoint:<role>``.

    ``max_new_tokens`` caps every request's own reply limit (None: no cap). Endpoints always use a cache (their
    calls may be paid): without one, a private in-memory one.
    """
    if spec.startswith(("http://", "https://", "endpoint:")):
        private = ResponseCache(Path(":memory:")) if cache is None else cache  # an empty cache is falsy
        return EndpointChatModel(endpoint_config(spec), private, name=name, max_new_tokens=max_new_tokens)
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
    if entry.startswith("endpoint:"):
        return entry, entry
    return checkpoint_name(Path(entry).expanduser()), entry


def default_model_entries(checkpoints: Sequence[Mapping[str, Any]], base_model: str | None = None,
                          storage: Path | None = None) -> list[tuple[str, str]]:
    """The base model (``base_model``, else ``$EEMO_BASE_MODEL``, else the checkpoints' base) named ``base``, then
    each checkpoint named by its stage (``sft``, ``grpo``). The checkpoint rows' paths are relative to ``storage``
    when they lie inside it (``storage.storage_relative``)."""
    resolve = (lambda value: str(from_storage(value, storage))) if storage is not None else str
    base = base_model or Settings.from_env().base_model or next(
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
               batch_size: int = DEFAULT_BATCH_SIZE, vad_modes: Sequence[str] | None = None,
               max_new_tokens: int | None = None, log_progress: Callable[[str], None] | None = None) -> list[ModelRun]:
    """Every ``(name, spec)`` model over ``items`` (benchmark items frame), one model loaded at a time."""
    from eemo_pipeline.evaluation.runner import run_items
    from eemo_pipeline.tasks.benchmark import VAD_MODES

    names = [name for name, _ in entries]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ModelSpecError(f"model names must be unique; {', '.join(duplicated)} appear more than once "
                             "(name them as NAME=SPEC)")
    runs = []
    for name, spec in entries:
        model = load_model(spec, cache=cache, name=name, batch_size=batch_size, max_new_tokens=max_new_tokens)
        try:
            progress = (lambda done, total, name=name: log_progress(f"{name}: {done}/{total} requests")) \
                if log_progress else None
            run = run_items(items, model, batch_size=batch_size, vad_modes=vad_modes or VAD_MODES, progress=progress)
        finally:
            release(model)
        runs.append(ModelRun(name, spec, run.predictions, run.notes, dict(model.stats)))
    return runs
