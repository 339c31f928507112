"""The package's layout rules: imports run one way, and modules stay short.

Both checks read the sources (``ast``), so they cost milliseconds and need no imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600  # the developers' guide: no module of gfdt/ exceeds 600 lines


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> path for every module of ``root/gfdt``."""
    out = {}
    for path in sorted((root / "gfdt").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """Module -> {gfdt module it imports: line}, counting every import statement.

    Imports inside functions (lazy imports) count too: a lazy import still makes two
    modules depend on each other. ``from pkg import name`` points at the submodule
    ``pkg.name`` when there is one, else at ``pkg``.
    """
    mods = _modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges = graph.setdefault(mod, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                         for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name)
                if target is not None and target != mod:
                    edges.setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_import_graph_finds_a_planted_circle(tmp_path):
    """The checker itself: two modules importing each other (one lazily) are found."""
    pkg = tmp_path / "gfdt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from gfdt.b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from gfdt import a\n    return a\n")
    (pkg / "c.py").write_text("import gfdt.a\n")
    graph = import_graph(tmp_path)
    assert graph["gfdt.a"] == {"gfdt.b": 1}
    assert graph["gfdt.b"] == {"gfdt.a": 2}
    assert graph["gfdt.c"] == {"gfdt.a": 1}
    assert cycles(graph) == [["gfdt.a", "gfdt.b"]]


def test_no_import_cycles():
    """No two modules of gfdt/ import each other, directly or through others."""
    graph = import_graph()
    assert "gfdt.response.estimator" in graph["gfdt.response"]  # the graph is read
    pairs = [f"{a}:{graph[a][b]} <-> {b}:{graph[b][a]}"
             for a in graph for b in graph[a] if a < b and a in graph.get(b, {})]
    assert pairs == []
    assert cycles(graph) == []


def test_modules_are_short():
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
               for p in (ROOT / "gfdt").rglob("*.py")}
    assert len(lengths) > 50 and lengths["gfdt/response/estimator.py"] > 100
    assert {p: n for p, n in lengths.items() if n > MAX_LINES} == {}
