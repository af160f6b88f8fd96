"""Read-only views of runs and the trace store: ``dspy-rl rl report | recent | verify-storage``."""
