"""EndpointChatModel against the real local OpenAI-compatible server on 127.0.0.1, with the response cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eemo_pipeline.evaluation.chat_model import ChatRequest, ModelSpecError
from eemo_pipeline.evaluation.endpoint_model import EndpointChatModel, endpoint_settings
from eemo_pipeline.evaluation.images import ImageError
from eemo_pipeline.evaluation.models import load_model
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.settings import Settings

CANARY = "sk-canary-eval-5d1c"


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    from PIL import Image

    Image.new("RGB", (64, 48), (250, 200, 0)).save(tmp_path / "yellow.png")
    Image.new("RGB", (900, 700), (0, 90, 30)).save(tmp_path / "green.jpg")
    return [tmp_path / "yellow.png", tmp_path / "green.jpg"]


def test_replies_come_from_the_server_once_then_from_the_cache(tmp_path: Path, images: list[Path]) -> None:
    batch = [ChatRequest("Describe the mood.", (images[0],), system="You are terse.", max_new_tokens=64),
             ChatRequest("Compare the two pictures.", tuple(images), max_new_tokens=32),
             ChatRequest("Describe the mood.", (images[1],), system="You are terse.", max_new_tokens=64)]
    with running_in_thread() as server:
        model = load_model(server.base_url, cache=ResponseCache(tmp_path / "cache.sqlite"))
        assert isinstance(model, EndpointChatModel)
        assert model.name == DEFAULT_MODEL and model.endpoint.temperature == 0.0  # discovered at GET /models

        first = model.generate(batch)
        assert len(first) == 3 and all(DEFAULT_MODEL in reply for reply in first)
        assert server.total_requests() == 3 and model.stats == {"calls": 3, "cache_hits": 0, "failed": 0}

        server.reset_log()
        again = load_model(f"{server.base_url}#{DEFAULT_MODEL}", cache=ResponseCache(tmp_path / "cache.sqlite"))
        assert again.generate(batch) == first
        assert server.total_requests() == 0 and again.stats == {"calls": 0, "cache_hits": 3, "failed": 0}
        assert again.keyword_probabilities(batch, ("high", "moderate", "low")) is None

        # Another image content is another request, whatever the file is called.
        from PIL import Image

        Image.new("RGB", (64, 48), (0, 0, 0)).save(images[0])
        again.generate(batch[:1])
        assert server.total_requests() == 1


def test_images_travel_as_data_urls_within_the_pixel_budget(tmp_path: Path, images: list[Path]) -> None:
    import base64
    import io

    from PIL import Image

    from eemo_pipeline.generation.images import MAX_PIXELS

    model = EndpointChatModel(endpoint_settings("http://127.0.0.1:1/v1#m", None), ResponseCache(tmp_path / "c.sqlite"))
    items = model._items([ChatRequest("Look.", tuple(images), system="S")], [0])
    system, user = items[0].messages
    assert system == {"role": "system", "content": "S"}
    urls = [part["image_url"]["url"] for part in user["content"] if part["type"] == "image_url"]
    assert user["content"][-1] == {"type": "text", "text": "Look."} and len(urls) == 2
    with Image.open(io.BytesIO(base64.b64decode(urls[1].split(",", 1)[1]))) as sent:
        assert sent.format == "JPEG" and sent.width * sent.height <= MAX_PIXELS
    assert "base64" not in json.dumps(items[0].cache_payload)  # the cache keys on content hashes


def test_keys_come_from_the_environment_only(tmp_path: Path, images: list[Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    request = [ChatRequest("Hello?", (images[0],))]
    with running_in_thread(api_key=CANARY) as server:
        monkeypatch.delenv("EEMO_EVAL_API_KEY", raising=False)
        refused = load_model(f"{server.base_url}#{DEFAULT_MODEL}", cache=ResponseCache(tmp_path / "a.sqlite"))
        assert refused.generate(request) == [""] and refused.stats["failed"] == 1  # 401, counted, not retried

        monkeypatch.setenv("EEMO_EVAL_API_KEY", CANARY)
        assert DEFAULT_MODEL in load_model(server.base_url, cache=ResponseCache(tmp_path / "b.sqlite")).generate(request)[0]

        monkeypatch.setenv("EEMO_JUDGE_BASE_URL", server.base_url)
        monkeypatch.setenv("EEMO_JUDGE_MODEL", DEFAULT_MODEL)
        monkeypatch.setenv("EEMO_JUDGE_API_KEY", CANARY)
        by_role = load_model("endpoint:judge", settings=Settings.from_env(), cache=ResponseCache(tmp_path / "c.sqlite"),
                             name="judge-model")
        assert by_role.name == "judge-model" and by_role.endpoint.key_variable == "EEMO_JUDGE_API_KEY"
        assert DEFAULT_MODEL in by_role.generate(request)[0]
        assert CANARY not in repr(by_role.endpoint.public())


def test_bad_specs_and_images_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eemo_pipeline.settings import EndpointNotConfigured

    monkeypatch.delenv("EEMO_NOBODY_BASE_URL", raising=False)
    with pytest.raises(EndpointNotConfigured, match="EEMO_NOBODY_BASE_URL"):
        load_model("endpoint:nobody", settings=Settings.from_env())
    with pytest.raises(ModelSpecError, match="endpoint:<role>"):
        load_model("endpoint:not a role")
    with running_in_thread() as server:
        model = load_model(server.base_url)
        with pytest.raises(ImageError, match=r"missing\.png: no such image file"):
            model.generate([ChatRequest("Hello?", (tmp_path / "missing.png",))])
        assert server.outcome_counts().get("ok", 0) == 0
