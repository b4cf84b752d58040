"""Bundled evaluators. Importing this package registers them with `evalkeeper.registry`."""

from evaluators import heuristic, judges, reference, structural

__all__ = ["heuristic", "judges", "reference", "structural"]
