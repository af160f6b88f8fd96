"""Text GRPO: grouped-JSONL datasets, online sampling against a reward function, and the trainer loop.

The loss itself lives in :mod:`dspy_rl.learners.grpo` (shared with env GRPO).
"""
