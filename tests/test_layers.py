"""The house rule "arrows only point down", checked on the source (function-level imports too)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dinolab"
UPPER = ("dinolab.train", "dinolab.eval", "dinolab.viz", "dinolab.cli")
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
