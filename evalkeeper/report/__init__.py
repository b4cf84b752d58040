"""What people read: markdown, terminal tables, machine-readable listings, artifact payloads."""
