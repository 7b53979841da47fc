"""benchmarks/gpu_check.py --dry-run: every check runs on CPU at tiny sizes, none fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
ROWS = [
    "bf16 autocast",
    "SDPA flash",
    "SDPA mem-efficient",
    "SDPA math",
    "fused AdamW",
    "ResNet-50 channels-last",
    "compile ViT block",
    "step B dinolab",
    "step B official",
    "step B64 dinolab",
    "step B64 official",
    "step DINOv2 ViT-L/14",
    "CIFAR-10 pretrain + k-NN",
]


def test_dry_run_every_check_and_no_fail(tmp_path):
    out_md = tmp_path / "gpu_check.md"
    # a few seconds on 2 cores; the timeout keeps a hang from stalling the suite
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out_md)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = out_md.read_text()
    rows = {
        cells[1].strip(): cells[2].strip()
        for line in table.splitlines()
        if line.startswith("| ") and (cells := line.split("|")) and len(cells) > 3
    }
    for name in ROWS:
        assert name in rows, f"no row for {name!r} in:\n{table}"
    assert "FAIL" not in rows.values(), table
    assert rows["SDPA flash"] == "skip" and "skipped: no CUDA" in table
    # CUDA-only kernels skip on CPU; without --official-dir the official rows skip too
    skipped = {"SDPA flash", "SDPA mem-efficient", "step B official", "step B64 official"}
    assert all(rows[n] == ("skip" if n in skipped else "ok") for n in ROWS), table
