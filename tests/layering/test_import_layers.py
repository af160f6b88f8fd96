"""The import graph of ``dspy_rl`` (read with ``ast``, every import including those inside functions) runs only
downwards through the layers below, and has no cycle, neither between modules nor between packages.

Layers, bottom to top (a module may import its own layer or a lower one):

* foundations: the package root (``conf_dir()``), config composition, run infrastructure (``utils/``);
* core: envs, models, policies, learners, runners, the evaluator, traces, judges, control, ...;
* drivers: the trainer, text GRPO, streaming, sweeps, ... (they may use each other, without cycles);
* commands: ``dspy_rl/cli/`` and ``python -m dspy_rl``.

A new top-level package or module must be placed in :data:`LAYERS` (the test names it otherwise).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import dspy_rl

PACKAGE = Path(dspy_rl.__file__).resolve().parent

#: top-level name under dspy_rl -> layer (0 = bottom). "" is the package root (dspy_rl/__init__.py).
LAYERS: dict[str, int] = {
    **dict.fromkeys(["", "config", "utils", "system", "_rust_env"], 0),
    **dict.fromkeys(
        [
            "envs",
            "models",
            "policies",
            "learners",
            "runners",
            "evaluation",
            "traces",
            "judges",
            "control",
            "shell",
        ],
        1,
    ),
    **dict.fromkeys(
        ["trainer", "grpo", "stream", "sweeps", "serving", "integrations", "inspection", "dashboard"], 2
    ),
    **dict.fromkeys(["cli", "__main__"], 3),
}
LAYER_NAMES = ("foundations", "core", "drivers", "commands")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["dspy_rl", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _import_graph() -> dict[str, set[str]]:
    """module -> the dspy_rl modules it imports (``from pkg import name`` resolves to ``pkg.name`` when that is a
    module, else to ``pkg``)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{a.name}" for a in node.names]
            for target in targets:
                if target == "dspy_rl" or target.startswith("dspy_rl."):
                    resolved = resolve(target)
                    if resolved and resolved != mod:
                        graph[mod].add(resolved)
        graph.setdefault(mod, set())
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_every_top_level_package_has_a_layer():
    unplaced = sorted({_top(m) for m in _modules()} - set(LAYERS))
    assert not unplaced, f"place these in LAYERS of {__file__}: {unplaced}"


def test_no_import_runs_up_a_layer():
    upward = [
        f"{mod} ({LAYER_NAMES[LAYERS[_top(mod)]]}) imports {dep} ({LAYER_NAMES[LAYERS[_top(dep)]]})"
        for mod, deps in sorted(_import_graph().items())
        for dep in sorted(deps)
        if _top(mod) in LAYERS and _top(dep) in LAYERS and LAYERS[_top(dep)] > LAYERS[_top(mod)]
    ]
    assert not upward, "imports running up the layers:\n" + "\n".join(upward)


def test_no_module_cycle():
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles between modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_package_cycle():
    packages: dict[str, set[str]] = defaultdict(set)
    for mod, deps in _import_graph().items():
        packages[_top(mod)] |= {_top(d) for d in deps if _top(d) != _top(mod)}
    # the root (conf_dir, __version__) imports nothing, so edges into it cannot close a cycle
    cycles = _cycles(dict(packages))
    assert not cycles, "import cycles between packages:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_graph_is_read_correctly():
    """The checker sees real edges (a reader that finds no imports would pass everything above)."""
    graph = _import_graph()
    assert "dspy_rl.config" in graph["dspy_rl.trainer.config"]
    assert "dspy_rl.trainer" in graph["dspy_rl.cli.train"]
    assert {"dspy_rl.evaluation", "dspy_rl.runners.pool"} <= graph["dspy_rl.trainer.trainer"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
