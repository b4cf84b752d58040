"""Production traffic in: the trace model, sources (JSONL, OTLP), redaction, the trace store."""
