"""How the commands print: consoles that never wrap when piped, one row emitter for every
listing (table, csv, json, markdown), and the markdown summary for a file and for GitHub
Actions' job summary.

On a terminal a table uses the terminal's width. When the output is a pipe or a file (CI,
`| grep`, `> out.txt`) nothing is wrapped or cut: a markdown row, an experiment id or a
suggested command stays on one line, whatever its length.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr
from rich.console import Console, ConsoleDimensions
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from evalkeeper.errors import InputError

if TYPE_CHECKING:
    import polars as pl

    from evalkeeper.settings import Settings

ROW_FORMATS = ("table", "csv", "json", "markdown")
PIPE_WIDTH = 1_000_000
"""The width a console renders at when its output is not a terminal: wider than any line."""
RULE_WIDTH = 80
"""A horizontal rule off a terminal (a rule has no natural width)."""


def _escapes() -> dict[int, str]:
    codes = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    table = {c: f"\\x{c:02x}" for c in codes if chr(c) not in "\n\t"}
    for c in [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[c] = f"\\u{c:04x}"
    return table


TERMINAL_ESCAPES = _escapes()
"""What `terminal_safe` replaces: control characters (C0 but line feed and tab, DEL, C1)
as `\\x1b`, and the bidirectional marks and overrides (U+200E, U+200F, U+202A–U+202E,
U+2066–U+2069) as `\\u202e`."""


def terminal_safe(text: str) -> str:
    """`text` as a terminal may show it: no escape sequence (a title change, colours, a
    cursor move) and no bidirectional override from data reaches the terminal; each such
    character is written out as its escape (`\\x1b`, `\\u202e`). Tables and every console
    print go through it; JSON and CSV output stay exact."""
    return text.translate(TERMINAL_ESCAPES)


class OutputConsole(Console):
    """A rich Console: the terminal's width on a terminal; never a wrap or a cut otherwise.

    The width is decided at each print from where the output goes now, so a console made
    at import follows `sys.stdout` when it is replaced (a test runner's capture).

    Text from data never reaches the terminal raw: control and bidirectional-override
    characters print escaped (`terminal_safe`), in strings before the layout (so a table
    keeps its columns) and in every other text segment as a last resort. Rich's own
    control segments (styles, cursor moves of a progress bar) are left alone."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(terminal_safe(text), **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            s if s.control else Segment(terminal_safe(s.text), s.style, s.control) for s in buffer
        )

    @property
    def size(self) -> ConsoleDimensions:
        if self.is_terminal:
            return super().size
        return ConsoleDimensions(PIPE_WIDTH, super().size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    def rule(self, title: str | Text = "", *, characters: str = "─", **kwargs: Any) -> None:
        """A rule across the terminal, or `RULE_WIDTH` columns off one."""
        rule = Rule(title, characters=characters, **kwargs)
        self.print(rule, width=None if self.is_terminal else RULE_WIDTH)


def make_console(*, stderr: bool = False) -> OutputConsole:
    return OutputConsole(stderr=stderr)


class FormatError(InputError, ValueError):
    """An output format a command does not offer."""


def check_format(value: str, allowed: Sequence[str]) -> str:
    """`value` if the command offers it, else a FormatError: `--format 'x': use table, csv or json`."""
    if value not in allowed:
        raise FormatError(f"--format {value!r}: use {_one_of(allowed)}")
    return value


def _one_of(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# -- values ---------------------------------------------------------------------------------


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z` (a naive datetime from the warehouse is UTC already)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """A value JSON can carry: times as ISO 8601 UTC, NaN and infinities as null, secrets masked."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, SecretStr):
        return str(value)  # pydantic's mask, never the secret
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value)


def plain(value: Any) -> str:
    """A value as one cell of text (csv, markdown): times ISO 8601 UTC, lists and dicts as
    JSON, booleans as true/false, nothing as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(jsonable(value), ensure_ascii=False)
    converted = jsonable(value)
    return "" if converted is None else str(converted)


def display(value: Any) -> str:
    """A value as a terminal table shows it (times to the second, in UTC; control and
    bidirectional-override characters escaped, see `terminal_safe`)."""
    if isinstance(value, datetime):
        return iso_utc(value).replace("T", " ").removesuffix("Z")[:19]
    return terminal_safe(plain(value))


# -- rows -----------------------------------------------------------------------------------


def _as_rows(
    rows: Sequence[Mapping[str, Any]] | pl.DataFrame, columns: Sequence[str] | None
) -> tuple[list[Mapping[str, Any]], list[str]]:
    if hasattr(rows, "to_dicts") and hasattr(rows, "columns"):  # a polars frame
        frame: Any = rows
        return frame.to_dicts(), list(columns or frame.columns)
    listed = list(rows)
    if columns is None:
        columns = list(listed[0]) if listed else []
    return listed, list(columns)


def markdown_cell(value: Any) -> str:
    """A cell of a markdown pipe table: `|` escaped, line breaks as <br>."""
    text = plain(value).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\n", "<br>")


def render_rows(
    rows: Sequence[Mapping[str, Any]] | pl.DataFrame,
    format: str,
    columns: Sequence[str] | None = None,
) -> str:
    """Rows as csv, json (an array of objects) or a markdown pipe table, ending in a newline."""
    listed, cols = _as_rows(rows, columns)
    if format == "json":
        payload = [{c: jsonable(r.get(c)) for c in cols} for r in listed]
        return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if cols:
            writer.writerow(cols)
        writer.writerows([plain(r.get(c)) for c in cols] for r in listed)
        return buf.getvalue()
    if format == "markdown":
        if not cols:
            return ""
        lines = [
            "| " + " | ".join(markdown_cell(c) for c in cols) + " |",
            "| " + " | ".join("---" for _ in cols) + " |",
        ]
        lines += ["| " + " | ".join(markdown_cell(r.get(c)) for c in cols) + " |" for r in listed]
        return "\n".join(lines) + "\n"
    raise FormatError(f"--format {format!r}: use {_one_of(ROW_FORMATS)}")


def rows_table(
    rows: Sequence[Mapping[str, Any]] | pl.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Table:
    """Rows as a rich table. Cells are text, never markup; a long cell folds on a narrow
    terminal instead of losing its end to an ellipsis."""
    listed, cols = _as_rows(rows, columns)
    table = Table(title=title)
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in listed:
        table.add_row(*[Text(display(r.get(c))) for c in cols])
    return table


def emit_rows(
    rows: Sequence[Mapping[str, Any]] | pl.DataFrame,
    format: str,
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print rows (dicts or a polars frame) to stdout as a table, csv, json or markdown.
    `columns` picks and orders the columns (default: all, in order)."""
    if format == "table":
        (console or make_console()).print(rows_table(rows, columns, title=title))
        return
    sys.stdout.write(render_rows(rows, format, columns))
    sys.stdout.flush()


# -- markdown summaries -----------------------------------------------------------------------


class SummaryWriteError(InputError, ValueError):
    """The markdown summary could not be written where it was asked for."""


def markdown_document(text: str) -> str:
    """The bytes a markdown summary is printed and written as: the text and one newline."""
    return text.rstrip("\n") + "\n"


def write_markdown_summary(text: str, path: Path | None, settings: Settings) -> list[Path]:
    """Write the markdown to `path` (`--markdown FILE`, replaced) and append it to GitHub
    Actions' job summary (`GITHUB_STEP_SUMMARY`, through `settings.github_step_summary`)
    when it is set. Returns the files written."""
    document = markdown_document(text)
    written: list[Path] = []
    targets: list[tuple[Path, str, str]] = []
    if path is not None:
        targets.append((path, "w", "--markdown"))
    if settings.github_step_summary is not None:
        targets.append((settings.github_step_summary, "a", "GITHUB_STEP_SUMMARY"))
    for target, mode, origin in targets:
        try:
            with target.open(mode, encoding="utf-8") as fh:
                fh.write(document)
        except OSError as exc:
            raise SummaryWriteError(
                f"{origin} {target}: cannot write the summary ({exc.strerror or exc}); "
                "check that its folder exists and is writable"
            ) from exc
        written.append(target)
    return written


def print_gate_result(
    comparison: BaseModel, markdown: str, format: str, console: Console | None = None
) -> None:
    """What `gate` prints for its verdict: `markdown` is byte for byte what
    `write_markdown_summary` writes; `json` the comparison; `table` the summary on the console."""
    if format == "markdown":
        sys.stdout.write(markdown_document(markdown))
    elif format == "json":
        sys.stdout.write(comparison.model_dump_json(indent=2) + "\n")
    else:
        (console or make_console()).print(markdown, markup=False, highlight=False)
    sys.stdout.flush()
