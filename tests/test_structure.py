"""The package's shape: what the design rules promise of its modules.

* no module uses another module's private (underscore) names, tests and
  benchmarks included;
* no import circles among jinvert's modules (imports inside functions count);
* no module over :data:`MAX_LINES` lines;
* :func:`jinvert.invert` takes at most :data:`MAX_INVERT_PARAMETERS`.

Each check reads the source with :mod:`ast` (nothing is imported but jinvert).
"""

import ast
import inspect
import pathlib

import pytest

import jinvert

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: The longest a module may be (one idea per module).
MAX_LINES = 500
#: The most parameters :func:`jinvert.invert` may take.
MAX_INVERT_PARAMETERS = 12


def _sources(*folders):
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py")
                  if "golden" not in p.parts or p.name.startswith("make_"))


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _ours(name: str) -> bool:
    return name.split(".")[0] in ("jinvert", "benchmarks")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module an ``ImportFrom`` reads, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def private_uses(path: pathlib.Path) -> list[str]:
    """``file:line: name`` for each private name of one of our modules that
    ``path`` reaches: ``from m import _x``, or ``alias._x`` where ``alias``
    is a module or name imported from ours (its own module excepted)."""
    tree = ast.parse(path.read_text(), str(path))
    module = _module_name(path)
    aliases = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _ours(a.name):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            if not _ours(source) or source == module:
                continue
            for a in node.names:
                aliases[a.asname or a.name] = f"{source}.{a.name}"
                if a.name.startswith("_"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {source}.{a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases \
                    and aliases[base.id] != module:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                             f"{ast.unparse(node)}")
    return found


def import_graph() -> dict[str, set[str]]:
    """jinvert module -> the jinvert modules it imports (anywhere in it)."""
    paths = _sources("jinvert")
    modules = {_module_name(p): p for p in paths}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(node, name, path.name == "__init__.py")
                # ``from pkg import mod`` imports the module pkg.mod.
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                           for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t != "jinvert":
                    edges.add(t)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_private_names_used_across_modules():
    found = [use for p in _sources("jinvert", "tests", "benchmarks") for use in private_uses(p)]
    assert found == []


def test_the_private_name_check_finds_a_private_use(tmp_path, monkeypatch):
    """The check above can fail: a file reaching into another module's
    private name is reported, its own module's is not."""
    bad = ROOT / "tests" / "_structure_probe.py"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, *a, **k: (
        "from jinvert import engine\nfrom jinvert.engine import _run\n"
        "engine._per_call(None, 'cpu')\n" if self == bad else _read(self)))
    assert [u.split(": ")[1] for u in private_uses(bad)] == [
        "jinvert.engine._run", "engine._per_call"]


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_no_import_circles():
    graph = import_graph()
    assert "jinvert.engine" in graph and "jinvert.terms" in graph["jinvert.engine"]
    assert circles(graph) == []
    # The check finds a circle where there is one.
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("folder", ["jinvert", "benchmarks"])
def test_no_module_over_the_limit(folder):
    long = {str(p.relative_to(ROOT)): n for p in _sources(folder)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_invert_takes_at_most_twelve_parameters():
    assert len(inspect.signature(jinvert.invert).parameters) <= MAX_INVERT_PARAMETERS
