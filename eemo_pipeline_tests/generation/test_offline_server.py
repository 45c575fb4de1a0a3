"""The offline OpenAI-compatible server: real HTTP from the openai SDK and from http.client / raw sockets."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from PIL import Image

from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL, body_hash
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.generation.offline_server.rules_model import OfflineRulesModel, parse_facts
from eemo_pipeline.generation.offline_server.server import LocalChatServer, running_in_subprocess, running_in_thread

FACTS = """Facts:
Emotion ranking: awe, contentment, excitement, fear
Dominant emotion: awe
Valence level: high
Arousal level: medium
Dominance level: low
Description: The image shows a lone climber standing on a snowy ridge above the clouds at sunrise. Wind blows hard.
Comments: a lone climber standing on a snowy ridge above the clouds at sunrise makes me feel so small | what a view of the mountains and the sunrise | the climber must be brave and a little scared of falling
Word limit: 80"""

PAIR_FACTS = """Facts:
Image A ranking: joy, surprise
Image B ranking: sadness, fear, neutral
Dimension: arousal
Image A valence level: high
Image A arousal level: 0.8
Image A dominance level: medium
Image B valence level: low
Image B arousal level: low
Image B dominance level: low
Image A description: 3 children play in a fountain on a hot day.
Image B description: An empty hospital corridor at night."""

# emotion words of every taxonomy in REFERENCE section 1 (the answers may only name the ranking's own)
TAXONOMY = {
    "anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral", "amusement", "awe", "contentment",
    "excitement", "trust", "ecstasy", "serenity", "admiration", "acceptance", "terror", "apprehension",
    "amazement", "distraction", "grief", "pensiveness", "loathing", "boredom", "rage", "annoyance",
    "anticipation", "vigilance", "interest", "affection", "aversion", "confidence", "disapproval",
    "disconnection", "disquietment", "embarrassment", "engagement", "esteem", "fatigue", "happiness", "pain",
    "peace", "pleasure", "sensitivity", "suffering", "sympathy", "yearning",
}


def chat_body(task: str, facts: str = FACTS, **extra: Any) -> dict[str, Any]:
    return {
        "model": "whatever-the-client-asks",
        "messages": [
            {"role": "system", "content": f"You are a careful assistant.\nTask: {task}\nAnswer in English."},
            {"role": "user", "content": f"Please answer.\n\n{facts}"},
        ],
        **extra,
    }


def data_url(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def describe_body(url: str | None, **extra: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "Describe the main objects and events."}]
    if url:
        content.append({"type": "image_url", "image_url": {"url": url}})
    return {"model": "m", "messages": [{"role": "system", "content": "Task: describe"},
                                       {"role": "user", "content": content}], **extra}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture
def server() -> Iterator[LocalChatServer]:
    with running_in_thread() as running:
        yield running


def post(server: LocalChatServer, body: Any, conn: http.client.HTTPConnection | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", "/v1/chat/completions", body=data,
                 headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    payload = response.read()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, payload
    if own:
        conn.close()
    return result


def sdk(server: LocalChatServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=10)


# --- protocol -----------------------------------------------------------------------------------------------


def test_completion_has_the_openai_shape(server: LocalChatServer) -> None:
    async def ask() -> Any:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=10)
        try:
            return await client.chat.completions.create(**chat_body("reason"))
        finally:
            await client.close()

    completion = asyncio.run(ask())
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == DEFAULT_MODEL  # whatever the client asked for
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage.completion_tokens == len(completion.choices[0].message.content.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > usage.completion_tokens

    status, headers, raw = post(server, chat_body("reason"))
    payload = json.loads(raw)
    assert status == 200 and headers["content-type"] == "application/json"
    assert {"id", "object", "created", "model", "choices", "usage"} <= payload.keys()
    assert isinstance(payload["created"], int)
    assert payload["choices"][0]["message"]["content"] == completion.choices[0].message.content


def test_keep_alive_serves_several_requests_on_one_connection(server: LocalChatServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    post(server, chat_body("narrative"), conn)
    sock = conn.sock
    for task in ("causal", "evocation", "reason"):
        status, headers, _ = post(server, chat_body(task), conn)
        assert status == 200 and headers["connection"] == "keep-alive"
        assert conn.sock is sock
    conn.request("GET", "/v1/models")
    assert conn.getresponse().read()
    assert conn.sock is sock
    conn.close()
    assert server.connection_count() == 1
    assert server.total_requests() == server.completed_count() == 4


def test_chunked_bodies_and_connection_close(server: LocalChatServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    chunks = iter([json.dumps(chat_body("reason")).encode()[:50], json.dumps(chat_body("reason")).encode()[50:]])
    conn.request("POST", "/v1/chat/completions", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/json", "Connection": "close"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Connection") == "close"
    assert json.loads(response.read())["choices"][0]["message"]["content"]
    conn.close()


def test_models_endpoint(server: LocalChatServer) -> None:
    models = sdk(server).models.list()
    assert [m.id for m in models.data] == [DEFAULT_MODEL]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/v1/models")
    payload = json.loads(conn.getresponse().read())
    assert payload["object"] == "list" and payload["data"][0]["object"] == "model"
    conn.request("GET", "/v1/nowhere")
    assert conn.getresponse().status == 404


def test_api_key_is_checked_and_never_echoed() -> None:
    key = "sk-local-secret-123456"
    with running_in_thread(api_key=key) as server:
        assert key not in repr(server)
        with pytest.raises(openai.AuthenticationError) as refused:
            sdk(server, "sk-wrong").chat.completions.create(**chat_body("reason"))
        assert "sk-wrong" not in refused.value.response.text
        status, _, raw = post(server, chat_body("reason"))
        assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key" and key.encode() not in raw
        assert sdk(server, key).chat.completions.create(**chat_body("reason")).choices[0].message.content
        assert sdk(server, key).models.list().data
        assert server.outcome_counts()["unauthorized"] == 2


def test_only_loopback_binding() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.org", "::"):
        with pytest.raises(ValueError, match="loopback"):
            LocalChatServer(host)
    assert LocalChatServer("localhost").host == "127.0.0.1"
    assert LocalChatServer("::1").base_url.startswith("http://[::1]:")


def test_body_limits_and_bodies_without_a_length() -> None:
    with running_in_thread(max_body_bytes=1024) as server:
        big = json.dumps(chat_body("reason", FACTS + "\nComments: " + "x" * 2000)).encode()
        status, headers, raw = post(server, big)
        assert status == 413 and headers["connection"] == "close" and json.loads(raw)["error"]["message"]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        chunks = iter([big[:600], big[600:]])
        conn.request("POST", "/v1/chat/completions", body=chunks, encode_chunked=True)
        assert conn.getresponse().status == 413
        conn.close()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 411 ")
        assert post(server, chat_body("reason"))[0] == 200


# --- faults -------------------------------------------------------------------------------------------------


def test_rate_limit_then_success_per_distinct_body() -> None:
    with running_in_thread(faults=FaultPlan(rate_limit_first=2, retry_after_s=0.25)) as server:
        first, second = chat_body("reason"), chat_body("causal")
        for _ in range(2):
            status, headers, raw = post(server, first)
            assert status == 429 and headers["retry-after"] == "0.25"
            assert json.loads(raw)["error"]["type"] == "rate_limit_error"
        assert post(server, first)[0] == 200
        assert post(server, first)[0] == 200
        # another body has its own count
        with pytest.raises(openai.RateLimitError) as limited:
            sdk(server).chat.completions.create(**second)
        assert limited.value.response.headers["retry-after"] == "0.25"
        assert server.requests_for(body_hash(first)) == 4
        assert server.completed_for(body_hash(first)) == 2
        assert server.requests_for(body_hash(second)) == 1 and server.completed_for(body_hash(second)) == 0


def test_faults_come_in_order_then_success() -> None:
    plan = FaultPlan(rate_limit_first=1, server_error_first=2, drop_first=1, malformed_first=1, retry_after_s=1)
    with running_in_thread(faults=plan) as server:
        client = sdk(server)
        body = chat_body("narrative")
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(**body)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(**body)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(**body)
        status, _, raw = post(server, body)
        assert status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        answer = client.chat.completions.create(**body)
        assert answer.choices[0].message.content
        digest = body_hash(body)
        assert server.requests_for(digest) == 6 and server.completed_for(digest) == 1
        assert server.outcome_counts() == {"rate_limit": 1, "server_error": 2, "drop": 1, "malformed": 1, "ok": 1}


def test_dropped_connection_really_closes_the_socket() -> None:
    with running_in_thread(faults=FaultPlan(drop_first=1)) as server:
        data = json.dumps(chat_body("reason")).encode()
        request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(data)) + data
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request)
            assert sock.recv(65536) == b""  # end of stream, no status line
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    # a forwarding header does not change which connection is dropped: the server trusts no proxy
    with running_in_thread(faults=FaultPlan(drop_first=1)) as server:
        forwarded = request.replace(b"Host: x\r\n", b"Host: x\r\nX-Forwarded-For: 10.1.2.3\r\n")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(forwarded)
            assert sock.recv(65536) == b""


def test_malformed_answers_without_choices() -> None:
    with running_in_thread(faults=FaultPlan(malformed_first=1, malformed_kind="no_choices")) as server:
        status, _, raw = post(server, chat_body("reason"))
        assert status == 200 and "choices" not in json.loads(raw)
        assert "choices" in json.loads(post(server, chat_body("reason"))[2])


def test_a_request_body_nested_deeper_than_the_decoder_goes_is_a_400_not_a_500(server: LocalChatServer) -> None:
    status, _, raw = post(server, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and json.loads(raw)["error"]["message"] == "the request body is not valid JSON"
    assert post(server, chat_body("reason"))[0] == 200


def test_random_faults_are_seeded_and_independent_of_arrival_order() -> None:
    plan = FaultPlan(rate_limit_rate=0.2, server_error_rate=0.1, drop_rate=0.1, malformed_rate=0.1, seed=7)
    outcomes = [plan.outcome(f"{i:064x}", attempt) for i in range(400) for attempt in range(3)]
    assert outcomes == [plan.outcome(f"{i:064x}", attempt) for i in range(400) for attempt in range(3)]
    share = outcomes.count("ok") / len(outcomes)
    assert 0.4 < share < 0.6
    assert {"rate_limit", "server_error", "drop", "malformed"} <= set(outcomes)
    other = FaultPlan(rate_limit_rate=0.2, server_error_rate=0.1, drop_rate=0.1, malformed_rate=0.1, seed=8)
    assert outcomes != [other.outcome(f"{i:064x}", attempt) for i in range(400) for attempt in range(3)]
    assert FaultPlan(rate_limit_first=1, rate_limit_rate=0.0).outcome("x", 1) == "ok"
    with pytest.raises(ValueError):
        FaultPlan(drop_rate=0.7, malformed_rate=0.7)


def test_request_log_counts_concurrent_requests_and_is_readable_from_threads() -> None:
    with running_in_thread(faults=FaultPlan(latency_s=0.05, server_error_first=1)) as server:
        bodies = [chat_body("reason", seed=i, temperature=0.7) for i in range(8)]

        async def burst() -> list[Any]:
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=10)
            try:
                return await asyncio.gather(*(client.chat.completions.create(**b) for b in bodies * 2),
                                            return_exceptions=True)
            finally:
                await client.close()

        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.extend(server.total_requests() for _ in range(200)))
        reader.start()
        results = asyncio.run(burst())
        reader.join()
        assert sum(isinstance(r, openai.InternalServerError) for r in results) == 8
        assert server.total_requests() == 16 and server.completed_count() == 8
        assert all(server.request_log()[body_hash(b)] == (2, 1) for b in bodies)
        assert seen == sorted(seen)
        server.reset_log()
        assert server.total_requests() == 0


# --- the offline model --------------------------------------------------------------------------------------


def test_describe_reads_the_image(server: LocalChatServer) -> None:
    client = sdk(server)
    red = client.chat.completions.create(**describe_body(data_url((235, 25, 25)))).choices[0].message.content
    blue = client.chat.completions.create(**describe_body(data_url((10, 20, 110), (64, 96)))).choices[0].message.content
    assert "red" in words(red) and "blue" not in words(red) and "bright" in words(red)
    assert "blue" in words(blue) and "red" not in words(blue) and "dark" in words(blue)
    assert "landscape" in words(red) and "portrait" in words(blue)
    for text in (red, blue):
        assert 2 <= len(re.findall(r"[.!?](?:\s|$)", text)) <= 3
        assert not re.search(r"\d", text)
    # two colours and strong contrast: a white top half over a black bottom half
    image = Image.new("RGB", (80, 80), (250, 250, 250))
    image.paste((5, 5, 5), (0, 40, 80, 80))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    text = client.chat.completions.create(**describe_body(url)).choices[0].message.content
    assert {"white", "black", "strong", "square", "upper"} <= set(words(text))
    with pytest.raises(openai.BadRequestError, match="describe needs an image"):
        client.chat.completions.create(**describe_body(None))


def test_reason_names_every_emotion_in_order_within_the_word_limit(server: LocalChatServer) -> None:
    client = sdk(server)
    ranking = ["awe", "contentment", "excitement", "fear"]
    comment_words = words(parse_facts(FACTS)["comments"])
    copied = {tuple(comment_words[i:i + 6]) for i in range(len(comment_words) - 5)}
    for seed in range(6):
        text = client.chat.completions.create(**chat_body("reason", seed=seed, temperature=0.7)).choices[0].message.content
        tokens = words(text)
        assert len(text.split()) <= 80
        firsts = [tokens.index(e) for e in ranking]
        assert firsts == sorted(firsts)
        assert "sequence in time" in text and "viewers" in tokens
        assert "\n" not in text and not re.search(r"\d", text)
        assert "climber" in tokens and "ridge" in tokens  # the description's first sentence, reworded
        assert not any(tuple(tokens[i:i + 6]) in copied for i in range(len(tokens) - 5))
        assert set(tokens) & TAXONOMY <= set(ranking)
    tight = chat_body("reason", FACTS.replace("Word limit: 80", "Word limit: 30"))
    text = client.chat.completions.create(**tight).choices[0].message.content
    assert len(text.split()) <= 30 and all(e in words(text) for e in ranking)


@pytest.mark.parametrize("task", ["narrative", "causal", "evocation"])
def test_descriptive_answers_carry_emotions_and_levels_as_words(server: LocalChatServer, task: str) -> None:
    text = sdk(server).chat.completions.create(**chat_body(task)).choices[0].message.content
    tokens = words(text)
    assert all(e in tokens for e in ("awe", "contentment", "excitement", "fear"))
    assert {"valence", "arousal", "dominance", "high", "medium", "low"} <= set(tokens)
    assert not re.search(r"\d", text)


@pytest.mark.parametrize("task", ["pair_ranking", "pair_dimension"])
def test_pair_answers_carry_both_images(server: LocalChatServer, task: str) -> None:
    text = sdk(server).chat.completions.create(**chat_body(task, PAIR_FACTS)).choices[0].message.content
    tokens = words(text)
    assert all(e in tokens for e in ("joy", "surprise", "sadness", "fear", "neutral"))
    assert "high" in tokens and "low" in tokens and not re.search(r"\d", text)
    if task == "pair_dimension":
        assert "arousal" in tokens and "higher than" in text  # 0.8 reads as high, against low


def test_wording_varies_with_the_seed_and_respects_max_tokens(server: LocalChatServer) -> None:
    client = sdk(server)

    def say(**extra: Any) -> Any:
        return client.chat.completions.create(**chat_body("reason", **extra)).choices[0]

    assert say(temperature=0.7, seed=1).message.content == say(temperature=0.7, seed=1).message.content
    assert len({say(temperature=0.7, seed=s).message.content for s in range(8)}) > 1
    assert len({say(temperature=0, seed=s).message.content for s in range(4)}) == 1
    cut = say(max_tokens=12)
    assert cut.finish_reason == "length" and len(cut.message.content.split()) == 12
    with pytest.raises(openai.BadRequestError, match="unknown task"):
        client.chat.completions.create(**chat_body("summarise"))


def test_facts_parsing_and_model_without_http() -> None:
    facts = parse_facts("Intro line\nFacts:\nEmotion ranking: joy (12), fear\nComments: note: this is a comment\n"
                        "that goes on\nValence level: low\n\nAfter: the block")
    assert facts == {"emotion ranking": "joy (12), fear", "comments": "note: this is a comment that goes on",
                     "valence level": "low"}
    model = OfflineRulesModel()
    [(text, reason)] = model.complete(chat_body("causal", "Facts:\nEmotion ranking: joy (12), fear\nValence level: low"))
    assert reason == "stop" and "joy" in words(text) and "low" in words(text) and not re.search(r"\d", text)


# --- running it ---------------------------------------------------------------------------------------------


def test_main_prints_the_listening_line_and_stops_on_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-m", "eemo_pipeline.generation.offline_server", "--port", "0",
                                "--latency", "0.01", "--model", "offline-test"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        client = openai.OpenAI(base_url=match.group(1), api_key="unused", max_retries=0, timeout=10)
        assert client.chat.completions.create(**chat_body("reason")).model == "offline-test"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout:
            process.stdout.close()


def test_running_in_subprocess() -> None:
    with running_in_subprocess(latency_s=0.0) as child:
        client = openai.OpenAI(base_url=child.base_url, api_key="unused", max_retries=0, timeout=10)
        assert client.models.list().data[0].id == DEFAULT_MODEL
    assert child.process.returncode == 0
