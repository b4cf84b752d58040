"""Exit codes of the command line, in one place (the README documents them)."""

EXIT_OK = 0
"""Success; for `gate` and `compare`: the verdict is pass."""
EXIT_REGRESSION = 1
"""`gate`/`compare`: the verdict is regression."""
EXIT_ERROR = 2
"""Bad input, an incomplete run, or (`gate`/`compare`) an inconclusive verdict."""
EXIT_RUN_FAILED = 3
"""`run`/`score`: every row is stored, but the target's or an evaluator's error share is
above EVALKEEPER_MAX_ERROR_RATE."""
EXIT_UPLOAD_FAILED = 4
"""`run --upload`/`gate --upload`/`upload`: the experiment is recorded locally, but its
LangSmith upload failed (the message says why; uploading again sends the rest). A gate's
regression or inconclusive code takes precedence."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: the rows already written are kept; the same command with --experiment resumes."""
EXIT_BUG = 70
"""A bug (EX_SOFTWARE): an exception that is not an input error, in evalkeeper or in the
target or evaluator it ran. Its traceback is on stderr; never 1, which means regression."""
