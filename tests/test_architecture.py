"""The house rules, read from the source: imports run one way and no two modules import each other.

Layers, lowest first: `foundation` (workspace files, model resolution, devices, text) <- `index`
<- `finetune` <- `assistant` <- `ui`. A module may import its own layer and those below it; the
CLI (`assistant.cli`) alone imports `ui`, to serve it. Imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["foundation", "index", "finetune", "assistant", "ui"]
ALLOWED_UPWARD = {("assistant.cli", "ui")}  # `assistant serve` starts the Gradio app


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                # `from pkg import sub` imports the submodule when there is one
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in child.names]
            for target in targets:
                while target and target not in known:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    out.append((target, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return out


def _graph() -> dict[str, list[tuple[str, int, bool]]]:
    known = _modules()
    return {name: _imports(path, name, known) for name, path in known.items()}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_imports_run_down_the_layers() -> None:
    against = []
    for module, imports in _graph().items():
        for target, line, _ in imports:
            if _layer(target) > _layer(module) and (module, target.split(".")[0]) not in ALLOWED_UPWARD:
                against.append(f"{module}:{line} imports {target}")
    assert not against, "imports against the flow foundation <- index <- finetune <- assistant <- ui:\n" + "\n".join(against)


def test_no_two_modules_import_each_other() -> None:
    graph = {m: sorted({t for t, _, _ in imps}) for m, imps in _graph().items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles (counting imports inside functions):\n" + "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                strongconnect(w)
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
                found.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_the_checker_sees_an_arrow_against_the_flow_and_a_circle(tmp_path: Path) -> None:
    """The two checks above must be able to fail: run them on a made-up graph."""
    assert _cycles({"index.a": ["index.b"], "index.b": ["index.a"], "index.c": ["index.a"]}) == [["index.a", "index.b", "index.a"]]
    assert _cycles({"index.a": ["index.b"], "index.b": []}) == []
    assert _layer("finetune.train") > _layer("index.store")


def test_imports_inside_functions_say_why() -> None:
    """A project import inside a function is allowed to keep start-up fast; a comment must say so."""
    silent = []
    for module, path in _modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, line, in_function in _imports(path, module, _modules()):
            if in_function and "#" not in lines[line - 1] and not lines[line - 2].strip().startswith("#"):
                silent.append(f"{module}:{line} imports {target} inside a function without a comment saying why")
    assert not silent, "\n".join(sorted(set(silent)))
