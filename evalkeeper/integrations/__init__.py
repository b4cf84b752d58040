"""Integrations with other platforms, each optional: nothing here is needed without them."""
