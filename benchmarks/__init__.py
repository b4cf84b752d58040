"""Benchmarks for the figures issue 2 asks for; run each as `uv run python benchmarks/NAME.py`."""
