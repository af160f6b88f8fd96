"""Judges of agent answers and the ensemble that serves them on Ray Serve.

Judges (:mod:`.rubric`, :mod:`.embedding`, :mod:`.transformer`, :mod:`.llm`) share the interface in
:mod:`.base`; :mod:`.ensemble` fans out under a deadline and aggregates; :mod:`.app` is the Serve application
(``dspy-rl serve judges``); :mod:`.client` scores batches from Python (the GRPO reward function).
Heavy modules (torch, transformers, Ray Serve) are imported only where used.
"""

from dspy_rl.judges.base import InvalidItem, Judge, JudgeItem, JudgeScore

__all__ = ["InvalidItem", "Judge", "JudgeItem", "JudgeScore"]
