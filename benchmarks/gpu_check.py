"""One-call GPU check: the CUDA paths work, and how fast dinolab trains beside the official code.

    python benchmarks/gpu_check.py --official-dir /tmp/official_dino \
        --cifar ../shared/data/cifar10.tar.gz --out gpu_check.md      # ~5-7 min on one GPU
    python benchmarks/gpu_check.py --dry-run                          # CPU, tiny, < 60 s

Checks (each independent: a failing one prints FAIL with its one-line reason, the rest go on):
  bf16 autocast            matmul under autocast gives bf16 and matches fp32
  SDPA flash / mem-efficient / math   each backend alone (`sdpa_kernel`) runs a small attention
                           forward + backward and matches explicit softmax(q k^T) v
  fused AdamW              `AdamW(fused=True)` step equals the for-loop step
  ResNet-50 channels-last  torchvision ResNet-50, channels-last, bf16 forward + backward
  compile ViT block        a dinolab ViT block eager vs `torch.compile`: same output, ms/iter
  step B dinolab / official   config B of vs_official.py (ViT-S/16, 2x224+6x96, K=65536,
                           batch 8, and batch 64), bf16: images/s and peak
                           `torch.cuda.max_memory_allocated`; official = facebookresearch/dino
                           imported at run time from --official-dir (vs_official.official_step)
  step DINOv2 ViT-L/14     preset `dinov2_vitl14` (iBOT + KoLeo + Sinkhorn-Knopp), batch 8, bf16
  CIFAR-10 pretrain        ~2 minutes of real pretraining (preset cifar10_vit_tiny, batch 256,
                           steps sized from a measured step time) through
                           `load_config` + `pretrain`, online k-NN each epoch and the final k-NN

`--dry-run` runs every check on CPU with tiny sizes (tiny ViTs, 2 steps, a synthetic image
folder instead of CIFAR-10; `torch.compile` uses the aot_eager backend, no C++ build) and skips
the CUDA-only checks with 'skipped: no CUDA'.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402
import vs_official  # noqa: E402


class Skip(Exception):
    """A check that does not apply here (e.g. CUDA-only on a CPU run)."""


def need_cuda(ctx) -> None:
    if not ctx.cuda:
        raise Skip("skipped: no CUDA")


def sync(ctx) -> None:
    if ctx.cuda:
        torch.cuda.synchronize()


def timed(ctx, fn, iters: int) -> float:
    """Best ms per call over `iters` calls, after one warm-up call."""
    fn()
    best = math.inf
    for _ in range(iters):
        sync(ctx)
        t0 = time.perf_counter()
        fn()
        sync(ctx)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


# ------------------------------------------------------------------------- CUDA paths
def check_bf16(ctx) -> str:
    a = torch.randn(256, 256, device=ctx.device)
    b = torch.randn(256, 256, device=ctx.device)
    with torch.autocast(ctx.device.type, torch.bfloat16):
        c = a @ b
    if c.dtype != torch.bfloat16:
        raise RuntimeError(f"autocast matmul gave {c.dtype}, not bfloat16")
    err = ((c.float() - a @ b).abs().max() / (a @ b).abs().max()).item()
    if err > 2e-2:
        raise RuntimeError(f"bf16 matmul relative error {err:.3g}")
    if ctx.cuda:
        native = torch.cuda.is_bf16_supported()
    else:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return f"output bf16, rel. error {err:.1e}, native bf16: {native}"


def sdpa_check(backend_name: str, cuda_only: bool):
    def check(ctx) -> str:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        if cuda_only:
            need_cuda(ctx)
        backend = getattr(SDPBackend, backend_name)
        dtype = torch.bfloat16 if ctx.cuda else torch.float32
        g = torch.Generator(device=ctx.device).manual_seed(0)
        q, k, v = (
            torch.randn(2, 6, 197, 64, device=ctx.device, dtype=dtype, generator=g).requires_grad_()
            for _ in range(3)
        )
        with sdpa_kernel([backend]):
            out = F.scaled_dot_product_attention(q, k, v)
            out.float().sum().backward()
        ref = torch.softmax(q.float() @ k.float().transpose(-2, -1) / 8.0, -1) @ v.float()
        err = (out.float() - ref).abs().max().item()
        if err > (3e-2 if dtype == torch.bfloat16 else 1e-4):
            raise RuntimeError(f"max abs error {err:.3g} vs explicit attention")
        if q.grad is None or not torch.isfinite(q.grad).all():
            raise RuntimeError("backward gave no finite gradient")

        def run():
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(q, k, v)

        ms = timed(ctx, run, 5)
        return f"{str(dtype).split('.')[-1]} fwd+bwd ok, max err {err:.1e}, fwd {ms:.3f} ms"

    return check


def check_fused_adamw(ctx) -> str:
    torch.manual_seed(0)
    params = [torch.randn(512, 512, device=ctx.device) for _ in range(4)]
    grads = [torch.randn_like(p) for p in params]
    results = []
    for fused in (False, True):
        ps = [p.clone().requires_grad_() for p in params]
        opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.04, fused=fused)
        for p, gr in zip(ps, grads, strict=True):
            p.grad = gr.clone()
        for _ in range(3):
            opt.step()
        results.append(ps)
    err = max((a - b).abs().max().item() for a, b in zip(*results, strict=True))
    if err > 1e-5:
        raise RuntimeError(f"fused step differs from the for-loop step by {err:.3g}")
    return f"3 steps on {ctx.device.type}, max diff vs for-loop {err:.1e}"


def check_resnet(ctx) -> str:
    from torchvision.models import resnet50

    batch, size = (32, 224) if ctx.cuda else (2, 64)
    model = resnet50().to(ctx.device, memory_format=torch.channels_last)
    x = torch.randn(batch, 3, size, size, device=ctx.device).to(memory_format=torch.channels_last)

    def step():
        with torch.autocast(ctx.device.type, torch.bfloat16):
            out = model(x)
        out.float().sum().backward()

    ms = timed(ctx, step, 3)
    if not model.conv1.weight.grad.is_contiguous(memory_format=torch.channels_last):
        raise RuntimeError("conv weight gradient is not channels-last")
    return f"batch {batch}x{size}px bf16 fwd+bwd {ms:.1f} ms ({1e3 * batch / ms:.0f} img/s)"


def check_compile(ctx) -> str:
    from dinolab.models.layers.block import Block

    torch.manual_seed(0)
    dim, heads, batch, tokens = (384, 6, 64, 197) if ctx.cuda else (64, 2, 4, 17)
    block = Block(dim, heads).to(ctx.device)
    x = torch.randn(batch, tokens, dim, device=ctx.device, requires_grad=True)
    backend = "inductor" if ctx.cuda else "aot_eager"  # CPU dry run: no C++ build
    compiled = torch.compile(block, backend=backend)

    def run(m):
        def f():
            with torch.autocast(ctx.device.type, torch.bfloat16, enabled=ctx.cuda):
                y = m(x)
            y.float().sum().backward()
            return y

        return f

    with torch.autocast(ctx.device.type, torch.bfloat16, enabled=ctx.cuda):
        err = (block(x).float() - compiled(x).float()).abs().max().item()
    if err > (5e-2 if ctx.cuda else 1e-4):
        raise RuntimeError(f"compiled block output differs by {err:.3g}")
    eager = timed(ctx, run(block), 5)
    comp = timed(ctx, run(compiled), 5)
    return f"{backend}: eager {eager:.2f} ms, compiled {comp:.2f} ms fwd+bwd, max diff {err:.1e}"


# ------------------------------------------------------------------------- training steps
def step_check(framework: str, config: str):
    def check(ctx) -> str:
        precision = "bf16" if ctx.cuda else "fp32"
        dev = str(ctx.device)
        batch = vs_official.CONFIGS[config]["batch"]
        if framework == "official":
            if not ctx.args.official_dir:
                raise Skip("skipped: no --official-dir")
            try:
                step, note = vs_official.official_step(
                    ctx.args.official_dir, config, precision, dev
                )
                row = vs_official.measure(step, batch, *ctx.timing, dev)
            finally:  # its 1-process group would make later dinolab steps wrap in DDP
                if torch.distributed.is_initialized():
                    torch.distributed.destroy_process_group()
        else:
            step, note = vs_official.dinolab_step(config, precision, device=dev)
            row = vs_official.measure(step, batch, *ctx.timing, dev)
        ctx.rows.append({"framework": framework, "config": config, **row})
        del step
        if ctx.cuda:
            torch.cuda.empty_cache()
        return (
            f"{row['images_s']:.1f} img/s ({precision}), {row['peak_kind']} "
            f"{row['peak_mib']:.0f} MiB; {note}"
        )

    return check


def check_vitl(ctx) -> str:
    precision = "bf16" if ctx.cuda else "fp32"
    batch = 8 if ctx.cuda else 2
    overrides = [f"train.batch_size={batch}"]
    if not ctx.cuda:  # tiny: 2-block ViT on 28 px, small heads
        overrides += [
            "model.embed_dim=64", "model.depth=2", "model.num_heads=2",
            "data.global_size=28", "data.local_size=14", "data.num_local_crops=2",
            "model.img_size=28", "head.out_dim=256", "ibot.head.out_dim=256",
            "head.hidden_dim=128", "ibot.head.hidden_dim=128",
        ]  # fmt: skip
    throughput.CONFIGS.setdefault(
        "L", {"preset": "dinov2_vitl14", "overrides": [], "what": "DINOv2 ViT-L/14"}
    )
    step = throughput.build_step("L", precision, overrides, device=str(ctx.device))
    row = vs_official.measure(step, batch, *ctx.timing, str(ctx.device))
    return (
        f"batch {batch}, {row['images_s']:.1f} img/s ({precision}), {row['peak_kind']} "
        f"{row['peak_mib']:.0f} MiB"
    )


# ------------------------------------------------------------------------- CIFAR-10 run
def cifar_root(ctx) -> tuple[Path, Path]:
    """(train, test) ImageFolders: the real CIFAR-10, or a tiny synthetic folder (dry run)."""
    if ctx.args.dry_run:
        from PIL import Image

        root = Path(ctx.tmp) / "tiny"
        g = torch.Generator().manual_seed(0)
        for split in ("train", "test"):
            for cls in ("a", "b"):
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                for i in range(8):
                    arr = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
                    Image.fromarray(arr).save(root / split / cls / f"{i}.png")
        return root / "train", root / "test"
    if not ctx.args.cifar:
        raise Skip("skipped: no --cifar")
    path = Path(ctx.args.cifar)
    if path.is_file():  # the tar: extract next to the other temporary files
        with tarfile.open(path) as tar:
            tar.extractall(ctx.tmp, filter="data")
        path = Path(ctx.tmp) / "cifar10"
    if not (path / "train").is_dir():
        raise FileNotFoundError(f"{path} has no train/ folder (expected cifar10/train/<class>)")
    return path / "train", path / "test"


def check_cifar(ctx) -> str:
    from dinolab.config.loader import load_config
    from dinolab.train.pretrain import pretrain

    train, test = cifar_root(ctx)
    common = [
        f"data.path={train}", f"eval.train={train}", f"eval.val={test}", "eval.every_epochs=1",
        "train.progress=false", "train.tensorboard=false", f"out_dir={Path(ctx.tmp) / 'run'}",
        f"train.device={ctx.device}",
    ]  # fmt: skip
    if ctx.args.dry_run:
        overrides = [
            *common, "train.precision=fp32", "train.batch_size=8", "train.epochs=1",
            "model.depth=2", "head.out_dim=256", "head.hidden_dim=128", "data.num_workers=0",
            "eval.batch_size=16",
        ]  # fmt: skip
        planned = "2 steps"
    else:
        batch, n_train = 256, sum(1 for _ in train.rglob("*.jpg"))
        per_epoch = max(1, n_train // batch)
        step = throughput.build_step("A", "bf16", [f"train.batch_size={batch}"], device="cuda")
        step_s = 1 / (vs_official.measure(step, 1, 3, 10, 1, "cuda")["images_s"])
        del step
        steps = int(0.8 * ctx.args.cifar_seconds / step_s)  # the rest: loading, k-NN, saving
        epochs = max(1, math.ceil(steps / per_epoch))
        overrides = [
            *common, "train.precision=bf16", f"train.batch_size={batch}",
            f"train.epochs={epochs}", f"train.max_steps={steps}", "data.num_workers=8",
            "eval.max_train_images=10000", "eval.max_val_images=2000",
        ]  # fmt: skip
        planned = f"{steps} steps ({step_s * 1e3:.0f} ms/step measured), {epochs} epochs"
    cfg = load_config("cifar10_vit_tiny", overrides)
    t0 = time.perf_counter()
    summary = pretrain(cfg)
    wall = time.perf_counter() - t0
    online = []
    metrics = Path(cfg.out_dir) / "metrics.jsonl"
    for line in metrics.read_text().splitlines() if metrics.is_file() else []:
        row = json.loads(line)
        top1 = {k: v for k, v in row.items() if "knn" in k and k.endswith("top1")}
        if top1:
            online.append(max(top1.values()))
    if not online:
        raise RuntimeError("no online k-NN row in metrics.jsonl")
    final = summary.get("knn", {}).get("scores", {})
    best = max((s["top1"] for s in final.values()), default=float("nan"))
    return (
        f"{planned}; ran {summary['steps']} steps / {summary['epochs']} epochs in {wall:.0f} s; "
        f"k-NN top-1 in metrics.jsonl (online per epoch, then final) "
        f"{[round(x, 2) for x in online]}; final best k-NN "
        f"top-1 {best:.2f}"
    )


# ------------------------------------------------------------------------- driver
CHECKS = [
    ("bf16 autocast", check_bf16),
    ("SDPA flash", sdpa_check("FLASH_ATTENTION", cuda_only=True)),
    ("SDPA mem-efficient", sdpa_check("EFFICIENT_ATTENTION", cuda_only=True)),
    ("SDPA math", sdpa_check("MATH", cuda_only=False)),
    ("fused AdamW", check_fused_adamw),
    ("ResNet-50 channels-last", check_resnet),
    ("compile ViT block", check_compile),
    ("step B dinolab", step_check("dinolab", "B")),
    ("step B official", step_check("official", "B")),
    ("step B64 dinolab", step_check("dinolab", "B64")),
    ("step B64 official", step_check("official", "B64")),
    ("step DINOv2 ViT-L/14", check_vitl),
    ("CIFAR-10 pretrain + k-NN", check_cifar),
]


class Context:
    def __init__(self, args, tmp: str):
        self.args, self.tmp, self.rows = args, tmp, []
        self.cuda = torch.cuda.is_available() and not args.dry_run
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.timing = (3, 5, 3) if self.cuda else (1, 1, 1)  # warm-up, steps, rounds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-dir", default=None, help="work tree of facebookresearch/dino")
    p.add_argument("--cifar", default=None, help="cifar10 ImageFolder root, or cifar10.tar.gz")
    p.add_argument("--cifar-seconds", type=float, default=120.0, help="pretraining budget")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, CUDA checks skipped")
    p.add_argument("--only", nargs="+", default=None, help="run only checks containing these")
    p.add_argument("--out", type=Path, default=None, help="append the tables to this markdown")
    args = p.parse_args(argv)

    B = vs_official.CONFIGS["B"]
    what = B["what"].replace("batch 8", "batch 64")
    vs_official.CONFIGS["B64"] = {**B, "batch": 64, "what": what, "base": "B"}
    if args.dry_run:  # tiny stand-ins: same code paths, seconds on a CPU
        tiny = {"arch": "vit_tiny", "patch": 4, "global": 16, "local": 8, "k": 256, "batch": 2}
        tiny["base"] = "A"
        for name in ("B", "B64"):
            vs_official.CONFIGS[name] = {**tiny, "what": f"tiny stand-in for {name}"}
        vs_official.HIDDEN = 128
    torch.manual_seed(0)
    lines = ["| check | result | detail | s |", "|---|---|---|---:|"]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        ctx = Context(args, tmp)
        head = (
            f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
            if ctx.cuda
            else "CPU" + (" (dry run)" if args.dry_run else ", no CUDA")
        )
        print(f"gpu_check on {head}; torch {torch.__version__}", flush=True)
        for name, fn in CHECKS:
            if args.only and not any(s.lower() in name.lower() for s in args.only):
                continue
            t0 = time.perf_counter()
            try:
                status, detail = "ok", fn(ctx)
            except Skip as exc:
                status, detail = "skip", str(exc)
            except Exception as exc:  # one check failing must not stop the others
                status, detail = "FAIL", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                failed += 1
                if ctx.cuda:
                    torch.cuda.empty_cache()
                traceback.print_exc(file=sys.stderr)
            dt = time.perf_counter() - t0
            print(f"{status:4s} {name}: {detail} ({dt:.1f} s)", flush=True)
            lines.append(f"| {name} | {status} | {detail.replace('|', '/')} | {dt:.1f} |")
    text = f"\n{head}; torch {torch.__version__}\n\n" + "\n".join(lines)
    print(text)
    if args.out:
        with args.out.open("a") as f:
            f.write(f"\n### gpu_check.py ({time.strftime('%Y-%m-%d')})\n{text}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
