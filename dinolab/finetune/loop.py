"""One fine-tuning run in `cfg.out_dir`: the epoch loop, validation, the weight EMA.

The files it leaves (config.yaml, checkpoint.pth, metrics.jsonl, the classifiers, pictures,
summary.json) and the resume rule are `finetune.run_files`'. A run resumes exactly from its
last epoch: the data order and augmentation are functions of (seed, epoch, index), the mixing
draws of (seed, step), and the checkpoint restores every other RNG.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn

from dinolab import distributed as dist
from dinolab.config.finetune import FinetuneConfig, save_finetune_config
from dinolab.config.schema import ModelConfig
from dinolab.finetune.classifier import (
    Classifier,
    ClassifierSpec,
    save_classifier,
    set_drop_path,
    spec_for,
)
from dinolab.finetune.data import (
    eval_transform,
    labelled_splits,
    train_loader,
    train_transform,
    val_loader,
)
from dinolab.finetune.evaluate import evaluate
from dinolab.finetune.lr_decay import param_groups
from dinolab.finetune.mixup import Mixer, smooth_one_hot, soft_cross_entropy, step_rng
from dinolab.finetune.run_files import (
    BEST,
    epoch_outputs,
    finish,
    load_state,
    save_state,
    tensorboard,
)
from dinolab.finetune.schedule import backbone_frozen, lr_schedule
from dinolab.hardware import apply_threads, autocast, plan_threads, resolve_precision
from dinolab.models.preprocessing import Preprocessing, preprocessing_of
from dinolab.run_dir import CONFIG, METRICS, trim_metrics
from dinolab.train.checkpoint import set_rng_state
from dinolab.train.progress import RunProgress

log = logging.getLogger("dinolab")


def run_finetune(
    cfg: FinetuneConfig,
    backbone: nn.Module | None = None,
    model_cfg: ModelConfig | None = None,
    resume: bool = False,
    max_epochs: int | None = None,
) -> dict:
    """Fine-tune `backbone` (with `model_cfg`, its architecture) on cfg.train_dir, or resume
    the run in cfg.out_dir; `max_epochs` stops this session early (a test's interruption).
    Returns the summary: best / last val top-1 and top-5, epochs, paths."""
    run_dir = Path(cfg.out_dir)
    device = dist.resolve_device(cfg.device)
    dist.init_from_env("auto", 1800, device.type == "cuda")
    rank, world = dist.get_rank(), dist.get_world_size()
    main = rank == 0
    plan = plan_threads(0, cfg.num_workers, device_type=device.type)
    apply_threads(plan)
    precision, why = resolve_precision(cfg.precision, device)
    log.info("fine-tuning on %s, %s; %s", device, why, plan.reason)
    state = load_state(run_dir, resume)
    if state is None:
        if backbone is None or model_cfg is None:
            raise ValueError("A new fine-tuning run needs a backbone and its ModelConfig.")
        base = preprocessing_of(backbone)
        size = cfg.image_size or base.image_size
        pre = Preprocessing(base.mean, base.std, size, base.resize_ratio)
    else:
        spec = ClassifierSpec(**state["spec"])
        pre = spec.input_preprocessing()
    scale = (float(cfg.crop_scale[0]), float(cfg.crop_scale[1]))
    train_set, val_set = labelled_splits(
        cfg.train_dir,
        cfg.val_dir,
        train_transform(pre, scale, cfg.randaug_ops, cfg.randaug_magnitude),
        eval_transform(pre),
        cfg.cache_decoded,
    )
    if state is None:
        spec = spec_for(backbone, model_cfg, train_set.classes, cfg.pool, pre.image_size)
        # pretrained=false: the same architecture from random weights (a baseline)
        model = Classifier(backbone, len(spec.classes), cfg.pool) if cfg.pretrained else None
        model = model or spec.build()
        model.backbone.preprocessing = pre
    else:
        model = spec.build()
        if train_set.classes != spec.classes:
            raise ValueError(
                f"The classes under '{cfg.train_dir}' are not the {len(spec.classes)} this "
                "run was started with: resume with the same folders."
            )
    set_drop_path(model.backbone, cfg.drop_path)
    torch.manual_seed(cfg.seed)
    model.to(device)
    loader = train_loader(
        train_set, cfg.batch_size, cfg.seed, plan.num_workers, rank, world, device.type == "cuda"
    )
    sampler = loader.batch_sampler.sampler
    accum = max(cfg.accum_steps, 1)
    steps_per_epoch = sampler.batches_per_epoch // accum
    if steps_per_epoch < 1:
        raise ValueError(
            f"'{cfg.train_dir}' gives {sampler.batches_per_epoch} batches per epoch, fewer than "
            f"accum_steps={accum}: lower accum_steps or batch_size."
        )
    val = val_loader(val_set, cfg.eval_batch_size, plan.num_workers, rank, world)
    schedule = lr_schedule(cfg, steps_per_epoch, sampler.batch_size * accum * world)
    groups = param_groups(model, cfg.weight_decay, cfg.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=float(schedule[0]), betas=(0.9, 0.999))
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema > 0 else None
    step, start_epoch, best, last = 0, 0, {"top1": -1.0}, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step, start_epoch, best, last = state["step"], state["epoch"], state["best"], state["last"]
        set_rng_state(state["rng"])
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_finetune_config(cfg, run_dir / CONFIG)
        trim_metrics(run_dir / METRICS, step)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=cfg.head_epochs > 0)
    mixer = Mixer(cfg.mixup, cfg.cutmix, cfg.mix_prob, cfg.switch_prob)
    tb = tensorboard(cfg, run_dir, step) if main else None
    end = cfg.epochs if max_epochs is None else min(cfg.epochs, start_epoch + max_epochs)
    total = cfg.epochs * steps_per_epoch
    with RunProgress(total, step, cfg.progress and main, "fine-tune") as bar:
        for epoch in range(start_epoch, end):
            bar.set_epoch(epoch + 1, cfg.epochs)
            frozen = backbone_frozen(cfg, epoch)
            model.backbone.requires_grad_(not frozen)
            model.train()
            model.backbone.train(not frozen)  # a frozen backbone keeps its BatchNorm stats
            sampler.set_epoch(epoch)
            rows, loss_sum = [], 0.0
            optimizer.zero_grad(set_to_none=True)
            for i, batch in enumerate(loader):
                if i >= steps_per_epoch * accum:
                    break
                if batch["num_images"] == 0:
                    continue
                images = batch["images"].to(device, non_blocking=True)
                targets = smooth_one_hot(
                    batch["labels"].to(device), len(spec.classes), cfg.label_smoothing
                )
                images, targets = mixer(
                    images, targets, step_rng(cfg.seed, step * accum + i % accum)
                )
                with autocast(device, precision):
                    logits = net(images)
                loss = soft_cross_entropy(logits, targets)
                (loss / accum).backward()
                loss_sum += float(loss.detach()) / accum
                if (i + 1) % accum:
                    continue
                lr = float(schedule[step])
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                if cfg.clip_grad > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    update_ema(ema, model, cfg.ema)
                step += 1
                row = {"step": step, "epoch": epoch + 1, "loss": loss_sum, "lr": lr}
                if step % max(cfg.log_every_steps, 1) == 0 or step == total:
                    rows.append(row)
                bar.update(row, images.shape[0] * accum * world)
                loss_sum = 0.0
            scores = evaluate(ema or model, val, len(spec.classes), device, precision)
            last = {k: scores[k] for k in ("top1", "top5", "loss")} | {"epoch": epoch + 1}
            improved = scores["top1"] > best["top1"]
            if improved:
                best = {k: scores[k] for k in ("top1", "top5", "loss")} | {"epoch": epoch + 1}
            if main:
                epoch_outputs(cfg, run_dir, spec, model, ema, scores, epoch, step, rows, tb)
                if improved:
                    save_classifier(ema or model, spec, run_dir / BEST)
                save_state(run_dir, model, optimizer, ema, step, epoch + 1, best, spec, last)
            dist.barrier()
    if tb is not None:
        tb.close()
    if not main:
        return {}
    return finish(cfg, run_dir, spec, model, ema, best | {}, last, end >= cfg.epochs)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model; buffers copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)
