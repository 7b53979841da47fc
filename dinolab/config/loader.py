"""Build a resolved `Config`: schema defaults <- preset yaml <- `key=value` overrides.

OmegaConf's structured configs do the type checking; this module turns its exceptions into one
sentence a user can act on (which key, what was wrong, how to fix it). Every source passes
through `legacy` first, so old key names keep loading (with a warning).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from dinolab.config import legacy
from dinolab.config.schema import Config

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A configuration mistake the user can fix (unknown key, wrong type, missing preset)."""


def list_presets() -> list[str]:
    """Pretraining presets (`finetune_*.yaml` are `dinolab.config.finetune`'s)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if not p.stem.startswith("finetune_"))


def preset_path(
    preset: str,
    prefix: str = "",
    kind: str = "preset",
    names: Callable[[], list[str]] = list_presets,
) -> Path:
    """A .yaml path as given, else `presets/{prefix}{preset}.yaml` (`prefix` optional in
    `preset`); one sentence naming the presets of that kind (`names()`) when there is none."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    path = PRESET_DIR / f"{prefix}{preset.removeprefix(prefix)}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"Unknown {kind} '{preset}': choose one of {', '.join(names())} or pass a path to "
            "a .yaml file."
        )
    return path


def _all_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items_ex(resolve=False):
        full = f"{prefix}{key}"
        keys.append(full)
        if isinstance(value, DictConfig):
            keys.extend(_all_keys(value, full + "."))
    return keys


def _explain(exc: OmegaConfBaseException, schema: DictConfig, source: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or ""
    if isinstance(exc, ConfigKeyError) or "not in struct" in str(exc) or "Key '" in str(exc):
        close = difflib.get_close_matches(key, _all_keys(schema), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return ConfigError(f"Unknown config key '{key}' in {source}.{hint}")
    if isinstance(exc, ValidationError):
        expected = _expected_type(schema, key)
        value = getattr(exc, "value", None)
        return ConfigError(
            f"Config key '{key}' in {source} must be {expected}, not {value!r}."
            if expected
            else f"Config key '{key}' in {source} has the wrong type ({exc.msg.splitlines()[0]})."
        )
    return ConfigError(f"Bad configuration in {source}: {exc}")


_TYPE_WORDS = {  # OmegaConf node class -> what a user types
    "IntegerNode": "an int (a whole number, e.g. 5)",
    "FloatNode": "a float (a number, e.g. 0.5)",
    "BooleanNode": "a bool (true or false)",
    "StringNode": "a str (text)",
    "ListConfig": "a list (e.g. [0.4,1.0])",
    "DictConfig": "a group of keys",
}


def _expected_type(schema: DictConfig, key: str) -> str | None:
    """'an int (...)' for an IntegerNode key of the schema, ...; None when unknown."""
    node = schema
    try:
        for part in key.split("."):
            node = node._get_node(part)
    except (AttributeError, KeyError, OmegaConfBaseException):
        return None
    return _TYPE_WORDS.get(type(node).__name__)


def _merge(base: DictConfig, other, schema: DictConfig, source: str) -> DictConfig:
    if not isinstance(other, dict):
        other = OmegaConf.to_container(other, resolve=False)
    other = legacy.migrate(other or {}, source)
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        raise _explain(exc, schema, source) from None


def load_config(
    preset: str | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> Config:
    """Resolve defaults, then `base` (e.g. a saved run's config), a preset, then overrides."""
    schema = OmegaConf.structured(Config)
    cfg = schema
    if base is not None:
        cfg = _merge(cfg, base, schema, "the saved run config")
    if preset:
        path = preset_path(preset)
        cfg = _merge(cfg, OmegaConf.load(path), schema, f"preset '{path.name}'")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(
                f"Override '{item}' is not of the form key=value (e.g. train.epochs=5)."
            )
        key, value = item.split("=", 1)
        renamed = f"{legacy.rename_key(key.strip(), f'override {item!r}')}={value}"
        try:
            dotlist = OmegaConf.from_dotlist([renamed])
        except OmegaConfBaseException as exc:
            raise ConfigError(f"Cannot parse override '{item}': {exc}") from None
        cfg = _merge(cfg, dotlist, schema, f"override '{item}'")
    return OmegaConf.to_object(cfg)


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Config, path: str | Path, notes: list[str] | None = None) -> None:
    """Write `cfg` as YAML atomically (temp file + rename): a kill never leaves half a file.

    `notes` become comment lines at the top (e.g. what `auto` resolved to on this machine):
    a record for the reader that leaves the keys, and so a resume elsewhere, unchanged.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    header = "".join(f"# {line}\n" for line in notes or [])
    tmp.write_text(header + to_yaml(cfg))
    os.replace(tmp, path)


def load_saved_config(path: str | Path) -> Config:
    """Read a run's resolved `config.yaml` back into a typed Config (keys added since the run
    was saved take the value it ran with: `legacy.ADDED`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No config.yaml at '{path}': is this a dinolab run directory?")
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return load_config(base=legacy.fill_added(saved if isinstance(saved, dict) else {}))
