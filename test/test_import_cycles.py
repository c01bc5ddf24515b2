"""No import cycles between ocl_infer's modules, lazy imports (inside functions) included.

A lazy import that closes a cycle hides it from Python but not from the design: the two modules still need each
other (issue 17 found `engine` <-> `tuning` and the kernel registry <-> every kernel module that way). Two graphs
of the same modules (a node per module; a package is its `__init__.py`, so its re-exports are its edges) must be
free of cycles:

- the design graph: an edge for every import of an ocl_infer module anywhere in the file, at module level,
  inside functions and under `if TYPE_CHECKING:`. `from a.b import c` points at module `a.b.c` when there is
  one (Python imports the submodule, not a name of `a.b`), else at `a.b`; relative imports are resolved.
- the load graph: the imports that run when the module is loaded (not inside functions, not under
  `TYPE_CHECKING`), each also with an edge to every package Python initialises on the way (`from a.b.c import x`
  runs `a/b/__init__.py` first), except the importer's own packages, which are initialised before it (a
  package importing its own modules is how packages work). A cycle here is an import that fails, or sees a
  half-initialised module, depending on which module a program happens to import first.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file for every module under `root / package`."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of `tree`, with whether it runs when the module is loaded."""

    def walk(node: ast.AST, at_load: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, at_load
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from walk(ast.Module(body=child.body, type_ignores=[]), False)
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), at_load)
            else:
                yield from walk(child, at_load)

    yield from walk(tree, True)


def import_graph(root: Path, package: str, load: bool = False) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports: the design graph, or with `load` the load graph (see the
    module docstring for what counts in each)."""
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, at_load in _imports(ast.parse(path.read_text(), filename=str(path))):
            if load and not at_load:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = own_package.split(".")[: len(own_package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.x` where x is a name: the module a.b
                    target = target.rpartition(".")[0]
                if not target:
                    continue
                graph[name].add(target)
                if load:  # the packages Python initialises before `target`, unless they are ours
                    parts = target.split(".")
                    for i in range(1, len(parts)):
                        pkg = ".".join(parts[:i])
                        if pkg in modules and not f"{name}.".startswith(f"{pkg}."):
                            graph[name].add(pkg)
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small enough for recursion
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
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_through(graph, comp) for comp in components]


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, for a readable failure message."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return sorted(component)


def test_ocl_infer_has_no_import_cycles() -> None:
    found = cycles(import_graph(ROOT, "ocl_infer"))
    assert not found, "import cycles (lazy imports included):\n" + "\n".join(" -> ".join(c) for c in found)


def test_ocl_infer_loads_in_any_order() -> None:
    found = cycles(import_graph(ROOT, "ocl_infer", load=True))
    assert not found, "import cycles at load time:\n" + "\n".join(" -> ".join(c) for c in found)


def _package(tmp_path: Path, files: dict[str, str], load: bool = False) -> dict[str, set[str]]:
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path, "pkg", load)


def test_a_lazy_import_closing_a_cycle_is_found(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "__init__.py": "",
        "engine.py": "def make():\n    from pkg.tuning import table\n",
        "tuning.py": "def table():\n    from pkg import engine\n",
    })
    assert cycles(graph) == [["pkg.engine", "pkg.tuning", "pkg.engine"]]
    assert cycles(import_graph(tmp_path, "pkg", load=True)) == []  # Python alone would never notice


def test_re_exports_and_packages_initialised_on_the_way_are_load_edges(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "__init__.py": "",
        "plan/__init__.py": "from pkg.plan.planner import make_plan\n",
        "plan/model.py": "",
        "plan/planner.py": "from pkg.kernels.registry import choose\n",
        "kernels/__init__.py": "from pkg.kernels import conv\n",
        "kernels/registry.py": "",
        "kernels/conv.py": "from pkg.kernels.registry import register\nfrom pkg.plan.model import Step\n",
    }, load=True)
    assert graph["pkg.kernels.conv"] == {"pkg.kernels.registry", "pkg.plan.model", "pkg.plan"}
    assert cycles(graph) == [["pkg.kernels", "pkg.kernels.conv", "pkg.plan", "pkg.plan.planner", "pkg.kernels"]]
    assert cycles(import_graph(tmp_path, "pkg")) == []  # module by module, nothing imports back


def test_own_packages_submodule_imports_and_type_checking_are_not_load_edges(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "__init__.py": "from pkg.a import thing\n",
        "a.py": "from pkg import b\nthing = 1\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c.d import D\n",
        "c/__init__.py": "from pkg.c.d import D\nfrom . import e\n",
        "c/d.py": "class D:\n    pass\n",
        "c/e.py": "from .d import D\n",
        "f.py": "def lazy():\n    import pkg.c.d\n",
    }, load=True)
    assert graph["pkg.a"] == {"pkg.b"}  # `from pkg import b`: the module b; pkg is a's own package
    assert graph["pkg.b"] == set()  # only for type checkers
    assert graph["pkg.c"] == {"pkg.c.d", "pkg.c.e"} and graph["pkg.c.e"] == {"pkg.c.d"}
    assert graph["pkg.f"] == set()
    design = import_graph(tmp_path, "pkg")
    assert design["pkg.b"] == {"pkg.c.d"} and design["pkg.f"] == {"pkg.c.d"}
    assert cycles(graph) == [] and cycles(design) == []
