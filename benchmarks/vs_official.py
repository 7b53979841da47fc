"""Training-step throughput of dinolab beside the official DINO code and lightly, one machine.

    python benchmarks/vs_official.py --official-dir /tmp/official_dino \
        --lightly-python /tmp/venv-lightly/bin/python --configs A B --precisions fp32 bf16

Configs (the same model in every framework: head 2048-2048-256 with a weight-normalised last
layer whose norm is frozen (`norm_last_layer`, the official default), drop-path 0.1, 2 global +
6 local crops; augmentation excluded: the crops are pre-made random tensors):
  A: ViT-tiny/4, 2x32 + 6x16, K=4096, batch 64.
  B: ViT-S/16, 2x224 + 6x96, K=65536, batch 8.

One step is what each framework's trainer does per iteration:
  dinolab   `TrainStep` built by throughput.py's `build_step` (schedules, autocast forward +
            loss, backward, per-parameter clip 3.0, last-layer check, AdamW, EMA teacher).
  official  facebookresearch/dino imported at run time from `--official-dir` (never copied):
            `vision_transformer.vit_tiny/vit_small` + `DINOHead` + `utils.MultiCropWrapper`,
            `main_dino.DINOLoss`, `utils.get_params_groups` + AdamW, the body of
            `train_one_epoch` (lr/wd schedule, teacher on the 2 globals, student on all crops,
            loss, `loss.item()` finiteness check, backward, `utils.clip_gradients(3.0)`,
            `utils.cancel_gradients_last_layer`, step, EMA). Differences: no DDP wrapper around
            the student (one process; DINOLoss's all_reduce runs on a 1-process gloo group), the
            position embedding is stored at the global crop size (main_dino builds it for 224
            px, which would interpolate it on every 32 px forward in config A), and bf16 autocast
            replaces fp16 + GradScaler.
  lightly   run with `--lightly-python` (its own venv, a subprocess): timm `VisionTransformer`
            (`dynamic_img_size=True`, `fused_attn=False` on every Attention: explicit
            softmax(q k^T) v as in the official code) + `DINOProjectionHead` +
            `lightly.loss.DINOLoss` + `update_momentum`, the step of lightly's DINO benchmark
            (EMA first, teacher on the globals, student per resolution, backward,
            `cancel_last_layer_gradients`, clip_grad_norm 3.0, AdamW).

Each (framework, config, precision) is measured in its own subprocess: `--warmup` untimed
steps, then `--rounds` rounds of `--steps` steps; images/s is best-of-rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = {
    "A": {"arch": "vit_tiny", "patch": 4, "global": 32, "local": 16, "k": 4096, "batch": 64,
          "what": "ViT-tiny/4, 2x32+6x16, K=4096, batch 64"},
    "B": {"arch": "vit_small", "patch": 16, "global": 224, "local": 96, "k": 65536, "batch": 8,
          "what": "ViT-S/16, 2x224+6x96, K=65536, batch 8"},
}  # fmt: skip
N_LOCAL, HIDDEN, BOTTLENECK, DROP_PATH, CLIP = 6, 2048, 256, 0.1, 3.0
WIDTH = {"vit_tiny": (192, 3), "vit_small": (384, 6)}
FRAMEWORKS = ("dinolab", "official", "lightly")


def crops(config: str, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(2B, 3, g, g) global and (6B, 3, l, l) local crops: pre-made random tensors."""
    c, gen = CONFIGS[config], torch.Generator().manual_seed(seed)
    b, g, loc = c["batch"], c["global"], c["local"]
    glob = torch.randn(2 * b, 3, g, g, generator=gen).to(device)
    return glob, torch.randn(N_LOCAL * b, 3, loc, loc, generator=gen).to(device)


def autocast(device: str, precision: str):
    return torch.autocast(torch.device(device).type, torch.bfloat16, enabled=precision == "bf16")


# ------------------------------------------------------------------------- the three steps
def dinolab_step(config: str, precision: str, attn_impl: str = "auto", device: str = "cpu"):
    """dinolab's trainer step with the official model's exact shape (throughput.build_step)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import build_step

    c = CONFIGS[config]
    overrides = [
        f"model.arch={c['arch']}", f"model.patch_size={c['patch']}",
        f"model.img_size={c['global']}", f"model.drop_path_rate={DROP_PATH}",
        f"head.out_dim={c['k']}", f"head.hidden_dim={HIDDEN}",
        f"head.bottleneck_dim={BOTTLENECK}", "head.nlayers=3", "head.norm_last_layer=true",
        f"data.global_size={c['global']}", f"data.local_size={c['local']}",
        f"data.num_local_crops={N_LOCAL}", f"train.batch_size={c['batch']}",
        f"optim.clip_grad={CLIP}",
    ]  # fmt: skip
    base = c.get("base", config)  # throughput.py config whose preset the overrides edit
    step = build_step(base, precision, overrides, attn_impl=attn_impl, device=device)
    return step, f"attn_impl={step.cfg.model.attn_impl}"


def init_single_process_group(device: str) -> None:
    """The official DINOLoss all-reduces its centre unconditionally: a 1-process group."""
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        store = tempfile.NamedTemporaryFile(prefix="dist_", delete=False).name
        dist.init_process_group(backend, init_method=f"file://{store}", rank=0, world_size=1)


def official_step(official_dir: str, config: str, precision: str, device: str = "cpu"):
    """The official main_dino.py iteration (see the module docstring), imported at run time."""
    if not (Path(official_dir) / "main_dino.py").is_file():
        raise FileNotFoundError(f"--official-dir {official_dir} holds no main_dino.py")
    sys.path.insert(0, str(Path(official_dir).resolve()))
    import main_dino
    import utils
    import vision_transformer as vits

    init_single_process_group(device)
    c = CONFIGS[config]
    torch.manual_seed(0)
    make = vits.__dict__[c["arch"]]
    student = make(patch_size=c["patch"], drop_path_rate=DROP_PATH, img_size=[c["global"]])
    teacher = make(patch_size=c["patch"], img_size=[c["global"]])
    dim = student.embed_dim
    head = vits.DINOHead(dim, c["k"], hidden_dim=HIDDEN, bottleneck_dim=BOTTLENECK)
    student = utils.MultiCropWrapper(student, head).to(device)
    teacher = utils.MultiCropWrapper(
        teacher, vits.DINOHead(dim, c["k"], hidden_dim=HIDDEN, bottleneck_dim=BOTTLENECK)
    ).to(device)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    dino_loss = main_dino.DINOLoss(c["k"], N_LOCAL + 2, 0.04, 0.04, 0, 100).to(device)
    optimizer = torch.optim.AdamW(utils.get_params_groups(student))
    iters, epoch = 1000, 1  # steady state: past the lr warm-up and the last-layer freeze
    lr = utils.cosine_scheduler(5e-4 * c["batch"] / 256, 1e-6, 100, iters // 100, 10)
    wd = utils.cosine_scheduler(0.04, 0.4, 100, iters // 100)
    mom = utils.cosine_scheduler(0.996, 1, 100, iters // 100)
    glob, loc = crops(config, device)
    images = [*glob.chunk(2), *loc.chunk(N_LOCAL)]
    state = {"it": 200}

    def step() -> None:
        it = state["it"]
        state["it"] += 1
        for i, param_group in enumerate(optimizer.param_groups):
            param_group["lr"] = lr[it]
            if i == 0:
                param_group["weight_decay"] = wd[it]
        with autocast(device, precision):
            teacher_output = teacher(images[:2])
            student_output = student(images)
            loss = dino_loss(student_output, teacher_output, epoch)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"official DINO loss is {loss.item()}")
        optimizer.zero_grad()
        loss.backward()
        utils.clip_gradients(student, CLIP)
        utils.cancel_gradients_last_layer(epoch, student, 1)
        optimizer.step()
        with torch.no_grad():
            m = mom[it]
            for param_q, param_k in zip(student.parameters(), teacher.parameters(), strict=True):
                param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)

    return step, "explicit attention"


def lightly_step(config: str, precision: str, device: str = "cpu"):
    """lightly's DINO step on a timm ViT with explicit attention (run in lightly's venv)."""
    import copy

    import timm
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from timm.models.vision_transformer import VisionTransformer

    c = CONFIGS[config]
    dim, heads = WIDTH[c["arch"]]
    torch.manual_seed(0)
    backbone = VisionTransformer(
        img_size=c["global"], patch_size=c["patch"], embed_dim=dim, depth=12, num_heads=heads,
        num_classes=0, drop_path_rate=DROP_PATH, dynamic_img_size=True,
    )  # fmt: skip
    fused = [m for m in backbone.modules() if hasattr(m, "fused_attn")]
    for m in fused:
        m.fused_attn = False
    head = DINOProjectionHead(dim, HIDDEN, BOTTLENECK, c["k"], freeze_last_layer=1)
    t_head = DINOProjectionHead(dim, HIDDEN, BOTTLENECK, c["k"])  # weight_norm: no deepcopy
    t_head.load_state_dict(head.state_dict())
    t_backbone = copy.deepcopy(backbone)
    backbone, head, t_backbone, t_head = (
        m.to(device) for m in (backbone, head, t_backbone, t_head)
    )
    deactivate_requires_grad(t_backbone)
    deactivate_requires_grad(t_head)
    criterion = DINOLoss(c["k"], warmup_teacher_temp_epochs=0).to(device)
    params = [p for p in [*backbone.parameters(), *head.parameters()] if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.04}, {"params": no_decay, "weight_decay": 0.0}],
        lr=5e-4 * c["batch"] / 256,
    )
    glob, loc = crops(config, device)

    def step() -> None:
        update_momentum(backbone, t_backbone, m=0.996)
        update_momentum(head, t_head, m=0.996)
        with autocast(device, precision):
            with torch.no_grad():
                teacher_out = t_head(t_backbone(glob))
            student_out = torch.cat([head(backbone(glob)), head(backbone(loc))])
            loss = criterion(
                teacher_out.chunk(2), student_out.chunk(2 + N_LOCAL), teacher_temp=0.04
            )
        loss.backward()
        head.cancel_last_layer_gradients(current_epoch=1)
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        optimizer.step()
        optimizer.zero_grad()

    return step, f"timm {timm.__version__}, fused_attn=False on {len(fused)} Attention modules"


# ------------------------------------------------------------------------- measuring
def measure(step, batch: int, warmup: int, steps: int, rounds: int, device: str) -> dict:
    """Best-of-rounds images/s; peak memory = CUDA max allocated, or this process's peak RSS."""
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "images_s": batch / min(times),
        "images_s_median": batch / statistics.median(times),
        "peak_mib": peak,
        "peak_kind": "CUDA max allocated" if cuda else "peak RSS",
    }


def build(framework: str, config: str, precision: str, args) -> tuple:
    if framework == "dinolab":
        return dinolab_step(config, precision, args.attn_impl, args.device)
    if framework == "official":
        return official_step(args.official_dir, config, precision, args.device)
    return lightly_step(config, precision, args.device)


def worker(args) -> dict:
    framework, config, precision = args.worker
    torch.set_num_threads(args.threads)
    step, note = build(framework, config, precision, args)
    row = measure(step, CONFIGS[config]["batch"], args.warmup, args.steps, args.rounds, args.device)
    return {**row, "framework": framework, "config": config, "precision": precision,
            "note": note, "torch": torch.__version__}  # fmt: skip


def run_subprocess(framework: str, config: str, precision: str, args) -> dict:
    """One row in a fresh process (the lightly row under `--lightly-python`)."""
    python = args.lightly_python if framework == "lightly" else sys.executable
    cmd = [python, str(Path(__file__).resolve()), "--worker", framework, config, precision]
    for flag in ("steps", "rounds", "warmup", "threads", "attn_impl", "device"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.official_dir:
        cmd += ["--official-dir", args.official_dir]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"framework": framework, "config": config, "precision": precision, "error": tail}
    return json.loads(lines[-1][len("RESULT ") :])


def machine_lines(threads: int) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return [
        f"- CPU: {cpu} ({os.cpu_count()} logical CPUs); torch capability "
        f"{torch.backends.cpu.get_cpu_capability()}; native bf16: {'yes' if bf16 else 'no'}",
        f"- threads: {threads}; torch {torch.__version__}; {platform.python_version()}",
    ]


def table(rows: list[dict], args) -> str:
    lines = ["", *machine_lines(args.threads), ""]
    lines += [
        "| config | precision | dinolab img/s | official DINO img/s | lightly img/s "
        "| dinolab / best other |",
        "|---|---|---:|---:|---:|---:|",
    ]
    notes = {}
    for config in args.configs:
        for precision in args.precisions:
            key = (config, precision)
            got = {r["framework"]: r for r in rows if (r["config"], r["precision"]) == key}
            cells = []
            for fw in FRAMEWORKS:
                r = got.get(fw)
                cells.append(
                    "not run" if r is None else
                    "failed" if "error" in r else f"{r['images_s']:.1f}"
                )  # fmt: skip
                if r is not None:
                    notes[fw] = r.get("note") or r.get("error")
                    if fw == "lightly" and "torch" in r:
                        notes[fw] += f", torch {r['torch']}"
            ok = {fw: r["images_s"] for fw, r in got.items() if "error" not in r}
            others = [v for fw, v in ok.items() if fw != "dinolab"]
            ratio = f"{ok['dinolab'] / max(others):.2f}x" if "dinolab" in ok and others else "-"
            lines.append(
                f"| {config}: {CONFIGS[config]['what']} | {precision} | " + " | ".join(cells)
                + f" | {ratio} |"
            )  # fmt: skip
    lines.append("")
    lines += [f"- {fw}: {note}" for fw, note in notes.items()]
    lines.append(
        f"- best of {args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up steps"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["A", "B"], choices=sorted(CONFIGS))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--official-dir", default=None, help="work tree of facebookresearch/dino")
    p.add_argument("--lightly-python", default=None, help="python of a venv with lightly + timm")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (best is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--attn-impl", default="auto", choices=["auto", "sdpa", "math"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="append the table to this markdown")
    p.add_argument("--worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    frameworks = ["dinolab"]
    if args.official_dir:
        frameworks.append("official")
    else:
        print("official DINO skipped: pass --official-dir PATH (a facebookresearch/dino tree)")
    if args.lightly_python:
        frameworks.append("lightly")
    else:
        print("lightly skipped: pass --lightly-python PATH (a venv with lightly and timm)")
    rows = []
    for config in args.configs:
        for precision in args.precisions:
            for fw in frameworks:
                row = run_subprocess(fw, config, precision, args)
                rows.append(row)
                msg = row.get("error") or f"{row['images_s']:.1f} img/s ({row['note']})"
                print(f"  {config} {precision} {fw}: {msg}", flush=True)
    text = table(rows, args)
    print(text)
    if args.out:
        with args.out.open("a") as f:
            f.write(f"\n### vs_official.py ({time.strftime('%Y-%m-%d')})\n{text}\n")


if __name__ == "__main__":
    main()
