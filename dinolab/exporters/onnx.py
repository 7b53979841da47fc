"""Backbone -> ONNX (`torch.onnx.export`, checked with onnxruntime when installed).

Inputs: `pixel_values` [B, 3, H, W] (normalised). Outputs: `cls` [B, D] and `patch_tokens`
[B, N, D] (ViT: final-normed patch tokens; ResNet: last feature map, flattened).
The batch is always dynamic. H and W are dynamic (multiples of the patch size) for ResNets
and for ViTs whose position embedding is resampled with `size=` (DINOv2 register models,
dinolab's own ViTs). DINO v1 and DINOv2 without registers resample with the original
"+0.1" scale factor, which the exporter bakes into the graph: they are exported for one
input size (`image_size`) so that the graph reproduces the original numbers exactly.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from dinolab.extract import check_image_size
from dinolab.extras import available, require
from dinolab.models.preprocessing import METADATA_KEY, preprocessing_of
from dinolab.models.weights import pos_interpolation

log = logging.getLogger("dinolab")
# torch.onnx.export(dynamo=True) runs onnxscript's optimizer and onnx_ir's passes, which log a
# line per pass and per deduplicated initializer at INFO (~200 lines for a ViT-S/14)
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")


@contextmanager
def quiet_exporter_logs(level: int = logging.WARNING) -> Iterator[None]:
    """The exporter's loggers (and any child with a lower level of its own) at `level` or
    above for the duration: a user running at INFO sees dinolab's lines, warnings and errors."""
    children = [n for n in logging.root.manager.loggerDict
                if any(n.startswith(f"{p}.") for p in EXPORTER_LOGGERS)]  # fmt: skip
    loggers = [logging.getLogger(n) for n in EXPORTER_LOGGERS]
    loggers += [lg for lg in map(logging.getLogger, children) if lg.level != logging.NOTSET]
    saved = [(lg, lg.level) for lg in loggers if lg.level < level]  # NOTSET: inherits
    for lg, _ in saved:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in saved:
            lg.setLevel(old)


class OnnxBackbone(nn.Module):
    """forward(pixel_values) -> (cls, patch_tokens): positional outputs, as ONNX needs."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.backbone.forward_features(pixel_values)
        return out["x_norm_clstoken"], out["x_norm_patchtokens"]


def dynamic_hw(model: nn.Module) -> bool:
    """Whether the exported graph can take any H x W (see the module docstring)."""
    return pos_interpolation(model)["offset"] == 0.0


def export_onnx(
    model: nn.Module,
    out: str | Path,
    image_size: int | tuple[int, int] | None = None,
    opset: int = 18,
    check: bool = True,
) -> Path:
    """Write `out` (.onnx); with `check`, compare onnxruntime with PyTorch on one batch.

    `image_size` defaults to the model's own (`preprocessing_of`), which the file's metadata
    (`preprocessing`: mean, std, image size) records for whoever feeds it.
    """
    for module in ("onnx", "onnxscript"):  # torch.onnx.export(dynamo=True) imports both
        require(module, "onnx", "ONNX export")
    backbone = getattr(model, "backbone", model).eval()
    preprocessing = preprocessing_of(backbone)
    image_size = image_size or preprocessing.image_size
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    patch = check_image_size(backbone, h, w)
    dynamic = dynamic_hw(backbone)
    batch = torch.export.Dim("batch", min=1, max=4096)
    dims: dict[int, object] = {0: batch}
    if dynamic:
        dims[2] = patch * torch.export.Dim("grid_h", min=1, max=4096 // patch)
        dims[3] = patch * torch.export.Dim("grid_w", min=1, max=4096 // patch)
    else:
        log.info("ONNX export for %dx%d inputs only (the '+0.1' resampling rule).", h, w)
    return write_onnx(
        OnnxBackbone(backbone),
        torch.randn(2, 3, h, w),
        out,
        ["cls", "patch_tokens"],
        dims,
        {METADATA_KEY: preprocessing.to_json()},
        opset=opset,
        check=check,
    )


def write_onnx(
    wrapper: nn.Module,
    x: torch.Tensor,
    out: str | Path,
    output_names: list[str],
    dims: dict[int, object],
    metadata: dict[str, str],
    opset: int | None = None,
    check: bool = True,
) -> Path:
    """Export `wrapper` (input `pixel_values` like `x`, dynamic `dims`) to `out` with the
    exporter's logs quiet, add `metadata`, and with `check` compare onnxruntime with PyTorch."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    opset_arg = {} if opset is None else {"opset_version": opset}
    with warnings.catch_warnings(), torch.no_grad(), quiet_exporter_logs():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (x,),
            str(out),
            dynamo=True,
            input_names=["pixel_values"],
            output_names=output_names,
            dynamic_shapes={"pixel_values": dims},
            external_data=False,
            verbose=False,
            **opset_arg,
        )
    _add_metadata(out, metadata)
    if check:
        check_onnx(wrapper, out, x)
    return out


def _add_metadata(path: Path, props: dict[str, str]) -> None:
    """Strings in the model's metadata_props (onnxruntime: custom_metadata_map)."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def check_onnx(wrapper: nn.Module, path: Path, x: torch.Tensor, tol: float = 1e-4) -> float:
    """Max abs difference between onnxruntime and PyTorch on `x`, relative to the largest
    output magnitude when that is above 1 (an error above `tol`)."""
    if not available("onnxruntime"):
        log.warning("the ONNX export was not checked: pip install 'dinolab[onnx]' to check it.")
        return float("nan")
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": x.numpy()})
    with torch.no_grad():
        ref = wrapper(x)
    diff = max(
        float((torch.from_numpy(g) - r).abs().max() / r.abs().max().clamp_min(1.0))
        for g, r in zip(got, ref, strict=True)
    )
    if diff > tol:
        raise ValueError(f"the ONNX export at '{path}' differs from PyTorch by {diff:.2e}.")
    return diff
