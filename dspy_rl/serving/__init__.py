"""OpenAI-compatible HTTP services: ``serve lm`` (a local Hugging Face LM) and ``serve proxy`` (a recording proxy)."""
