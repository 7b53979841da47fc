"""The flags every command shares, read the same way everywhere, and the one model resolver.

Runtime flags (`add_runtime_args`, on every command that runs a model on images):
  --device       auto (CUDA when present, else CPU) | cpu | cuda | cuda:N
  --precision    auto | bf16 | fp32; auto = bf16 where the hardware has it natively
                 (`dinolab.hardware.resolve_precision` says why), fp32 elsewhere
  --quiet        no progress bars and no INFO log lines (`--no-progress`: hidden old alias)
  --num-workers  data-loader processes; -1 = from the cores (`dinolab.hardware.plan_threads`)

Model flags (`add_model_args`): MODEL is a dinolab run directory, a weights file (teacher
.safetensors, .pth, ...) or a hub name (`dinolab hub list`; `--weights PATH` for offline
published weights). `resolve_model` turns them into the eval-mode backbone and the
normalisation and image size it expects (`dinolab.models.preprocessing`): a run's data.mean /
data.std and eval size, the record in a dinolab / HF export's metadata, ImageNet mean / std
and 224 for published models and foreign files.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dinolab.hardware import PRECISIONS
from dinolab.models.preprocessing import Preprocessing, preprocessing_of, set_preprocessing

log = logging.getLogger("dinolab")
MODEL_HELP = "run directory, weights file (.safetensors / .pth) or hub name (dinolab hub list)"


def add_runtime_args(p: argparse.ArgumentParser, workers: bool = True, config: bool = False):
    """--device, --precision, --quiet (and --num-workers): one spelling, one default.

    `config=True` (pretrain): an absent flag leaves the config's value (same defaults).
    """
    unset = "the config's" if config else ""
    p.add_argument(
        "--device",
        default=None if config else "auto",
        help=f"auto | cpu | cuda | cuda:N (default: {unset or 'auto'})",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None if config else "auto",
        help="auto: bf16 where the hardware has it natively, fp32 elsewhere"
        + (" (default: the config's)" if config else ""),
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)
    if workers:
        p.add_argument(
            "--num-workers",
            type=int,
            default=None if config else -1,
            help=f"data-loader processes (-1 = from the cores; default: {unset or -1})",
        )


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # auto | bf16 | fp32 as asked: every forward resolves it for its device
    progress: bool
    num_workers: int


def runtime(args: argparse.Namespace) -> Runtime:
    """The device, precision, progress and data workers that the runtime flags ask for."""
    from dinolab.distributed import resolve_device
    from dinolab.hardware import plan_threads, resolve_precision

    device = resolve_device(args.device)
    _, why = resolve_precision(args.precision, device)
    workers = 0
    if hasattr(args, "num_workers"):
        workers = plan_threads(0, args.num_workers, device_type=device.type).num_workers
        why += f", {workers} data worker{'s' * (workers != 1)}"
    log.info("device %s, %s", device, why)
    return Runtime(device, args.precision, not args.quiet, workers)


def add_model_args(p: argparse.ArgumentParser, run_alias: bool = False) -> None:
    """MODEL (positional), --weights, --student, --no-pretrained.

    `run_alias` (eval): the old spelling `--run MODEL` / `--model MODEL` still works, hidden
    from --help, with a warning (`model_spec`); MODEL is then optional to argparse.
    """
    if run_alias:
        p.add_argument("model", nargs="?", metavar="MODEL", help=MODEL_HELP)
        p.add_argument("--run", "--model", dest="run_alias", metavar="MODEL",
                       help=argparse.SUPPRESS)  # fmt: skip
    else:
        p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--weights", help="with a hub name: local path or URL of its weights")
    p.add_argument("--student", action="store_true", help="the student of a training checkpoint")
    p.add_argument("--no-pretrained", action="store_true", help="hub names: random weights")


@dataclass
class ResolvedModel:
    """A backbone and what its inputs should look like."""

    model: nn.Module  # eval mode (a BackboneWithHead with `with_head`)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int  # the size it was trained / evaluated at (224 for published models)
    resize_ratio: float  # resized to image_size * resize_ratio, then centre-cropped
    run_dir: Path | None  # the run it belongs to (results go there by default)
    name: str


def resolve_model(
    spec: str | Path,
    weights: str | None = None,
    student: bool = False,
    pretrained: bool = True,
    with_head: bool = False,
) -> ResolvedModel:
    """The one way every command reads MODEL (see the module docstring)."""
    from dinolab.hub import MODELS, load

    which = "student" if student else "teacher"
    name = str(spec)
    if name in MODELS:
        model = load(name, weights=weights, pretrained=pretrained, which=which, with_head=with_head)
        return _resolved(model, None, name)
    if weights is not None:
        raise ValueError(
            f"--weights goes with a hub name, and '{name}' is not one: pass the weights file "
            "itself as MODEL."
        )
    path = Path(spec).expanduser()
    run_dir = path if (path / "config.yaml").is_file() else None
    if run_dir is None and path.is_file() and (path.parent / "config.yaml").is_file():
        run_dir = path.parent  # a file of a run: its teacher export or checkpoint
    if run_dir is None:
        model = load(path, which=which, with_head=with_head)
        return _resolved(model, None, name)
    from dinolab.config.loader import load_saved_config

    cfg = load_saved_config(run_dir / "config.yaml")
    checkpoint = path if path.is_file() and path.suffix == ".pth" else run_dir / "checkpoint.pth"
    if path.suffix == ".pth" or student or with_head:  # the teacher export has neither
        model = _from_run_checkpoint(checkpoint, cfg, which, with_head)
    else:
        model = load(path)
    set_preprocessing(model, Preprocessing.from_config(cfg))  # the run's own, whatever the file
    return _resolved(model, run_dir, name)


def _resolved(model: nn.Module, run_dir: Path | None, name: str) -> ResolvedModel:
    pre = preprocessing_of(model)
    return ResolvedModel(model, pre.mean, pre.std, pre.image_size, pre.resize_ratio, run_dir, name)


def _from_run_checkpoint(path: Path, cfg, which: str, with_head: bool) -> nn.Module:
    """The student or teacher (+ head) of a dinolab checkpoint, built from its run's config.

    A raw checkpoint's shapes do not say everything (heads, registers' rule): the run does.
    """
    from dinolab.hub import BackboneWithHead
    from dinolab.models.convert import split_training_checkpoint
    from dinolab.models.hub import head_from_state_dict
    from dinolab.models.weights import build_inference_backbone, load_state_dict_strict
    from dinolab.run_dir import load_checkpoint

    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at '{path}', which --student and --head read.")
    backbone_sd, head_sd = split_training_checkpoint(load_checkpoint(path), which)
    backbone = build_inference_backbone(cfg.model)
    load_state_dict_strict(backbone, backbone_sd, f"the {which} backbone of '{path}'")
    if not with_head:
        return backbone.eval()
    head = head_from_state_dict(head_sd)
    load_state_dict_strict(head, head_sd, f"the {which} DINO head of '{path}'")
    return BackboneWithHead(backbone, head).eval()


def model_spec(args: argparse.Namespace) -> str:
    """MODEL as given, positionally or (deprecated, one warning) with `--run` / `--model`."""
    alias = getattr(args, "run_alias", None)
    if alias is not None:
        if args.model is not None and args.model != alias:
            raise ValueError(
                f"two models given ('{args.model}' and --run '{alias}'): give MODEL once, "
                "as the first argument."
            )
        args.model, args.run_alias = alias, None  # warned once, however often it is read
        log.warning(
            "--run / --model is deprecated: give MODEL as the first argument "
            "(`dinolab eval knn %s --train ... --val ...`).",
            alias,
        )
    if args.model is None:
        raise ValueError(
            "no MODEL given: name a run directory, weights file or hub name first, e.g. "
            "`dinolab eval knn runs/x --train PATH/train --val PATH/val`."
        )
    return args.model


def model_from_args(args: argparse.Namespace, with_head: bool = False) -> ResolvedModel:
    """`resolve_model` with the flags of `add_model_args`."""
    return resolve_model(
        model_spec(args),
        weights=args.weights,
        student=args.student,
        pretrained=not args.no_pretrained,
        with_head=with_head,
    )
