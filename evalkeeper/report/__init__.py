"""What people read: markdown, terminal tables, machine-readable listings, artifact payloads."""

from evalkeeper.report.markdown import render_markdown
from evalkeeper.report.table import render_table

__all__ = ["render_markdown", "render_table"]
