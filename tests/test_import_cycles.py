"""No import circle between the modules of one app, counting imports inside functions too: a
function-level import hides a circle from Python, not from the reader who must hold both ends."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Circles kept on purpose, and why.
ALLOWED = {
    ("apps.catalog.registry", "apps.catalog.builtins"): "a plugin registry: it imports the built-ins on first "
    "use so every process knows them, and they import its @step_type decorator, as installed packages do",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parents + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known}


def import_graph() -> dict[str, set[str]]:
    """Each module of apps/<app>/ and the modules of the same app it imports (its own parent
    packages aside: importing a package's module runs the package's __init__ anyway)."""
    paths = {_module_name(path): path for path in (ROOT / "apps").glob("*/**/*.py") if "/migrations/" not in str(path)}
    known = set(paths)
    return {name: {other for other in _imports(path, name, known)
                   if other.split(".")[1] == name.split(".")[1] and other != name and not name.startswith(other + ".")}
            for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return sorted(found)


def test_no_app_has_an_import_circle():
    graph = import_graph()
    for importer, imported in ALLOWED:
        graph[importer].discard(imported)
    assert circles(graph) == []


def test_the_check_finds_a_circle_through_a_function_level_import():
    graph = {"apps.x.a": {"apps.x.b"}, "apps.x.b": {"apps.x.c"}, "apps.x.c": {"apps.x.a"}, "apps.x.d": {"apps.x.a"}}
    assert circles(graph) == [["apps.x.a", "apps.x.b", "apps.x.c"]]
    probe = ROOT / "apps" / "triggers" / "_circle_probe.py"
    probe.write_text("def later():\n    from apps.triggers import _circle_probe_twin\n")
    twin = ROOT / "apps" / "triggers" / "_circle_probe_twin.py"
    twin.write_text("from apps.triggers import _circle_probe  # noqa: F401\n")
    try:
        assert ["apps.triggers._circle_probe", "apps.triggers._circle_probe_twin"] in circles(import_graph())
    finally:
        probe.unlink()
        twin.unlink()
