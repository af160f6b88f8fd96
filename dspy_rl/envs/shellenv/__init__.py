"""ShellEnv: ToolEnv's contract on real workspaces, every tool a command run in the sandbox (dspy_rl.shell).

``env.ShellVecEnv`` (also ``VecToolEnv(..., backend="shell")``), ``workspaces`` (envs/workspaces/ and their
per-episode copies), ``tools`` (command templates and fact detectors), ``suite`` (shell suites: a symbolic suite
whose tasks name a workspace and a verifier), ``text_env`` (the multi-turn text view for LLM policies).
"""
