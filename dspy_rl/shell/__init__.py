"""Real shell environments: the namespace sandbox (:mod:`dspy_rl.shell.sandbox`) and what runs on it."""
