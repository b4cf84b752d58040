"""The page and chart layer every report is built on, opened in a real headless Chromium."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from evalkeeper.report.html import charts
from evalkeeper.report.html.page import Html, Page, Section, esc, table
from tests.report.browser import open_report


def _forest() -> object:
    import altair as alt

    rows = [
        {"cell": "a", "diff": -0.12, "lo": -0.2, "hi": -0.04},
        {"cell": "b", "diff": 0.01, "lo": -0.05, "hi": 0.07},
        {"cell": "c", "diff": 0.03, "lo": -0.02, "hi": 0.08},
    ]
    base = alt.Chart(charts.records(rows)).encode(y=alt.Y("cell:N"))
    return base.mark_rule().encode(x="lo:Q", x2="hi:Q") + base.mark_point().encode(x="diff:Q")


def test_a_page_with_a_chart_opens_from_disk_offline(tmp_path: Path) -> None:
    hostile = '<script>fetch("https://example.com/x")</script><img src="https://example.com/p.png">'
    page = Page(
        title="experiment exp-1",
        verdict="regression",
        summary=["cancellation dropped", hostile],
        facts=[("commit", "abc123"), ("note", hostile)],
        sections=[
            Section(
                "Paired differences",
                [charts.to_svg(_forest(), name="forest", description="diff with 95% CI")],
            ),
            Section(
                "Rows",
                [
                    table(
                        ["id", "output", "q"],
                        [["r1", hostile, 0.0123456]],
                        name="rows",
                        numeric=[2],
                    )
                ],
            ),
        ],
    )
    out = page.write(tmp_path / "report.html")
    text = out.read_text()
    assert "<script" not in text  # the hostile text is escaped, and no chart needs a script
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]
    with open_report(out) as opened:
        assert opened.marks("forest") == 6  # 3 rules + 3 points
        assert opened.table("rows") == [["r1", hostile, "0.01235"]]
        assert opened.console_errors == [] and opened.page_errors == []
        assert opened.requests_out == []
        assert opened.page.query_selector('[data-verdict="regression"]') is not None
    assert opened.screenshot is not None and opened.screenshot.stat().st_size > 1000
    with open_report(out, width=390, height=844) as phone:  # a phone: the page does not overflow
        overflow = phone.page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert overflow is False


def test_a_report_is_readable_like_any_file_the_user_writes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = Page(title="t").write(tmp_path / "r.html")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_escaping_and_an_empty_table() -> None:
    assert esc(None) == "—" and esc(Html("<b>x</b>")) == "<b>x</b>" and esc("<b>") == "&lt;b&gt;"
    assert "nothing to show" in table(["a"], [], name="t")


def test_backquoted_names_in_a_reason_are_code_and_the_rest_is_escaped() -> None:
    from evalkeeper.report.html.page import bullets, prose

    assert (
        prose("`contains` / <b>: `a<b`") == "<code>contains</code> / &lt;b&gt;: <code>a&lt;b</code>"
    )
    assert "<li><code>x</code> dropped</li>" in bullets(["`x` dropped"], name="s")
