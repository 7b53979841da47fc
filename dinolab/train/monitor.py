"""Per-step metrics to `metrics.jsonl` and the run's loggers, without a host sync every step.

Step metrics are kept as tensors and turned into numbers only every `flush_every` steps, so a GPU
step never waits for the host; every step still gets its own JSONL row. The same rows, scalars
and pictures go to the loggers of `train.loggers` (TensorBoard, W&B, MLflow:
`dinolab.train.loggers`); a logger that fails is dropped with a warning, metrics.jsonl goes on.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from dinolab.run_dir import METRICS, read_metrics, trim_metrics
from dinolab.train.loggers import RunLogger

log = logging.getLogger("dinolab")

__all__ = ["MetricsLogger", "NonFiniteLossError", "read_metrics", "trim_metrics"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: the run stops and keeps its last good checkpoint."""


class MetricsLogger:
    """Buffers step metrics and writes them out in bursts (rank 0 only)."""

    def __init__(
        self, run_dir: str | Path, enabled: bool = True, loggers: Sequence[RunLogger] = ()
    ):
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS
        self._pending: list[tuple[int, dict]] = []
        self.loggers = list(loggers) if enabled else []

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
            self._to_loggers("log_metrics", [_tagged(row, "train") for row in rows])
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
        self._to_loggers("log_metrics", [_tagged({"step": step, **values}, prefix)])

    def log_image(self, tag: str, path: Path | None, step: int) -> None:
        """A picture the run wrote (curves, attention maps) to every logger."""
        if self.enabled and path is not None:
            self._to_loggers("log_image", tag, Path(path), step)

    def close(self) -> None:
        """Close every logger (idempotent); metrics.jsonl needs no closing."""
        self._to_loggers("close")
        self.loggers = []

    def _to_loggers(self, method: str, *args) -> None:
        for logger in list(self.loggers):
            try:
                getattr(logger, method)(*args)
            except Exception as exc:  # a logging service must not stop the training
                log.warning("%s logger failed (%s): dropped", type(logger).__name__, exc)
                self.loggers.remove(logger)


def _tagged(row: dict, prefix: str) -> dict:
    """{"step": s, "prefix/key": finite float, ...}: what the loggers take."""
    out = {"step": row["step"]}
    for k, v in row.items():
        if k != "step" and type(v) in (int, float) and math.isfinite(v):
            out[f"{prefix}/{k}"] = float(v)
    return out
