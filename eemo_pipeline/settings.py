"""The pipeline's settings, read from the environment in this one module, with every variable name built here.

``Settings.from_env()`` gives where outputs, the Dagster instance, the data set and benchmark roots, the base
model, the VAD lexicon, the data contracts and the AesE answer key are, and each language-model role's endpoint.
Of an API key only the *name* of its variable is kept (``EndpointSettings.key_variable``); ``read_secret`` reads
the value when a client is built, so a key never reaches settings, logs, metadata or files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

STORAGE_ENV = "EEMO_STORAGE"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
BASE_MODEL_ENV = "EEMO_BASE_MODEL"
LEXICON_ENV = "EEMO_VAD_LEXICON"
CONTRACTS_ENV = "EEMO_CONTRACTS"
AESBENCH_KEY_ENV = "EEMO_AESBENCH_ANSWER_KEY"

DEFAULT_STORAGE = Path(".eemo") / "storage"
DEFAULT_DAGSTER_HOME = Path(".eemo") / "dagster_home"
# The contract files ship inside the package (eemo_pipeline/data_contracts is a link to the repository's
# data_contracts/ folder, followed when the wheel is built), so an installed wheel finds them without EEMO_CONTRACTS.
PACKAGED_CONTRACTS = Path(__file__).resolve().parent / "data_contracts"

# What an endpoint variable names: EEMO_<ROLE>_BASE_URL, EEMO_<ROLE>_MODEL, EEMO_<ROLE>_API_KEY.
ENDPOINT_ITEMS = ("base_url", "model", "api_key")
_ROOT_VARIABLE = re.compile(r"EEMO_([A-Z0-9_]+)_ROOT")
_ENDPOINT_VARIABLE = re.compile(r"EEMO_([A-Z0-9_]+)_(BASE_URL|MODEL)")
# Names that look like a role's endpoint variable but are settings of their own (EEMO_BASE_MODEL is no role "base").
_NOT_ENDPOINTS = {BASE_MODEL_ENV}


def root_variable(name: str) -> str:
    """``EEMO_<NAME>_ROOT``: the root folder of a source data set or a benchmark (``emotion6``, ``eemo_bench``)."""
    return f"EEMO_{name.upper()}_ROOT"


def endpoint_variable(role: str, item: str) -> str:
    """``EEMO_<ROLE>_BASE_URL``, ``_MODEL`` or ``_API_KEY`` of a language-model role."""
    if item not in ENDPOINT_ITEMS:
        raise ValueError(f"unknown endpoint item {item!r}; known: {', '.join(ENDPOINT_ITEMS)}")
    return f"EEMO_{role.upper()}_{item.upper()}"


def read_secret(variable: str) -> str | None:
    """The value of the secret variable ``variable`` (an API key), read only when it is used and never stored."""
    return os.environ.get(variable) or None


def child_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``variables`` on top: the whole environment of a program started in this
    process's place (``eemo ui`` runs ``dagster dev`` with ``DAGSTER_HOME`` set)."""
    return {**os.environ, **variables}


REDACTED = "[redacted]"
_KEY_VARIABLE = re.compile(r"EEMO_[A-Z0-9_]+_API_KEY")
_BEARER_TOKEN = re.compile(r"(\bBearer\s+)\S+", re.IGNORECASE)
MIN_SECRET_CHARS = 6  # shorter values ("EMPTY", a placeholder) are not searched for: they would mangle prose


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every configured key (each ``EEMO_<ROLE>_API_KEY`` value and ``secrets``) and every token
    after ``Bearer `` replaced by ``[redacted]``: for any text taken from a response or an exception before it
    is stored (quarantine reasons, logs, metadata)."""
    values = {read_secret(name) for name in os.environ if _KEY_VARIABLE.fullmatch(name)} | set(secrets)
    for value in sorted((v for v in values if v and len(v) >= MIN_SECRET_CHARS), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _BEARER_TOKEN.sub(lambda match: match.group(1) + REDACTED, text)


# The language-model roles, and the sampling each gets unless configured otherwise: the describer (a vision model,
# paper 3.2) writes short factual descriptions at a low temperature; the reasoner and the judge sample freely.
ENDPOINT_ROLES = ("describer", "reasoner", "judge")
ROLE_SAMPLING: dict[str, dict[str, float | int]] = {
    "describer": {"temperature": 0.2, "max_tokens": 256},
    "reasoner": {"temperature": 0.7, "max_tokens": 600},
    "judge": {"temperature": 0.7, "max_tokens": 512},
}


class EndpointNotConfigured(ValueError):
    """No base URL or model for a role, or a base URL that is not one."""


_USERINFO = re.compile(r"//[^/@]*@")


def parse_base_urls(text: str, variable: str) -> tuple[str, ...]:
    """The base URLs in ``text``: one, or several separated by commas (replicas serving the same model), each an
    http(s) URL with a host, without credentials (the key goes in ``EEMO_<ROLE>_API_KEY``), none twice (a trailing
    ``/`` aside). ``EndpointNotConfigured`` naming ``variable`` and the entry otherwise; ``()`` for empty text."""
    if not text.strip():
        return ()
    urls: list[str] = []
    seen: dict[str, str] = {}
    for position, entry in enumerate(text.split(","), start=1):
        url = entry.strip()
        problem = None
        if not url:
            problem = "is empty (two commas, or one at an end)"
        else:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises ValueError for a port that is no number in range
            except ValueError as error:
                problem = f"is not a URL ({error})"
            else:
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    problem = "is not an http(s) URL with a host"
                elif parts.username is not None or parts.password is not None:
                    problem = f"carries credentials: put the key in {variable.removesuffix('BASE_URL')}API_KEY"
                elif url.rstrip("/") in seen:
                    problem = f"repeats entry {seen[url.rstrip('/')]}"
        if problem:
            shown = _USERINFO.sub(f"//{REDACTED}@", url)
            raise EndpointNotConfigured(f"{variable}: entry {position} {shown!r} {problem}; expected one URL or "
                                        "several separated by commas, e.g. http://10.0.0.1:8000/v1,"
                                        "http://10.0.0.2:8000/v1")
        seen[url.rstrip("/")] = str(position)
        urls.append(url)
    return tuple(urls)


@dataclass(frozen=True)
class EndpointSettings:
    """One OpenAI-compatible endpoint of a role: where it is, which model it serves and how the client treats it.

    The one description of an endpoint: built once at an edge (``Settings.from_env``, the ``LLMEndpointResource``,
    an ``eemo assess`` spec) and handed down to the client unchanged. Empty ``base_url`` or ``model`` mean not
    configured (``require``); ``base_url`` may list several replicas (``base_urls``). Of the key only the variable's name is known (``key_variable``); ``api_key`` is set
    only from a Dagster ``EnvVar`` (the resource's field) and is never shown (``repr``, ``public``)."""

    role: str
    # One URL, or several separated by commas: replicas of one model, among which the client spreads requests.
    base_url: str = ""
    model: str = ""
    concurrency: int = 16
    timeout_s: float = 120.0  # total time of one request: sending it and reading the whole answer
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    temperature: float = 0.7
    max_tokens: int = 512
    # The longest wait a 429's Retry-After may ask for: a longer one fails the item at once, naming it.
    retry_after_cap_s: float = 60.0
    # The largest response body read; a longer one is cut off there and the request retried.
    max_response_bytes: int = 32 * 1024 * 1024
    # Total time of one item (its requests, retries, waits and second sample) once its first request starts; time
    # spent waiting for an endpoint that went away (below) does not count.
    item_budget_s: float = 600.0
    # An endpoint that stops answering (connection refused, 502-504) is probed at GET /models every
    # health_interval_s; items wait for it up to outage_wait_s, then fail naming the outage.
    outage_wait_s: float = 600.0
    health_interval_s: float = 5.0
    # An item whose answers were rejected in this many runs is no longer asked (counted in the response cache).
    max_item_runs: int = 3
    # A batch fails when more than this share of the items it asked failed (and always when none was answered).
    max_failed_share: float = 0.5
    api_key: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def for_role(cls, role: str, **values: object) -> EndpointSettings:
        """The role's endpoint with its sampling defaults (``ROLE_SAMPLING``) under ``values``."""
        return cls(role=role, **{**ROLE_SAMPLING.get(role, {}), **values})  # type: ignore[arg-type]

    @property
    def key_variable(self) -> str:
        """The variable that holds this role's API key (its name only)."""
        return endpoint_variable(self.role, "api_key")

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The replicas' base URLs, in the order given (``parse_base_urls``; raises naming the variable)."""
        return parse_base_urls(self.base_url, endpoint_variable(self.role, "base_url"))

    @property
    def identity(self) -> str:
        """What answers this endpoint's requests, whichever replica sends them: its base URLs, sorted, joined by
        commas (a single URL is itself)."""
        return ",".join(sorted(self.base_urls))

    def require(self) -> EndpointSettings:
        """This endpoint, or ``EndpointNotConfigured`` naming the variables to set when its URL or model is empty, or
        the entry of ``base_url`` that is not a URL."""
        missing = [endpoint_variable(self.role, item) for item in ("base_url", "model") if not getattr(self, item)]
        if missing:
            raise EndpointNotConfigured(
                f"the {self.role} endpoint is not configured: set {' and '.join(missing)} (or the run config), "
                f"e.g. a local `vllm serve` at http://127.0.0.1:8000/v1"
            )
        self.base_urls  # noqa: B018 - validates every entry
        return self

    def public(self) -> dict[str, object]:
        """Every field but the key: what may be shown in metadata and logs, and handed on as run config."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name != "api_key"}


@dataclass(frozen=True)
class Settings:
    """Where everything is; ``None`` or a missing name means not configured."""

    storage: Path = DEFAULT_STORAGE
    dagster_home: Path = DEFAULT_DAGSTER_HOME
    roots: Mapping[str, Path] = field(default_factory=dict)  # by source or benchmark name
    endpoints: Mapping[str, EndpointSettings] = field(default_factory=dict)  # by role
    base_model: Path | None = None
    lexicon: Path | None = None
    contracts_dir: Path = PACKAGED_CONTRACTS
    aesbench_answer_key: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings that ``environ`` (default: this process's environment) gives; empty values count as unset."""
        env = {name: value for name, value in (os.environ if environ is None else environ).items() if value}
        roots = {match.group(1).lower(): Path(value).expanduser()
                 for name, value in env.items() if (match := _ROOT_VARIABLE.fullmatch(name))}
        endpoint_values: dict[str, dict[str, str]] = {}
        for name, value in env.items():
            if (match := _ENDPOINT_VARIABLE.fullmatch(name)) and name not in _NOT_ENDPOINTS:
                endpoint_values.setdefault(match.group(1).lower(), {})[match.group(2).lower()] = value

        def optional(name: str) -> Path | None:
            return Path(env[name]).expanduser() if name in env else None

        return cls(
            storage=Path(env.get(STORAGE_ENV, DEFAULT_STORAGE)).expanduser().resolve(),
            dagster_home=Path(env.get(DAGSTER_HOME_ENV, DEFAULT_DAGSTER_HOME)).expanduser().resolve(),
            roots=roots,
            endpoints={role: EndpointSettings.for_role(role, **values) for role, values in endpoint_values.items()},
            base_model=optional(BASE_MODEL_ENV),
            lexicon=optional(LEXICON_ENV),
            contracts_dir=Path(env[CONTRACTS_ENV]) if CONTRACTS_ENV in env else PACKAGED_CONTRACTS,
            aesbench_answer_key=optional(AESBENCH_KEY_ENV),
        )

    def root(self, name: str) -> Path | None:
        """The configured root folder of a source or benchmark, or None."""
        return self.roots.get(name)

    def endpoint(self, role: str) -> EndpointSettings:
        """The role's endpoint (empty URL and model when it is not configured)."""
        return self.endpoints.get(role) or EndpointSettings.for_role(role)

    def environment(self) -> dict[str, str]:
        """The variables that give these settings (``from_env`` of them gives them back), for a child process
        that must see them. No key is among them: a child inherits its parent's key variables."""
        variables = {STORAGE_ENV: str(self.storage), DAGSTER_HOME_ENV: str(self.dagster_home),
                     CONTRACTS_ENV: str(self.contracts_dir)}
        variables |= {root_variable(name): str(root) for name, root in self.roots.items()}
        for role, endpoint in self.endpoints.items():
            variables |= {endpoint_variable(role, item): getattr(endpoint, item)
                          for item in ("base_url", "model") if getattr(endpoint, item)}
        optional = {BASE_MODEL_ENV: self.base_model, LEXICON_ENV: self.lexicon, AESBENCH_KEY_ENV: self.aesbench_answer_key}
        return variables | {name: str(value) for name, value in optional.items() if value is not None}
