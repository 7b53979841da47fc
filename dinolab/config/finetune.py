"""Every key of a fine-tuning run (`dinolab finetune`) with its default, and its loader.

Fine-tuning is a run of its own kind (a labelled folder, a classifier, the DeiT recipe), so it
has its own top-level config rather than a group of the pretraining `Config`: defaults <-
preset `presets/finetune_*.yaml` <- `key=value` overrides, saved resolved as the run's
`config.yaml`. The keys are flat (`epochs=5 lr=1e-3`) because a fine-tuning run has few.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dinolab.config.loader import PRESET_DIR, ConfigError, _explain, preset_path

PREFIX = "finetune_"  # the fine-tuning presets' file names; the pretraining ones have none
POOLS = ("cls", "cls+mean")


@dataclass
class FinetuneConfig:
    """A whole fine-tuning run. Saved resolved as `config.yaml` in the run directory."""

    out_dir: str = "runs/finetune"
    model: str = ""  # MODEL as given: run directory, weights file or hub name
    pretrained: bool = True  # false: the same architecture from random init (a baseline)
    train_dir: str = ""  # labelled folder (one subfolder per class)
    val_dir: str = ""  # labelled folder with the same class subfolders
    # -- the classifier
    pool: str = "cls"  # cls | cls+mean (CLS and the mean patch token, concatenated)
    drop_path: float = 0.1  # ViT stochastic depth, ramped 0 -> drop_path over the blocks
    # -- data
    image_size: int = 0  # 0: the model's own (its preprocessing record)
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop
    randaug_ops: int = 2  # RandAugment operations per image (0: no RandAugment)
    randaug_magnitude: int = 9  # RandAugment strength (0-30)
    cache_decoded: bool = False  # keep decoded images in RAM (small folders)
    # -- optimisation (AdamW, warm-up + cosine, layer-wise lr decay)
    epochs: int = 10
    batch_size: int = 64  # per process and forward pass
    accum_steps: int = 1  # forward passes per optimizer step (gradient accumulation)
    lr: float = 5e-4  # peak lr for an effective batch of 256, scaled linearly (DeiT / BEiT)
    min_lr: float = 1e-6
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    layer_decay: float = 0.65  # block k of L gets lr * layer_decay ** (L + 1 - k); 1 = off
    clip_grad: float = 0.0  # max gradient norm (0 = off)
    label_smoothing: float = 0.1
    # -- mixup / cutmix (off for tiny data): alpha 0 turns each off
    mixup: float = 0.0  # Beta(alpha, alpha) mixing of whole images
    cutmix: float = 0.0  # Beta(alpha, alpha) area of a pasted box
    mix_prob: float = 1.0  # probability that a batch is mixed at all
    switch_prob: float = 0.5  # with both on: probability of cutmix instead of mixup
    ema: float = 0.0  # decay of an EMA of the weights (e.g. 0.9999); 0 = off
    # linear-then-full: the first head_epochs train the head alone (backbone frozen, its own
    # warm-up + cosine), then everything; the usual cure for small-data collapse
    head_epochs: int = 0
    head_lr_mult: float = 1.0  # the head-only epochs' peak lr: lr x this (a lone head wants more)
    # -- run
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where native) | bf16 | fp32
    num_workers: int = -1  # data-loader processes (-1: from the cores)
    eval_batch_size: int = 128
    log_every_steps: int = 10
    keep_best: bool = True  # the exported classifier is the best epoch's on val top-1
    tensorboard: bool = True
    onnx: bool = False  # also write classifier.onnx (pip install 'dinolab[onnx]')
    progress: bool = True

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ConfigError(f"pool '{self.pool}' is unknown; use one of {', '.join(POOLS)}.")


def list_finetune_presets() -> list[str]:
    """Preset names as `--preset` takes them (`finetune_cpu` is `cpu`)."""
    return sorted(p.stem.removeprefix(PREFIX) for p in PRESET_DIR.glob(f"{PREFIX}*.yaml"))


def load_finetune_config(
    preset: str | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> FinetuneConfig:
    """Resolve defaults, then `base` (a saved run's config), a preset, then overrides."""
    schema = OmegaConf.structured(FinetuneConfig)
    sources: list[tuple[object, str]] = []
    if base is not None:
        sources.append((base, "the saved run config"))
    if preset:
        path = preset_path(preset, PREFIX, "fine-tuning preset", list_finetune_presets)
        sources.append((OmegaConf.load(path), f"preset '{path.name}'"))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' is not of the form key=value (e.g. epochs=5).")
        try:
            sources.append((OmegaConf.from_dotlist([item]), f"override '{item}'"))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"Cannot parse override '{item}': {exc}") from None
    cfg = schema
    for other, source in sources:
        try:
            cfg = OmegaConf.merge(cfg, other)
        except OmegaConfBaseException as exc:
            raise _explain(exc, schema, source) from None
    return OmegaConf.to_object(cfg)


def save_finetune_config(cfg: FinetuneConfig, path: str | Path) -> None:
    """Write `cfg` as YAML atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    tmp.replace(path)


def load_saved_finetune_config(path: str | Path) -> FinetuneConfig:
    """A fine-tuning run's resolved `config.yaml`, typed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No config.yaml at '{path}': is this a dinolab fine-tuning run?")
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return load_finetune_config(base=saved if isinstance(saved, dict) else {})
