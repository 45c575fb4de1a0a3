"""Versioned prompt templates: one Markdown file per template under ``generation/templates/``.

File layout::

    ---
    name: reason            # the file's stem
    version: "1"            # bump on any wording change: the cache key and the answers carry it
    role: reasoner          # describer (vision model) or reasoner (text model)
    word_limit: 200         # the answer's word budget, checked by the stage validators
    description: ...
    ---

    ## system
    ... a line ``Task: <name>`` ...

    ## user
    ... free text with {placeholders} ...

    Facts:
    Emotion ranking: {ranking}
    Word limit: {word_limit}

Conventions an offline rule-based model and the validators rely on: the system section holds the line
``Task: <name>``; the user section ends with a block whose first line is ``Facts:`` followed only by
``key: value`` lines with keys from ``FACT_KEYS``. Placeholders are ``{identifier}`` (any other brace is
literal text); values substituted into the Facts block are collapsed onto one line so every fact stays a
single ``key: value`` line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

TEMPLATE_PACKAGE = "eemo_pipeline.generation"
TEMPLATE_FOLDER = "templates"
ROLES: tuple[str, ...] = ("describer", "reasoner")
# Templates that may carry an image entry in their user message (the vision model's role).
IMAGE_ROLES: tuple[str, ...] = ("describer",)
FACTS_HEADER = "Facts:"
VAD_DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")
FACT_KEYS: frozenset[str] = frozenset(
    {
        "Emotion ranking",
        "Dominant emotion",
        "Valence level",
        "Arousal level",
        "Dominance level",
        "Description",
        "Comments",
        "Reasoning",
        "Distractors",
        "Dimension",
        "Image A ranking",
        "Image B ranking",
        "Image A description",
        "Image B description",
        "Word limit",
        *(f"Image {image} {dimension} level" for image in "AB" for dimension in VAD_DIMENSIONS),
    }
)
# Model output placed in a later prompt (a description, a reasoning paragraph) sits between these markers, and
# the templates that take such text tell the model it is quoted data, not instructions.
QUOTE_OPEN, QUOTE_CLOSE = "<<<", ">>>"
_FENCE_MARKER = re.compile(r"<{3,}|>{3,}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SECTION = re.compile(r"^##\s+(\w+)\s*$")
_FRONT_MATTER_KEYS = ("name", "version", "role", "word_limit", "description")


def quoted(text: str) -> str:
    """``text`` (model output) fenced as quoted data: between ``<<<`` and ``>>>``, with any run of three or more
    ``<`` or ``>`` inside removed so the text cannot close the fence and speak as the prompt."""
    return f"{QUOTE_OPEN}{_FENCE_MARKER.sub('', str(text)).strip()}{QUOTE_CLOSE}"


def unquoted(value: str) -> str:
    """The text inside a ``quoted`` value (``value`` itself when it is not fenced)."""
    value = value.strip()
    if value.startswith(QUOTE_OPEN) and value.endswith(QUOTE_CLOSE):
        return value[len(QUOTE_OPEN):-len(QUOTE_CLOSE)].strip()
    return value


class TemplateError(ValueError):
    """A template file breaks the layout or the conventions above."""


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    role: str
    word_limit: int
    system: str
    user: str

    @property
    def id(self) -> str:
        """``<name>@v<version>``: what cache payloads and answers record."""
        return f"{self.name}@v{self.version}"

    @property
    def fields(self) -> frozenset[str]:
        """Every placeholder of the system and user sections."""
        return frozenset(_PLACEHOLDER.findall(self.system)) | frozenset(_PLACEHOLDER.findall(self.user))

    def render(self, *, image_data_url: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """OpenAI chat messages (system, user) with ``fields`` substituted for the placeholders.

        A placeholder without a field raises KeyError naming it; a field the template does not use raises
        TypeError (it is a caller's typo). Values go through ``str``; inside the Facts block, runs of
        whitespace (newlines included) become one space. ``image_data_url`` (describer templates only) puts an
        ``image_url`` entry before the text of the user message, which then becomes a list of parts.
        """
        unused = sorted(set(fields) - self.fields)
        if unused:
            raise TypeError(f"template {self.id} has no placeholder for {unused}; it uses {sorted(self.fields)}")
        system = _substitute(self.system, fields, self.id, one_line=False)
        head, facts = _split_facts(self.user)
        user = _substitute(head, fields, self.id, one_line=False) + _substitute(facts, fields, self.id, one_line=True)
        content: str | list[dict[str, Any]] = user
        if image_data_url is not None:
            if self.role not in IMAGE_ROLES:
                raise ValueError(f"template {self.id} (role {self.role}) takes no image")
            if not isinstance(image_data_url, str) or not image_data_url:
                raise ValueError("image_data_url must be a non-empty data URL string")
            content = [
                {"type": "image_url", "image_url": {"url": image_data_url}},
                {"type": "text", "text": user},
            ]
        return [{"role": "system", "content": system}, {"role": "user", "content": content}]


def _substitute(text: str, fields: dict[str, Any], template_id: str, *, one_line: bool) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fields:
            raise KeyError(f"template {template_id} needs field {name!r}")
        rendered = str(fields[name])
        return " ".join(rendered.split()) if one_line else rendered

    return _PLACEHOLDER.sub(value, text)


def _split_facts(user: str) -> tuple[str, str]:
    """The user text before the last ``Facts:`` line, and the Facts block from that line on."""
    lines = user.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == FACTS_HEADER]
    if not starts:
        return user, ""
    cut = starts[-1]
    return "\n".join(lines[:cut]) + "\n", "\n".join(lines[cut:])


def facts_block(user: str) -> dict[str, str]:
    """The ``key: value`` lines of a (rendered or raw) user section's final Facts block, in order.

    Raises TemplateError when there is no Facts block or it holds anything but ``key: value`` lines.
    """
    head, facts = _split_facts(user)
    if not facts:
        raise TemplateError("the user section has no 'Facts:' block")
    entries: dict[str, str] = {}
    for line in facts.split("\n")[1:]:
        if not line.strip():
            raise TemplateError("the Facts block must end the user section with no blank lines inside it")
        key, sep, value = line.partition(": ")
        if not sep or not key.strip():
            raise TemplateError(f"Facts line {line!r} is not 'key: value'")
        entries[key.strip()] = value.strip()
    if not entries:
        raise TemplateError("the Facts block is empty")
    return entries


def _template_dir() -> Any:
    return resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_FOLDER)


@functools.cache
def template_names() -> tuple[str, ...]:
    """Names of the packaged templates, sorted."""
    return tuple(sorted(entry.name[:-3] for entry in _template_dir().iterdir() if entry.name.endswith(".md")))


@functools.cache
def load_template(name: str) -> Template:
    """The packaged template ``name`` (read once, then cached); ValueError for an unknown name."""
    known = template_names()
    if name not in known:
        raise ValueError(f"unknown prompt template {name!r}; known templates: {', '.join(known)}")
    text = _template_dir().joinpath(f"{name}.md").read_text(encoding="utf-8")
    try:
        return parse_template(text, expected_name=name)
    except TemplateError as error:
        raise TemplateError(f"template file {name}.md: {error}") from None


def parse_template(text: str, expected_name: str | None = None) -> Template:
    """Parse and check one template file's text (front matter, ``## system``, ``## user``)."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        raise TemplateError("must start with a '---' YAML front matter line")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise TemplateError("front matter is not closed by a '---' line") from None
    meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    if not isinstance(meta, dict):
        raise TemplateError("front matter must be a YAML mapping")
    missing = [key for key in _FRONT_MATTER_KEYS if key not in meta]
    if missing:
        raise TemplateError(f"front matter lacks {missing}")
    name, version, role, word_limit = str(meta["name"]), str(meta["version"]), str(meta["role"]), meta["word_limit"]
    if not _NAME.match(name):
        raise TemplateError(f"name {name!r} must be lower-case letters, digits and underscores")
    if expected_name is not None and name != expected_name:
        raise TemplateError(f"front matter name {name!r} differs from the file name {expected_name!r}")
    if role not in ROLES:
        raise TemplateError(f"role {role!r} is not one of {ROLES}")
    if not isinstance(word_limit, int) or isinstance(word_limit, bool) or word_limit <= 0:
        raise TemplateError(f"word_limit {word_limit!r} must be a positive integer")

    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines[end + 1:]:
        heading = _SECTION.match(line)
        if heading:
            current = heading.group(1).lower()
            if current in sections:
                raise TemplateError(f"section '## {current}' appears twice")
            sections[current] = []
        elif current is None:
            if line.strip():
                raise TemplateError("text before the first '## system' section")
        else:
            sections[current].append(line)
    if sorted(sections) != ["system", "user"]:
        raise TemplateError(f"needs exactly the sections '## system' and '## user', found {sorted(sections)}")
    system = "\n".join(sections["system"]).strip()
    user = "\n".join(sections["user"]).strip()
    if f"Task: {name}" not in (line.strip() for line in system.split("\n")):
        raise TemplateError(f"the system section lacks the line 'Task: {name}'")
    unknown = [key for key in facts_block(user) if _PLACEHOLDER.sub(_dimension_sample, key) not in FACT_KEYS]
    if unknown:
        raise TemplateError(f"Facts keys {unknown} are not among the known keys {sorted(FACT_KEYS)}")
    return Template(name=name, version=version, role=role, word_limit=word_limit, system=system, user=user)


def _dimension_sample(match: re.Match[str]) -> str:
    # Keys such as "Image A {dimension} level" are checked with a sample dimension.
    return VAD_DIMENSIONS[0] if match.group(1) == "dimension" else match.group(0)
