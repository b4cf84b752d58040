"""Production traffic in: the trace model, trace sources, redaction, sampling, the trace store."""
