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


# what the lower layers may not import either: the root modules that sit on top of them
ABOVE = (
    *UPPER,
    "dinolab.api",
    "dinolab.demo",
    "dinolab.extract",
    "dinolab.hub",
    "dinolab.exporters",
)


def _is_lower(module: str) -> bool:
    part = module.split(".")[1] if "." in module else ""
    return part in {name.removesuffix(".py") for name in LOWER}


def test_lower_layers_never_import_upper_ones():
    """Absolute and relative imports, at the top of a module or inside a function."""
    graph = _import_graph()
    bad = {
        mod: sorted(t for t in targets if t.startswith(ABOVE))
        for mod, targets in graph.items()
        if _is_lower(mod)
    }
    assert "dinolab.models.vision_transformer" in bad
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


def _with_parent_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing a.b.c runs a.b's __init__ first: add that edge (not from inside the package)."""
    full = {mod: set(targets) for mod, targets in graph.items()}
    for mod, targets in graph.items():
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in graph and parent != mod and not mod.startswith(parent + "."):
                    full[mod].add(parent)
    return full


def _package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """dinolab.X (a subpackage or a root module) -> the dinolab.Y it imports, Y != X."""

    def top(mod: str) -> str:
        return ".".join(mod.split(".")[:2])

    packages: dict[str, set[str]] = {top(mod): set() for mod in graph}
    for mod, targets in graph.items():
        packages[top(mod)].update(top(t) for t in targets if top(t) != top(mod))
    return packages


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


def test_no_cycle_through_a_package_init():
    """dinolab.train's __init__ once imported dinolab.api inside a function while dinolab.api
    imported dinolab.train.pretrain: a cycle only the parent-package edge shows."""
    toy = {"dinolab.a": {"dinolab.p.m"}, "dinolab.p": {"dinolab.a"}, "dinolab.p.m": set()}
    assert _cycles(toy) == [] and _cycles(_with_parent_packages(toy)) == [
        ["dinolab.a", "dinolab.p"]
    ]
    assert _cycles(_with_parent_packages(_import_graph())) == []


def test_no_cycles_between_packages():
    """eval, viz, train, models, ... as nodes: the layers form no loop (eval -> viz -> models,
    never viz -> eval), function-level imports included."""
    packages = _package_graph(_import_graph())
    assert "dinolab.viz" in packages["dinolab.eval"]
    assert _cycles(packages) == []
