"""Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM (what SLURM and torchrun send before
they kill a job): the step in progress finishes, a checkpoint is saved, and the run stops with
`TrainingInterrupted`, whose message is the command that resumes it.

Under torchrun the ranks may get the signal at different steps, or only some of them get it, so
they agree before acting: the image counts that every step gathers anyway also carry each rank's
stop flag (`StopSignal.gather`), and all ranks save and stop at the same step. A second Ctrl-C
stops at once, without a checkpoint. If the run has not begun that save within
`train.stop_grace_s` seconds of the signal (a step or a data wait that never ends), it exits
without one: the last checkpoint is kept, and the scheduler's SIGKILL would not have waited.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from dinolab import distributed as dist

log = logging.getLogger("dinolab")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """A run stopped on a signal after saving a checkpoint; `exit_code` is 128 + the signal."""

    def __init__(self, run_dir: Path, signum: int, step: int) -> None:
        self.run_dir, self.signum, self.step = run_dir, signum, step
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at step {step}: checkpoint saved; resume "
            f"with `dinolab pretrain --resume {run_dir}`"
        )


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: workers leave SIGINT / SIGTERM to the training process.

    A terminal's Ctrl-C and SLURM's SIGTERM reach every process of the job; a worker dying of
    it would fail the step that must finish before the save. The main process ends them.
    """
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class StopSignal:
    """`with stop:` catches SIGINT / SIGTERM while training (main thread only)."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.signum = 0  # the first signal received (0 = none)
        self._previous: dict[int, object] = {}
        self._timer: threading.Timer | None = None

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self.saving()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask the run to stop after its current step (what the signal handler does)."""
        if self.signum:
            return
        self.signum = signum
        if self.grace_s > 0:
            self._timer = threading.Timer(self.grace_s, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        if not self.signum:
            log.warning(
                "%s: finishing this step, then saving a checkpoint (Ctrl-C again to stop at once)",
                signal.Signals(signum).name,
            )
        self.request(signum)

    def _expire(self) -> None:
        log.error(
            "no step finished within train.stop_grace_s=%g s of %s: stopping without a new "
            "checkpoint (the last one is kept)",
            self.grace_s,
            signal.Signals(self.signum).name,
        )
        logging.shutdown()
        os._exit(128 + self.signum)

    def saving(self) -> None:
        """The save has begun: the grace period no longer applies."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def gather(self, images: int) -> tuple[list[int], int]:
        """Every rank's image count for this step, and the signal any rank got (0 = none), in
        one collective."""
        if not dist.is_dist():
            return [images], self.signum
        rows = dist.gather_int_lists([images, self.signum])
        return [row[0] for row in rows], max(row[1] for row in rows)
