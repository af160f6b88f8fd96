"""Integrations with agent frameworks (DSPy)."""
