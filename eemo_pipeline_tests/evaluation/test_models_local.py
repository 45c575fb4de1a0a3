"""TransformersChatModel on the tiny offline Qwen2.5-VL: full checkpoint and PEFT adapter, through load_model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("peft", reason="the train extra (torch, transformers, peft) is not installed")
pytestmark = pytest.mark.slow

from eemo_pipeline.evaluation.chat_model import ChatRequest, ModelSpecError  # noqa: E402
from eemo_pipeline.evaluation.images import ImageError  # noqa: E402
from eemo_pipeline.evaluation.local_model import TransformersChatModel  # noqa: E402
from eemo_pipeline.evaluation.models import load_model  # noqa: E402
from eemo_pipeline.generation.cache import ResponseCache  # noqa: E402

KEYWORDS = ("high", "moderate", "low")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    from eemo_pipeline.training.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("local_models")
    Image.new("RGB", (96, 96), (200, 10, 10)).save(root / "red.png")
    Image.new("RGB", (300, 160), (10, 10, 200)).save(root / "blue.jpg")
    build_tiny_model(root / "tiny")
    return root


def requests(root: Path) -> list[ChatRequest]:
    return [
        ChatRequest("Does this image evoke joy? Answer yes or no.", (root / "red.png",), system="Be brief.",
                    max_new_tokens=6),
        ChatRequest("Which image feels more positive, the first or the second?", (root / "red.png", root / "blue.jpg"),
                    max_new_tokens=6),
        ChatRequest("Rate the arousal.", (root / "blue.jpg",), max_new_tokens=6),
        ChatRequest("Say a word.", (), max_new_tokens=4),
    ]


def test_batched_generation_matches_one_by_one_and_is_cached(workspace: Path, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    model = load_model(str(workspace / "tiny"), cache=cache, batch_size=3)
    assert isinstance(model, TransformersChatModel) and model.name == "tiny" and model.device == "cpu"

    batch = model.generate(requests(workspace))
    assert len(batch) == 4 and all(isinstance(text, str) and text for text in batch)
    assert model.stats == {"generated": 4, "cache_hits": 0}
    # Left padding is right when each reply equals the reply to the request alone.
    alone = TransformersChatModel(workspace / "tiny", batch_size=1)
    assert [alone.generate([request])[0] for request in requests(workspace)] == batch

    model.model.generate = None  # a cache miss would now fail
    assert model.generate(requests(workspace)) == batch
    assert model.stats == {"generated": 4, "cache_hits": 4}
    assert len(cache) == 4


def test_keyword_probabilities_are_a_softmax_over_first_sub_tokens(workspace: Path) -> None:
    import torch

    model = load_model(str(workspace / "tiny"))
    rows = model.keyword_probabilities(requests(workspace)[:3], KEYWORDS)
    assert len(rows) == 3 and all(len(row) == 3 and math.isclose(sum(row), 1.0, rel_tol=1e-6) for row in rows)
    assert rows[0] != rows[2]  # different images, different next-token distributions

    ids = model.keyword_token_ids(KEYWORDS)
    assert ids == [model.processor.tokenizer.encode(k, add_special_tokens=False)[0] for k in KEYWORDS]
    inputs = model._inputs(requests(workspace)[2:3])
    with torch.inference_mode():
        logits = model.model(**inputs).logits[0, -1]
    expected = torch.softmax(logits[ids], dim=-1).tolist()
    assert rows[2] == pytest.approx(expected, abs=1e-5)


def test_peft_adapter_directory_loads_on_its_local_base(workspace: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(workspace / "tiny")
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    for name, parameter in peft_model.named_parameters():
        if "lora_B" in name:  # LoRA starts as a no-op; give it an effect
            parameter.data.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert Path(adapter_config["base_model_name_or_path"]) == workspace / "tiny"

    adapted = load_model(str(tmp_path / "adapter"), name="sft")
    plain = load_model(str(workspace / "tiny"))
    assert adapted.name == "sft" and adapted.layout.adapter == (tmp_path / "adapter").resolve()
    assert adapted.layout.processor == (workspace / "tiny").resolve()  # the adapter dir holds no processor
    assert adapted.fingerprint != plain.fingerprint

    batch = requests(workspace)[:2]
    probabilities = adapted.keyword_probabilities(batch, KEYWORDS)
    assert probabilities != plain.keyword_probabilities(batch, KEYWORDS)
    reference = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(workspace / "tiny"),
                                          tmp_path / "adapter").eval()
    inputs = adapted._inputs(batch)
    with torch.inference_mode():
        logits = reference(**inputs).logits[:, -1]
    ids = adapted.keyword_token_ids(KEYWORDS)
    expected = torch.softmax(logits[:, ids], dim=-1).tolist()
    assert [value for row in probabilities for value in row] == pytest.approx(sum(expected, []), abs=1e-4)
    assert len(adapted.generate(batch)) == 2


def test_an_adapter_whose_base_is_not_local_is_refused(tmp_path: Path) -> None:
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "Qwen/Qwen2.5-VL-7B-Instruct", "peft_type": "LORA"}))
    with pytest.raises(ModelSpecError, match=r"adapter_config\.json.*not a local model directory"):
        load_model(str(tmp_path / "adapter"))
    with pytest.raises(ModelSpecError, match="neither a transformers model"):
        load_model(str(tmp_path))
    with pytest.raises(ModelSpecError, match="neither an existing checkpoint directory"):
        load_model(str(tmp_path / "missing"))


def test_an_undecodable_image_is_named(workspace: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    model = load_model(str(workspace / "tiny"))
    with pytest.raises(ImageError, match=r"broken\.jpg: not a decodable image"):
        model.generate([ChatRequest("Hello?", (tmp_path / "broken.jpg",))])
    with pytest.raises(ImageError, match=r"gone\.png: cannot read"):
        model.generate([ChatRequest("Hello?", (tmp_path / "gone.png",))])
