"""``TransformersChatModel``: a local Qwen2.5-VL-style checkpoint (full or PEFT adapter) behind ``VisionChatModel``.

torch, transformers and peft are imported inside its methods: nothing heavy at import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eemo_pipeline.constants import MAX_PIXELS, MIN_PIXELS
from eemo_pipeline.evaluation.chat_model import GENERATE_VERSION, ChatRequest, capped
from eemo_pipeline.evaluation.checkpoints import checkpoint_fingerprint, checkpoint_layout, checkpoint_name
from eemo_pipeline.evaluation.images import image_sha256, load_rgb
from eemo_pipeline.generation.cache import ResponseCache, cache_key
from eemo_pipeline.generation.work import ChatAnswer

log = logging.getLogger(__name__)

LOCAL_ROLE = "local"  # cache role of answers from a local checkpoint
KEYWORDS_VERSION = "evaluation-keywords@1"
DEFAULT_BATCH_SIZE = 8


def _request_payload(request: ChatRequest, hashes: dict[Path, str]) -> dict[str, Any]:
    """What an answer depends on besides the model: the texts, image content and the token limit."""
    return {"system": request.system, "prompt": request.prompt, "max_new_tokens": request.max_new_tokens,
            "images": [hashes[Path(p)] for p in request.images]}


def _hashes(requests: Sequence[ChatRequest]) -> dict[Path, str]:
    paths = {Path(p) for request in requests for p in request.images}
    return {path: image_sha256(path) for path in sorted(paths)}


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
