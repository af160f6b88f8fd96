"""Learners: loss cores and update steps (PPO, GRPO) shared by env and text training."""
