"""The offline server over HTTP: a Starlette app served by uvicorn on the loopback interface only.

It answers ``POST /v1/chat/completions`` with ``OfflineRulesModel`` and ``GET /v1/models`` in the OpenAI shape
(also without the ``/v1`` prefix), over HTTP/1.1 with keep-alive and ``Content-Length`` or chunked request
bodies; it injects the faults of a ``FaultPlan`` and keeps a request log: per body hash, requests received and
requests answered with a valid completion. Tests, the embedded sample and benchmarks point the generation
client at it instead of a real endpoint (``vllm serve``, DeepSeek).

Run it alone with ``python -m eemo_pipeline.generation.offline_server --port 8765 --latency 0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.utils import get_remote_addr

from eemo_pipeline.generation.offline_server.chat_api import (
    DEFAULT_MODEL,
    LOOPBACK_HOSTS,
    MAX_BODY_BYTES,
    BadRequest,
    body_hash,
    count_tokens,
    error_payload,
    text_of,
)
from eemo_pipeline.generation.offline_server.faults import FAULT_KINDS, FaultPlan
from eemo_pipeline.generation.offline_server.rules_model import OfflineRulesModel
from eemo_pipeline.generation.processes import end_with_parent
from eemo_pipeline.settings import read_secret

ANSWER_CACHE_SIZE = 1024  # answers kept per body hash: retries of a body cost no model work
# Clients keep pooled connections for a whole batch; closing idle ones early would race their next request.
KEEP_ALIVE_S = 600
STOP_GRACE_S = 5.0  # requests still running when the server stops get this long to finish
MIB = 1024 * 1024


def _check_loopback(host: str) -> str:
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the local chat server binds to the loopback interface only ({', '.join(LOOPBACK_HOSTS)}), "
                         f"not {host!r}")
    return "127.0.0.1" if host == "localhost" else host


def _invalid(status: int, message: str, *, code: str | None = None, param: str | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_payload(message, "invalid_request_error", code, param), status, headers)


def _closing(status: int, message: str) -> JSONResponse:
    """An error after which the connection closes: the rest of the request body is not read."""
    return _invalid(status, message, headers={"Connection": "close"})


class _DroppedConnection(Response):
    """The drop fault: the connection closes without any answer."""

    def __init__(self, transport: asyncio.BaseTransport):
        super().__init__()
        self._transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._transport.close()
        while (await receive())["type"] != "http.disconnect":  # until the server has noted the close
            pass


class _ConnectionGate:
    """Checks the API key before any route (401 without it), and says on every response whether the
    connection stays open (HTTP/1.1 keeps it unless the client asked to close)."""

    def __init__(self, app: ASGIApp, server: LocalChatServer):
        self.app, self.server = app, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # only HTTP: no websockets, no lifespan
        headers = Headers(scope=scope)
        keep_alive = scope["http_version"] == "1.1" and "close" not in headers.get("connection", "").lower()

        async def send_with_connection(message: Message) -> None:
            if (keep_alive and message["type"] == "http.response.start"
                    and not any(name == b"connection" for name, _ in message.get("headers", []))):
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"keep-alive")]}
            await send(message)

        if not self.server.authorized(headers.get("authorization", "")):
            self.server.note("unauthorized")
            refusal = _invalid(401, "Incorrect API key provided.", code="invalid_api_key")
            await refusal(scope, receive, send_with_connection)
            return
        await self.app(scope, receive, send_with_connection)


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
        self._events: list[tuple[float, str]] = []  # (monotonic time, "arrival" or outcome) of chat requests
        self._connections = 0
        self._streamed: list[int] = []  # bytes of each flood or drip body sent before it ended or the client left
        self._transports: dict[tuple[str, int] | None, asyncio.BaseTransport] = {}  # by client address
        self._answers: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()  # body hash -> choices (LRU)
        self._created = int(time.time())
        routes = [Route(f"{prefix}/chat/completions", self._chat, methods=["POST"]) for prefix in ("/v1", "")]
        routes += [Route(f"{prefix}{path}", self._models, methods=["GET"])
                   for prefix in ("/v1", "") for path in ("/models", "/models/{model:path}")]
        self.app = Starlette(routes=routes, middleware=[Middleware(_ConnectionGate, server=self)],
                             exception_handlers={HTTPException: self._http_error})

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
        unauthorized, down, not_found, models."""
        with self._lock:
            return dict(self._outcomes)

    def events(self) -> list[tuple[float, str]]:
        """``(time.monotonic(), what)`` in order: ``arrival`` when a chat request's body is in, then its outcome
        when its answer (or refusal) is sent; the same clock as the client's in this process."""
        with self._lock:
            return list(self._events)

    def streamed_bytes(self) -> list[int]:
        """Bytes of each flood or drip body the server sent before the body ended or the client closed."""
        with self._lock:
            return list(self._streamed)

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
            self._events.clear()
            self._streamed.clear()
            self._connections = 0

    def note(self, outcome: str, digest: str | None = None, completed: bool = False) -> None:
        """Counts a request that ended with ``outcome`` (and, when ``completed``, a valid completion of ``digest``)."""
        with self._lock:
            self._outcomes[outcome] += 1
            self._events.append((time.monotonic(), outcome))
            if completed and digest is not None:
                self._completed[digest] = self._completed.get(digest, 0) + 1

    def authorized(self, header: str) -> bool:
        """Whether an ``Authorization`` header carries the key (always, when the server has none)."""
        if self._api_key is None:
            return True
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("utf-8"), self._api_key)

    # -- running

    @contextmanager
    def running_in_thread(self, timeout_s: float = 10.0) -> Iterator[LocalChatServer]:
        """Serves from a daemon thread for the ``with`` block; yields the server (its port is bound by then)."""
        sock = self._listen()
        # No proxy stands in front: the client address stays the peer's own (the drop fault finds its transport by it).
        server = uvicorn.Server(uvicorn.Config(
            self.app, http=self._tracked_protocol(), ws="none", lifespan="off", proxy_headers=False,
            log_config=None, log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=STOP_GRACE_S))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="eemo-offline-server",
                                  daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        try:
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError("the local chat server stopped while starting")
                if time.monotonic() > deadline:
                    raise TimeoutError("the local chat server did not start in time")
                time.sleep(0.005)
            yield self
        finally:
            server.should_exit = True
            thread.join(timeout_s + STOP_GRACE_S)
            sock.close()

    def _listen(self) -> socket.socket:
        """The listening socket, bound before the server starts: ``port`` 0 becomes the port the system chose."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return sock

    def _tracked_protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol, counting connections and keeping each transport for the drop fault."""
        server = self

        class TrackedProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self._eemo_peer = get_remote_addr(transport)  # type: ignore[arg-type]  # what scope["client"] holds
                server._transports[self._eemo_peer] = transport
                with server._lock:
                    server._connections += 1
                super().connection_made(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                server._transports.pop(self._eemo_peer, None)
                super().connection_lost(exc)

        return TrackedProtocol

    # -- HTTP

    async def _http_error(self, request: Request, error: HTTPException) -> Response:
        if error.status_code == 404:
            self.note("not_found")
            return _invalid(404, f"no route {request.method} {request.url.path}")
        allowed = (error.headers or {}).get("Allow", "")
        return _invalid(error.status_code, f"{request.method} is not allowed here; use {allowed}", headers=error.headers)

    async def _models(self, request: Request) -> Response:
        self.note("models")
        card = {"id": self.model, "object": "model", "created": self._created, "owned_by": "eemo-pipeline"}
        wanted = request.path_params.get("model", "").strip("/")
        if not wanted:
            return JSONResponse({"object": "list", "data": [card]})
        if wanted == self.model:
            return JSONResponse(card)
        return _invalid(404, f"the model {wanted!r} does not exist", code="model_not_found")

    async def _body(self, request: Request) -> bytes | Response:
        """The request body, or the error response when it is missing or over ``max_body_bytes``."""
        length = request.headers.get("content-length")
        if length is None and "chunked" not in request.headers.get("transfer-encoding", "").lower():
            return _closing(411, "a Content-Length or chunked body is required")
        if length is not None and int(length) > self.max_body_bytes:
            return _closing(413, "request body too large")
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return _closing(413, "request body too large")
            parts.append(chunk)
        return b"".join(parts)

    async def _chat(self, request: Request) -> Response:
        raw = await self._body(request)
        if isinstance(raw, Response):
            return raw
        arrived = time.monotonic()
        with self._lock:
            self._events.append((arrived, "arrival"))
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested deeper than the decoder goes
            self.note("bad_request")
            return _invalid(400, "the request body is not valid JSON")
        if not isinstance(body, dict):
            self.note("bad_request")
            return _invalid(400, "the request body must be a JSON object")
        digest = body_hash(body)
        with self._lock:
            attempt = self._received.get(digest, 0)
            self._received[digest] = attempt + 1
        plan = self.faults
        if plan.hang_s and await self._hang(request, plan.hang_s):
            self.note("hang")  # the client gave up first
            return Response(status_code=499)
        if plan.down:
            self.note("down")
            return JSONResponse(error_payload("Service unavailable (injected fault: the endpoint is down).",
                                              "server_error"), 503)
        if plan.flood_mib:
            self.note("flood")
            return self._streamed_body(self._flood(plan.flood_mib))
        outcome = plan.outcome(digest, attempt)
        if outcome == "unauthorized":  # a gateway that quotes the key it refused
            self.note("unauthorized")
            header = request.headers.get("authorization", "")
            token = header.partition(" ")[2]
            return _invalid(401, f"Incorrect API key provided: {token}. You sent the header "
                                 f"'Authorization: {header}' (injected fault).", code="invalid_api_key")
        if outcome == "rate_limit":  # a gateway refuses at once
            self.note("rate_limit")
            wait = formatdate(time.time() + plan.retry_after_s, usegmt=True) if plan.retry_after_date \
                else f"{plan.retry_after_s:g}"
            return JSONResponse(error_payload("Rate limit reached (injected fault); retry later.", "rate_limit_error",
                                              "rate_limit_exceeded"), 429, {"Retry-After": wait})
        choices: list[tuple[str, str]] = []
        if outcome == "ok":
            try:
                choices = self._answer(body, digest)
            except BadRequest as error:  # request validation answers at once, too
                self.note("bad_request")
                return _invalid(400, error.message, param=error.param)
        # the latency counts from the request's arrival, so the model's own work is part of it
        delay = plan.latency_s - (time.monotonic() - arrived)
        if delay > 0:
            await asyncio.sleep(delay)
        if outcome == "server_error":
            self.note("server_error")
            return JSONResponse(error_payload("The server had an error (injected fault).", "server_error"), 500)
        if outcome == "drop":
            self.note("drop")
            return _DroppedConnection(self._transports[request.client])
        if outcome == "malformed":
            self.note("malformed")
            if plan.malformed_kind == "no_choices":
                return JSONResponse({"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                                     "created": int(time.time()), "model": self.model})
            if plan.malformed_kind == "deep_nesting":
                return Response(b"[" * 100_000 + b"]" * 100_000, media_type="application/json")
            return Response(b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess',
                            media_type="application/json")
        prompt_tokens = sum(count_tokens(text_of(m.get("content"))) for m in body["messages"])
        altered = plan.alters(raw)
        if plan.answer_text is not None and altered:
            choices = [(plan.answer_text, "stop") for _ in choices]
        completion_tokens = sum(count_tokens(text) for text, _ in choices)
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                 "total_tokens": prompt_tokens + completion_tokens}
        if plan.usage_value is not None and altered:
            usage = dict.fromkeys(usage, plan.usage_value)
        self.note("ok", digest, completed=True)
        # ASCII JSON: a lone surrogate in an injected answer travels as its escape, as a server written in another
        # language may send it.
        completion = json.dumps({
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": (plan.answer_model if altered else None) or self.model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
                        for i, (text, reason) in enumerate(choices)],
            "usage": usage,
        }).encode("ascii")
        if plan.drip_s:
            return self._streamed_body(self._drip(completion, plan.drip_s))
        return Response(completion, media_type="application/json")

    def _streamed_body(self, chunks: AsyncIterator[bytes]) -> StreamingResponse:
        """A chunked 200 of ``chunks``, counting the bytes sent (``streamed_bytes``) until it ends or the client
        closes the connection."""
        async def counted() -> AsyncIterator[bytes]:
            sent = 0
            try:
                async for chunk in chunks:
                    yield chunk
                    sent += len(chunk)
            finally:
                with self._lock:
                    self._streamed.append(sent)

        return StreamingResponse(counted(), media_type="application/json")

    @staticmethod
    async def _flood(mib: int) -> AsyncIterator[bytes]:
        """The start of a completion whose content never ends: ``mib`` MiB in 1 MiB chunks."""
        yield b'{"choices": [{"message": {"content": "' + b"x" * (MIB - 38)
        for _ in range(mib - 1):
            yield b"x" * MIB
            await asyncio.sleep(0)

    @staticmethod
    async def _drip(body: bytes, seconds: float) -> AsyncIterator[bytes]:
        for index in range(len(body)):
            yield body[index:index + 1]
            await asyncio.sleep(seconds)

    @staticmethod
    async def _hang(request: Request, seconds: float) -> bool:
        """Holds the request ``seconds``; True as soon as the client has gone away (nothing is left to answer)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return True
            await asyncio.sleep(0.05)
        return False

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
    """The server as ``python -m eemo_pipeline.generation.offline_server`` on a free port, for the ``with`` block.

    For throughput benchmarks: a client in the same process competes with an in-thread server for the GIL.
    The request log stays in the child; use ``running_in_thread`` where a test reads it.
    """
    command = [sys.executable, "-m", "eemo_pipeline.generation.offline_server", "--port", "0",
               "--latency", str(latency_s), "--model", model, *extra_args]
    # Ends with the thread that started it, however that ends (a SIGKILLed demo left it serving for ever).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=end_with_parent())
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
    parser = argparse.ArgumentParser(prog="python -m eemo_pipeline.generation.offline_server",
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


def main(argv: list[str] | None = None) -> int:
    """Serves until SIGTERM or SIGINT; prints ``listening on <base URL>`` as its first line once it accepts."""
    parser = _parser()
    args = parser.parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = read_secret(args.api_key_env)
        if not api_key:
            parser.error(f"the environment variable {args.api_key_env} is not set")
    faults = FaultPlan(
        latency_s=args.latency, retry_after_s=args.retry_after, seed=args.seed,
        **{f"{kind}_first": getattr(args, f"{kind}_first") for kind in FAULT_KINDS},
        **{f"{kind}_rate": getattr(args, f"{kind}_rate") for kind in FAULT_KINDS},
    )
    server = LocalChatServer(args.host, args.port, model=args.model, faults=faults, api_key=api_key)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked before the server thread starts, so that thread inherits the mask and this one takes the signal.
    # Restored however it ends: a mask left blocking is inherited by every process started later from this one
    # (`eemo serve-offline` failing on a used port in a test left Dagster's compute-log `tail` unkillable).
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        with server.running_in_thread():
            print(f"listening on {server.base_url}", flush=True)
            signal.sigwait(stop_signals)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return 0
