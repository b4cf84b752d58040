"""The page every report shares: a title, a verdict badge, facts, sections, and one inline
stylesheet that reads on a laptop and on a phone (tables scroll sideways, charts scale).

Everything from data is escaped here (`esc`); a builder passes text, never markup, except
the `Html` pieces this module and `charts` make. The file is written whole or not at all
(a temporary file beside it, then a rename)."""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _version() -> str:
    try:
        return version("evalkeeper")
    except PackageNotFoundError:  # a source tree that was never installed
        return "(source)"


class Html(str):
    """Markup made by this package: inserted as is. Any other `str` is escaped."""


def esc(value: Any) -> Html:
    """`value` as text in HTML: None is an em dash, floats keep 4 significant digits."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("—")
    if isinstance(value, float):
        return Html(html.escape(f"{value:.4g}"))
    return Html(html.escape(str(value), quote=True))


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    name: str,
    numeric: Sequence[int] = (),
    empty: str = "nothing to show",
) -> Html:
    """A table (`data-table=name`); cells are escaped unless `Html`; `numeric` columns align
    right. No rows gives a one-line note instead of an empty table."""
    body = [
        "<tr>"
        + "".join(
            f'<td class="num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    ]
    if not body:
        return Html(f'<p class="empty" data-table="{esc(name)}">{esc(empty)}</p>')
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return Html(
        f'<div class="scroll"><table data-table="{esc(name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def facts(pairs: Iterable[tuple[str, Any]]) -> Html:
    """Label: value pairs (ids, commit, branch, links) as a definition list."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs)
    return Html(f'<dl class="facts">{items}</dl>')


def link(href: str, text: str) -> Html:
    return Html(f'<a href="{esc(href)}" rel="noopener">{esc(text)}</a>')


_CODE = re.compile(r"`([^`\n]+)`")


def prose(value: Any) -> Html:
    """A sentence from the analysis (a reason, a warning): escaped, and its `backquoted`
    names and commands set as code, as the markdown summary shows them."""
    if isinstance(value, Html):
        return value
    return Html(_CODE.sub(r"<code>\1</code>", esc(value)))


def bullets(items: Iterable[Any], *, name: str) -> Html:
    lis = "".join(f"<li>{prose(i)}</li>" for i in items)
    return Html(f'<ul data-list="{esc(name)}">{lis}</ul>') if lis else Html("")


def badge(verdict: str) -> Html:
    """The verdict (pass, regression, inconclusive, rollback, …) as a coloured label."""
    kind = {
        "pass": "ok", "passed": "ok", "stable": "ok", "healthy": "ok",
        "regression": "bad", "rollback": "bad", "retired": "bad",
    }.get(verdict.lower(), "warn")  # fmt: skip
    return Html(f'<span class="badge {kind}" data-verdict="{esc(verdict)}">{esc(verdict)}</span>')


@dataclass
class Section:
    title: str
    body: Sequence[Html]
    name: str = ""
    note: str = ""

    def render(self) -> Html:
        note = f'<p class="note">{esc(self.note)}</p>' if self.note else ""
        anchor = esc(self.name or self.title.lower().replace(" ", "-"))
        return Html(
            f'<section id="{anchor}" data-section="{anchor}"><h2>{esc(self.title)}</h2>{note}'
            + "".join(self.body)
            + "</section>"
        )


@dataclass
class Page:
    title: str
    verdict: str | None = None
    summary: Sequence[str] = ()
    facts: Sequence[tuple[str, Any]] = ()
    sections: list[Section] = field(default_factory=list)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def render(self) -> str:
        head = badge(self.verdict) if self.verdict else ""
        summary = bullets(self.summary, name="summary")
        toc = "".join(
            f'<a href="#{esc(s.name or s.title.lower().replace(" ", "-"))}">{esc(s.title)}</a>'
            for s in self.sections
        )
        body = "".join(s.render() for s in self.sections)
        stamp = self.generated_at.strftime("%Y-%m-%d %H:%M UTC")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body><main>"
            f"<header><h1>{esc(self.title)} {head}</h1>{summary}{facts(self.facts)}"
            f"<nav>{toc}</nav></header>{body}<footer>evalkeeper {esc(_version())} · "
            f"written {esc(stamp)}</footer></main></body></html>\n"
        )

    def write(self, path: Path) -> Path:
        """Write the page to `path` whole (a temporary file, then a rename); return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.render())
            os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary file: mkstemp makes it 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


STYLE = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);line-height:1.45}
body{margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:1rem;background:#fff}
h1{font-size:1.4rem;margin:.2rem 0 .6rem}h2{font-size:1.15rem;border-bottom:1px solid var(--line);
padding-bottom:.2rem;margin-top:1.8rem}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-size:.9rem;color:#fff;
vertical-align:middle}.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.badge.warn{background:var(--warn)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;font-size:.9rem}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
nav{display:flex;flex-wrap:wrap;gap:.4rem .9rem;font-size:.9rem;margin:.6rem 0}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.85rem;min-width:100%}
th,td{border-bottom:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
td pre,pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:.8rem;max-width:40rem}
figure.chart{margin:.8rem 0}figure.chart svg{width:100%;height:auto}
code{font-size:.88em;background:#f0f2f5;padding:0 .2em;border-radius:3px}
figcaption,.note,.empty,footer{color:var(--muted);font-size:.85rem}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.5rem}
@media (max-width:600px){main{padding:.5rem}h1{font-size:1.15rem}table{font-size:.78rem}}
"""
