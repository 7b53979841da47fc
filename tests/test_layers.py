"""The house rule "arrows only point down", checked on the source (function-level imports too)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dinolab"
UPPER = (
    "dinolab.train",
    "dinolab.eval",
    "dinolab.viz",
    "dinolab.cli",
    "dinolab.curate",
    "dinolab.finetune",
)
LOWER = ["models", "losses", "data", "config", "run_dir.py", "distributed.py", "hardware.py"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_lower_layers_never_import_upper_ones():
    files = [f for part in LOWER for f in sorted((ROOT / part).rglob("*.py"))] + [
        ROOT / part for part in LOWER if part.endswith(".py")
    ]
    bad = {
        str(f.relative_to(ROOT)): sorted(n for n in _imports(f) if n.startswith(UPPER))
        for f in files
    }
    assert not {k: v for k, v in bad.items() if v}


def test_importing_the_lower_layers_loads_no_upper_one():
    code = (
        "import sys, dinolab.models, dinolab.losses, dinolab.data, dinolab.config, "
        "dinolab.run_dir, dinolab.hub\n"
        f"print(sorted(m for m in sys.modules if m.startswith({UPPER!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = ["dinolab", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """dinolab module -> the dinolab modules it imports anywhere (top level or in a function)."""
    files = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    graph = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        targets = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets += [f"{base}.{a.name}" for a in node.names]  # a submodule or a name
        graph[mod] = set()
        for target in targets:
            while target and target not in files:  # a name inside a module -> that module
                target = target.rpartition(".")[0]
            if target.startswith("dinolab") and target != mod:
                graph[mod].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_even_through_function_level_imports():
    graph = _import_graph()
    assert (
        "dinolab.train.trainer" in graph and "dinolab.eval.online" in graph["dinolab.train.trainer"]
    )
    assert _cycles(graph) == []
