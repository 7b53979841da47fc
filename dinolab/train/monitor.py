"""Per-step metrics to `metrics.jsonl` and TensorBoard, without a host sync on every step.

Step metrics are kept as tensors and turned into numbers only every `flush_every` steps, so a GPU
step never waits for the host; every step still gets its own JSONL row.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from dinolab.run_dir import METRICS, TENSORBOARD, read_metrics, trim_metrics

__all__ = ["MetricsLogger", "NonFiniteLossError", "read_metrics", "trim_metrics"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: the run stops and keeps its last good checkpoint."""


class MetricsLogger:
    """Buffers step metrics and writes them out in bursts (rank 0 only)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS
        self._pending: list[tuple[int, dict]] = []
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD))
            except ImportError:  # tensorboard is optional at run time
                self._tb = None

    def log_step(self, step: int, metrics: dict[str, Tensor | float]) -> None:
        self._pending.append((step, metrics))

    def flush(self) -> dict[str, float]:
        """Write buffered rows; returns the last row. Raises if any loss was not finite."""
        if not self._pending:
            return {}
        keys = [k for k, v in self._pending[0][1].items() if isinstance(v, Tensor)]
        if keys:  # one device->host transfer for the whole burst
            stacked = torch.stack(
                [torch.stack([m[k].detach().float() for k in keys]) for _, m in self._pending]
            ).cpu()
        rows = []
        for i, (step, metrics) in enumerate(self._pending):
            row = {"step": step}
            for k, v in metrics.items():
                row[k] = float(stacked[i, keys.index(k)]) if k in keys else v
            rows.append(row)
        self._pending.clear()
        bad = [r for r in rows if not math.isfinite(r.get("loss", 0.0))]
        if self.enabled:
            with self.path.open("a") as f:
                for row in rows:
                    if math.isfinite(row.get("loss", 0.0)):
                        f.write(json.dumps(row) + "\n")
            if self._tb is not None:
                for row in rows:
                    for k, v in row.items():
                        if k != "step" and isinstance(v, float) and math.isfinite(v):
                            self._tb.add_scalar(f"train/{k}", v, row["step"])
        if bad:
            raise NonFiniteLossError(
                f"The loss became {bad[0]['loss']} at step {bad[0]['step']}: training stopped. "
                "The last good checkpoint is kept; lower optim.base_lr, raise optim.warmup_epochs "
                "or use train.precision=fp32, then resume or restart."
            )
        return rows[-1]

    def log_scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
        """Occasional scalars (e.g. k-NN accuracy), written at once."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **{f"{prefix}/{k}": v for k, v in values.items()}}))
            f.write("\n")
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
