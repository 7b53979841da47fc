"""The run's progress bar: one bar for the whole run, so its ETA is the run's.

It counts optimizer steps against the run's horizon (`horizon.planned_steps`, or a time
budget's plan once it has one), shows the loss from the first step, the lr and images per
second, and says which epoch it is in. Reading the loss syncs a GPU with the host, so it is read
at most every `REFRESH_S` seconds (and always on the first step).
"""

from __future__ import annotations

import collections
import time

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

REFRESH_S = 0.5
RATE_WINDOW = 20  # steps over which images/s is measured


class RunProgress:
    """tqdm over the run's steps; `update(metrics, images)` after every step."""

    def __init__(self, total: int | None, done: int, enabled: bool, desc: str = "") -> None:
        self.bar = tqdm(
            total=total,
            desc=desc,
            initial=done,
            unit="step",
            disable=not enabled,
            dynamic_ncols=True,
            smoothing=0.1,  # the ETA follows the recent step time, not the slow first steps
        )
        self.enabled = enabled
        self._window: collections.deque = collections.deque(maxlen=RATE_WINDOW + 1)
        self._window.append((time.perf_counter(), 0))
        self._shown_at = float("-inf")
        self._redirect = None

    def set_total(self, total: int) -> None:
        """A new horizon (a time budget's re-plan)."""
        if total != self.bar.total:
            self.bar.total = total
            self.bar.refresh()

    def set_epoch(self, epoch: int, epochs: int | None) -> None:
        """`epoch` is 1-based; `epochs` None when the run ends on a budget, not an epoch."""
        self.bar.set_description(epoch_label(epoch, epochs), False)

    def update(self, metrics: dict | None, images: int) -> None:
        """One step done on `images` images (all processes); `metrics` None when skipped."""
        now = time.perf_counter()
        self._window.append((now, images))
        show = self.enabled and metrics is not None and now - self._shown_at >= REFRESH_S
        if show:
            self._shown_at = now
            (t0, _), seen = self._window[0], sum(n for _, n in list(self._window)[1:])
            self.bar.set_postfix(  # before update(), so that the frame it draws has the loss
                loss=f"{_number(metrics.get('loss')):.3f}",
                lr=f"{_number(metrics.get('lr')):.2e}",
                img_s=f"{seen / max(now - t0, 1e-9):.1f}",
                refresh=False,
            )
        self.bar.update(1)  # draws only if tqdm's minimum interval has passed
        if show:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> RunProgress:
        if self.enabled:  # log lines print above the bar instead of through it
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._redirect is not None:
            self._redirect.__exit__(*exc)


def epoch_label(epoch: int, epochs: int | None) -> str:
    return f"epoch {epoch}" + (f"/{epochs}" if epochs else "")


def _number(value: torch.Tensor | float | None) -> float:
    if value is None:
        return float("nan")
    return float(value.detach()) if torch.is_tensor(value) else float(value)
