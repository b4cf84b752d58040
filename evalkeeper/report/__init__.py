"""What people read: markdown summaries, terminal tables, artifact payloads."""

from evalkeeper.report.markdown import render_markdown
from evalkeeper.report.table import render_table

__all__ = ["render_markdown", "render_table"]
