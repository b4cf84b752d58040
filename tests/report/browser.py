"""Open a report the way a reader does: headless Chromium (Debian's `chromium`), from
`file://`, with every request that would leave the page blocked and counted.

`open_report(path)` returns what a test asserts on: the page (Playwright), the console
errors, the requests the page tried to make beyond its own file, and a screenshot saved
beside the report. Chromium is the system's (`/usr/bin/chromium`, or EVALKEEPER_CHROMIUM);
`.ci/run` installs it when it is missing and sets EVALKEEPER_REQUIRE_BROWSER, so there a
missing browser fails; elsewhere the browser tests are skipped, saying how to install it.
Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("EVALKEEPER_CHROMIUM") or shutil.which("chromium")
    if not path:
        why = (
            "headless Chromium is needed to open the reports: `apt-get install chromium` "
            "(or set EVALKEEPER_CHROMIUM); .ci/run installs it"
        )
        if os.environ.get("EVALKEEPER_REQUIRE_BROWSER"):  # CI: a missing browser fails
            pytest.fail(why)
        pytest.skip(why)
    return path


@dataclass
class Opened:
    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests_out: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    def marks(self, chart: str) -> int:
        """How many data marks (the items of Vega's `role-mark` groups: no axis, legend or
        title) the chart named `chart` has in the DOM; -1 when there is no such chart."""
        return int(
            self.page.evaluate(
                """(name) => {
                  const fig = document.querySelector(`figure[data-chart="${name}"]`);
                  if (!fig) return -1;
                  return fig.querySelectorAll('g.role-mark > :is(path,rect,line,text,circle)').length;
                }""",
                chart,
            )
        )

    def table(self, name: str) -> list[list[str]]:
        """The text of each body row of the table named `name` ([] when absent)."""
        return list(
            self.page.evaluate(
                """(name) => Array.from(
                    document.querySelectorAll(`table[data-table="${name}"] tbody tr`)
                  ).map(tr => Array.from(tr.children).map(td => td.innerText.trim()))""",
                name,
            )
        )

    def text(self, selector: str = "body") -> str:
        return str(self.page.inner_text(selector))


@contextmanager
def open_report(path: Path, *, width: int = 1280, height: int = 900) -> Iterator[Opened]:
    """Open `path` in headless Chromium; network blocked; screenshot to `path`.png."""
    sync_api = pytest.importorskip("playwright.sync_api")
    url = Path(path).resolve().as_uri()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            opened = Opened(page=page)

            def route(r: Any) -> None:
                if r.request.url == url:
                    r.continue_()
                else:
                    opened.requests_out.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page.on(
                "console",
                lambda m: opened.console_errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: opened.page_errors.append(str(e)))
            page.goto(url, wait_until="load")
            shot = Path(path).with_suffix(f".{width}.png")
            page.screenshot(path=str(shot), full_page=True)
            opened.screenshot = shot
            yield opened
        finally:
            browser.close()
