"""The `evalkeeper` console script's entry point, light to import.

Worker processes started with multiprocessing's `spawn` (the trace store's redaction
workers) import the parent's main module again; for the console script that is this
module, so the command line (typer, SciPy, Polars, the HTTP app: about 3 s and 180 MB)
is imported only when the command runs, never by a worker.
"""

from __future__ import annotations


def main() -> None:
    """Run the `evalkeeper` command line."""
    from evalkeeper.cli import main as cli_main

    cli_main()
