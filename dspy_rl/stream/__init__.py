"""Streaming: the event bus (Kafka or JSONL files), the Kafka → trace-store ingester with its delivery
guarantees, the no-broker JSONL source, multi-process ingest, and the continuous ingest → mine → GRPO loop.

Entry point: ``dspy-rl stream ingest|train|produce|export`` (:mod:`dspy_rl.cli.stream`).
"""
