"""``dspy-rl dashboard``: a local web UI and JSON API over runs, sweeps, auto mode, the trace store and the machine.

:func:`dspy_rl.dashboard.app.create_app` builds the FastAPI app (served by uvicorn or as a Ray Serve deployment,
:mod:`dspy_rl.dashboard.serve`); the readers in :mod:`~dspy_rl.dashboard.runs`, :mod:`~dspy_rl.dashboard.sweeps`
and :mod:`~dspy_rl.dashboard.traces` only read files under the configured directories.
"""
