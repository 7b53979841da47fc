"""RUN/train.log: every message of the `dinolab` logger, and a line of numbers per burst.

`attach_text_log` adds the file handler for one run (a new run replaces it); `StepLines` is
the logger the trainer fans metric rows to, writing the last row of each burst to that file
and never to the console.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dinolab.run_dir import TEXT_LOG

log = logging.getLogger("dinolab")
__all__ = ["StepLines", "attach_text_log", "detach_text_log"]


class StepLines:
    """train.log's numbers: the last row of each burst as one line, never on the console."""

    def log_metrics(self, rows: list[dict[str, float]]) -> None:
        handler = next((h for h in log.handlers if isinstance(h, _TextLog)), None)
        if handler is None or not rows:
            return
        row = rows[-1]
        text = f"step {row['step']}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in row.items() if k != "step"
        )
        handler.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, text, None, None))

    def log_hparams(self, params: dict[str, Any]) -> None:
        pass  # config.yaml holds them

    def log_image(self, tag: str, path: Path, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class _TextLog(logging.FileHandler):
    """The handler behind RUN/train.log (a class of its own, so a new run replaces it)."""


class _Console(logging.StreamHandler):
    """Warnings on stderr while train.log is attached in a program that configured no logging
    (Python's last-resort handler, which showed them before, is silent once a handler exists)."""

    def __init__(self, saved_level: int) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.saved_level = saved_level


def attach_text_log(run_dir: Path) -> None:
    """Append the `dinolab` logger's messages to RUN/train.log, each with its time.

    The file gets what the logger emits (INFO under the CLI). In a program that configured no
    logging at all it gets INFO too, and the console still shows warnings only. One run at a
    time: a new call replaces the previous run's file.
    """
    detach_text_log()
    handler = _TextLog(run_dir / TEXT_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    if not log.handlers and not logging.getLogger().handlers:
        log.addHandler(_Console(log.level))
        log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
    log.addHandler(handler)


def detach_text_log() -> None:
    """Close RUN/train.log (and give the `dinolab` logger back its level)."""
    for handler in [h for h in log.handlers if isinstance(h, (_TextLog, _Console))]:
        log.removeHandler(handler)
        handler.close()
        if isinstance(handler, _Console):
            log.setLevel(handler.saved_level)
