"""Old config key names that still load: each maps to its new place and warns once.
Keys added with a new default that would change an old run: a saved run without them keeps
the value it ran with (`ADDED`).

Override strings in scripts (`optim.momentum_teacher=0.98`), user preset files and the
`config.yaml` of runs made before the `teacher` group and `ibot.head` existed must keep working,
so that old runs load, resume and evaluate. The loader rewrites every source through here
before merging it; a key that is both old and new in one source keeps the new value.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("dinolab")

# old dotted key -> new dotted key
RENAMED = {
    "optim.momentum_teacher": "teacher.momentum",
    "optim.momentum_teacher_end": "teacher.momentum_end",
    "loss.teacher_temp_start": "teacher.temp_start",
    "loss.teacher_temp": "teacher.temp",
    "loss.teacher_temp_warmup_epochs": "teacher.temp_warmup_epochs",
    "ibot.out_dim": "ibot.head.out_dim",
    "ibot.hidden_dim": "ibot.head.hidden_dim",
    "ibot.bottleneck_dim": "ibot.head.bottleneck_dim",
    "ibot.nlayers": "ibot.head.nlayers",
}

# dotted key added later -> the value every run saved before it had (its behaviour then): a
# saved run's config.yaml without the key gets this value, not the schema's new default
ADDED = {
    "model.interpolate_offset": 0.0,  # position embeddings resampled with size= (issue 13)
}

_warned: set[str] = set()  # old keys already reported in this process


def _warn(old_keys: list[str], source: str) -> None:
    """One line per source for the old keys not yet reported in this process."""
    fresh = [k for k in old_keys if k not in _warned]
    if fresh:
        _warned.update(fresh)
        moves = ", ".join(f"{k} -> {RENAMED[k]}" for k in fresh)
        log.warning(
            "deprecated config keys in %s still work but have moved: %s; please rename them.",
            source, moves,
        )  # fmt: skip


def rename_key(key: str, source: str) -> str:
    """The current name of a dotted override key (the key itself when it is not an old one)."""
    if key in RENAMED:
        _warn([key], source)
        return RENAMED[key]
    return key


def migrate(tree: dict[str, Any], source: str) -> dict[str, Any]:
    """A copy of a nested config dict with every old key moved to its new place."""
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in tree.items()}
    found = []
    for old, new in RENAMED.items():
        group, name = old.split(".")
        if not isinstance(tree.get(group), dict) or name not in tree[group]:
            continue
        value = tree[group].pop(name)
        found.append(old)
        *parents, leaf = new.split(".")
        node = tree
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node.setdefault(leaf, value)  # the new key, when also given, wins
    _warn(found, source)
    return tree


def missing_added(tree: dict[str, Any]) -> list[str]:
    """The `ADDED` keys a saved run's nested config dict lacks (it predates them)."""
    missing = []
    for key in ADDED:
        group, name = key.split(".")
        if not isinstance(tree.get(group), dict) or name not in tree[group]:
            missing.append(key)
    return missing


def fill_added(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of a saved run's nested config dict with each missing `ADDED` key set to the
    value the run had, so that loading or resuming it behaves as it did."""
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in tree.items()}
    for key in missing_added(tree):
        group, name = key.split(".")
        tree[group] = {**(tree.get(group) or {}), name: ADDED[key]}
    return tree
