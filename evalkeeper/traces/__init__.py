"""Production traces: the trace model, sources, redaction, sampling and the trace store."""
