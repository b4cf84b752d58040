"""Fakes that are real implementations, for tests and benchmarks (no mocks of our code)."""
