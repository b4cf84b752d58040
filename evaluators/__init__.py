"""Bundled evaluators. Importing this package registers them with `evalkeeper.registry`."""

from evaluators import heuristic, judges, online, reference, structural

__all__ = ["heuristic", "judges", "online", "reference", "structural"]
