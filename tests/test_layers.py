"""The package's imports go one way (ARCHITECTURE.md's layer order) and form no cycle.

ARCHITECTURE.md draws "train -> checkpoint dir": the directory is what training leaves behind. The
module ``ganaug.checkpoint`` that writes and reads it sits below ``train`` (train saves through it).

Read from the source with ``ast`` (every ``import``, at module level or inside a function: a lazy
import is still an arrow). Module ``ganaug.a.b`` belongs to the layer of ``a``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ganaug"

# floor first; one arrow may point to its own layer or below, never above
LAYERS = [
    {"", "io", "config", "plot", "errors", "env"},   # the package root, file I/O, presets, the spectrogram plot, user
                                                     # errors, the torch/torchaudio pair and the device
    {"audio"},
    {"data"},
    {"models", "functional", "spectral"},
    {"checkpoint"},                      # reads/writes the checkpoint dir; train writes through it
    {"train"},
    {"augment"},
    {"integrations"},
    {"kws", "ablation"},
    {"metrics", "report", "listen"},
    {"demo", "cli"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """``{module: {ganaug modules it imports}}`` over every .py file of the package."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for i, layer in enumerate(LAYERS):
        if part in layer:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_layers.py; add it where ARCHITECTURE.md puts it")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_init(module: str, target: str) -> bool:
    """``ganaug.x.y`` importing its own package ``ganaug.x`` (or the package its submodules) is
    not a cycle of layers; the cycle check over modules still sees it."""
    return module.startswith(target + ".") or target.startswith(module + ".")


def test_graph_is_read_from_the_source():
    graph = import_graph()
    assert "ganaug.augment.source" in graph and "ganaug.audio" in graph["ganaug.augment.source"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    graph = import_graph()
    # a package's __init__ re-exporting its submodules is the usual shape, not a cycle to fix
    graph = {m: {t for t in ts if not _is_package_init(m, t)} for m, ts in graph.items()}
    assert find_cycles(graph) == []


def test_no_import_points_up_the_layers():
    upward = sorted(f"{m} -> {t}" for m, ts in import_graph().items() for t in ts if layer_of(t) > layer_of(m))
    assert upward == []
