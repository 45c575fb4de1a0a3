"""Which chat requests of the offline server fail, and how: a plan counted per distinct request body.

Faults are counted per ``body_hash``: the first ``rate_limit_first`` requests of a body get 429 with
``Retry-After``, the next ``server_error_first`` get 500, the next ``drop_first`` have their connection closed
without an answer, the next ``malformed_first`` get 200 with a broken body, the next ``unauthorized_first`` get
a 401 whose message quotes the key the request carried (as some gateways do); after that a body is answered,
except where the seeded random mode (``*_rate``, ``seed``) draws a fault from (seed, body hash, attempt
number), which is the same whatever order concurrent requests arrive in. ``latency_s`` is the time from a
request's arrival to its answer, 500, malformed body or dropped connection (the model's own work is part of
it); a 429, a 401 and a 400 (invalid request) come at once.

Whole-endpoint faults: ``down`` answers every chat request with 503 at once, ``hang_s`` holds every request
that long before anything else happens. Answers that come with HTTP 200 but are not what was asked for:
``answer_text`` replaces the content of every answer (a refusal, terminal escapes and NUL, a megabyte without
a blank, a lone surrogate), ``answer_model`` names another model in every answer, ``usage_value`` replaces every
token count of the ``usage`` block (e.g. ``"n/a"``, ``10**400``); with ``altered_only_for`` these three apply only to
requests whose body holds that text (one bad answer among good ones). Bodies that are no answer in time or size:
``retry_after_date`` sends the 429's ``Retry-After`` as an HTTP-date ``retry_after_s`` ahead instead of seconds,
``flood_mib`` answers every chat request with HTTP 200 and an endless-looking chunked body of that many MiB (never a
completion), ``drip_s`` sends every answer one byte at a time, one every ``drip_s`` seconds. An endpoint that is away
altogether (restarting) is a stopped server: ``LocalChatServer.running_in_thread`` may be entered again on the same
port.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_KINDS = ("rate_limit", "server_error", "drop", "malformed", "unauthorized")


@dataclass(frozen=True)
class FaultPlan:
    """Which chat requests fail, and how; counted per distinct request body (``body_hash``).

    The first-N faults come in this order for each body: ``rate_limit_first`` 429s (with ``Retry-After:
    retry_after_s``), ``server_error_first`` 500s, ``drop_first`` closed connections, ``malformed_first``
    broken 200s (``malformed_kind``: ``"invalid_json"``, ``"no_choices"`` or ``"deep_nesting"``: 100,000 nested
    arrays, deeper than a JSON decoder's stack), ``unauthorized_first`` 401s
    quoting the request's key. Later requests of that body are answered, unless the random mode draws a fault:
    with probability ``rate_limit_rate``, ``server_error_rate``, ``drop_rate``, ``malformed_rate``,
    ``unauthorized_rate`` (summing to at most 1), decided by
    ``seed``, the body hash and the request's number within its body, so a run is reproducible.
    """

    latency_s: float = 0.0
    rate_limit_first: int = 0
    retry_after_s: float = 1.0
    server_error_first: int = 0
    drop_first: int = 0
    malformed_first: int = 0
    malformed_kind: str = "invalid_json"
    unauthorized_first: int = 0
    rate_limit_rate: float = 0.0
    server_error_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    unauthorized_rate: float = 0.0
    seed: int = 0
    down: bool = False
    hang_s: float = 0.0
    answer_text: str | None = None
    answer_model: str | None = None
    usage_value: object = None
    altered_only_for: str = ""
    retry_after_date: bool = False
    flood_mib: int = 0
    drip_s: float = 0.0

    def __post_init__(self) -> None:
        if min(self.latency_s, self.retry_after_s, self.hang_s, self.flood_mib, self.drip_s) < 0:
            raise ValueError("latency_s, retry_after_s, hang_s, flood_mib and drip_s must be >= 0")
        firsts = self._firsts()
        if any(n < 0 for n in firsts):
            raise ValueError("the *_first fault counts must be >= 0")
        rates = self._rates()
        if any(r < 0 for r in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")
        if self.malformed_kind not in ("invalid_json", "no_choices", "deep_nesting"):
            raise ValueError("malformed_kind must be 'invalid_json', 'no_choices' or 'deep_nesting'")

    def _firsts(self) -> tuple[int, ...]:
        return tuple(getattr(self, f"{kind}_first") for kind in FAULT_KINDS)

    def _rates(self) -> tuple[float, ...]:
        return tuple(getattr(self, f"{kind}_rate") for kind in FAULT_KINDS)

    def outcome(self, digest: str, attempt: int) -> str:
        """``"ok"`` or the fault kind for the ``attempt``-th (0-based) request of the body ``digest``."""
        left = attempt
        for kind, count in zip(FAULT_KINDS, self._firsts()):
            if left < count:
                return kind
            left -= count
        rates = self._rates()
        if any(rates):
            draw = random.Random(f"{self.seed}:{digest}:{attempt}").random()
            edge = 0.0
            for kind, rate in zip(FAULT_KINDS, rates):
                edge += rate
                if draw < edge:
                    return kind
        return "ok"

    def alters(self, raw_body: bytes) -> bool:
        """Whether ``answer_text``, ``answer_model`` and ``usage_value`` apply to the request with this body."""
        return not self.altered_only_for or self.altered_only_for.encode("utf-8") in raw_body
