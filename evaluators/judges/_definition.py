"""A judge as data: rubric, choices, prompt template and answer schema, content-versioned."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from evalkeeper.models import content_hash

PROMPTS_DIR = Path(__file__).parent / "prompts"
USER_MARKER = "<!-- user -->"
"""In a prompt file, the line that ends the system message and starts the user message."""

SYSTEM_FIELDS = frozenset({"rubric", "choices"})
DATA_FIELDS = frozenset({"inputs", "outputs", "reference_outputs", "context"})
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

Message = dict[str, str]


@dataclass(frozen=True)
class Passage:
    """One retrieved context passage (groundedness)."""

    id: str
    text: str


@dataclass(frozen=True)
class Judge:
    """One LLM judge. Everything that shapes its verdicts is here, and in its version.

    The prompt template has two parts split by the line `<!-- user -->`: the system message
    (with `{{rubric}}` and `{{choices}}`) and the user message (with `{{inputs}}`,
    `{{outputs}}`, `{{reference_outputs}}`, `{{context}}`), each in XML-tagged sections.
    """

    name: str
    description: str
    rubric: str
    template: str
    kind: Literal["judge", "groundedness"] = "judge"
    choices: tuple[str, ...] = ("pass", "fail")
    pass_choice: str = "pass"
    extra_fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Answer fields between `reasoning` and `verdict` (e.g. `unsupported_claims`)."""
    temperature: float = 0.7
    """Votes are samples: a temperature above 0 makes them independent-ish."""
    max_tokens: int = 1000

    def __post_init__(self) -> None:
        if USER_MARKER not in self.template:
            raise ValueError(f"judge {self.name!r}: prompt template has no {USER_MARKER!r} line")
        unknown = set(_PLACEHOLDER.findall(self.template)) - SYSTEM_FIELDS - DATA_FIELDS
        if unknown:
            raise ValueError(f"judge {self.name!r}: unknown placeholders {sorted(unknown)}")
        if self.pass_choice not in self.choices or len(set(self.choices)) < 2:
            raise ValueError(
                f"judge {self.name!r}: choices {self.choices} must be distinct, at least two, "
                f"and include the pass choice {self.pass_choice!r}"
            )

    @classmethod
    def from_file(cls, name: str, *, path: Path | None = None, **fields: Any) -> Judge:
        """A judge whose prompt template is `prompts/<name>.md` (or `path`)."""
        source = path or PROMPTS_DIR / f"{name}.md"
        return cls(name=name, template=source.read_text(encoding="utf-8"), **fields)

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The structured answer: `reasoning` first, any extra fields, then `verdict`."""
        properties: dict[str, Any] = {
            "reasoning": {
                "type": "string",
                "description": "Step-by-step reasoning, written before the verdict.",
            },
            **{k: dict(v) for k, v in self.extra_fields.items()},
            "verdict": {"type": "string", "enum": list(self.choices)},
        }
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }

    @cached_property
    def prompt_version(self) -> str:
        """Content hash of everything that shapes a verdict: change any of it, get a new one."""
        return content_hash(
            {
                "template": self.template,
                "rubric": self.rubric,
                "choices": list(self.choices),
                "pass_choice": self.pass_choice,
                "schema": self.schema,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            },
            12,
        )

    def render(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        reference_outputs: Any = None,
        context: Sequence[Passage] = (),
    ) -> list[Message]:
        """The chat messages for one example: system (rubric) + user (the data)."""
        system, user = self.template.split(USER_MARKER, 1)
        values = {
            "rubric": self.rubric.strip(),
            "choices": ", ".join(f'"{c}"' for c in self.choices),
            "inputs": show(inputs),
            "outputs": show(outputs),
            "reference_outputs": show(reference_outputs),
            "context": "\n".join(f'<passage id="{p.id}">\n{p.text}\n</passage>' for p in context)
            or "(no passages)",
        }

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text).strip()

        return [
            {"role": "system", "content": fill(system)},
            {"role": "user", "content": fill(user)},
        ]


def show(value: Any) -> str:
    """Data for a prompt: strings as they are, anything else as stable, indented JSON."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def passages(value: Any) -> list[Passage]:
    """Normalise retrieved context: a list of {id, text} dicts (or `content`/`page_content`),
    or plain strings (numbered p1, p2, …)."""
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        value = [value]
    out = []
    for i, item in enumerate(value, 1):
        if isinstance(item, Mapping):
            text = item.get("text") or item.get("content") or item.get("page_content") or ""
            pid = item.get("id") or item.get("source") or f"p{i}"
            out.append(Passage(id=str(pid), text=str(text)))
        else:
            out.append(Passage(id=f"p{i}", text=str(item)))
    return out
