"""Pretraining: meta-architectures, the step, the loop, schedules, checkpoints, loggers.

`dinolab.train` is also the API's training function: `dinolab.train("photos/", out="runs/x")`
calls `dinolab.train.entry.train`, which `dinolab.api` re-exports (see its docstring). The
package and the function share the name, so the package is made callable: whichever was
imported first, `dinolab.train(...)` works.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableTrainPackage(types.ModuleType):
    """This package's module type: calling it runs `dinolab.train.entry.train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from dinolab.train.entry import train

        return train(*args, **kwargs)

    @property
    def __signature__(self):  # inspect.signature / help(dinolab.train) show the function's
        import inspect

        from dinolab.train.entry import train

        return inspect.signature(train)


sys.modules[__name__].__class__ = _CallableTrainPackage
