"""Every configuration key of dinolab with its default, as typed dataclasses.

This is the one exhaustive default config; presets in `presets/*.yaml` override a few keys,
and `key=value` overrides on the command line override both. Derived defaults (a size of 0 that
means "as data.global_size", the iBOT head's freeze rule that follows the DINO head's) are
resolved once, when a `Config` is built (`Config.__post_init__`), so no module re-derives them.
Old key names still load: `dinolab/config/legacy.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dinolab.config.distill import DistillConfig
from dinolab.config.gram import GramConfig
from dinolab.config.schedule import ScheduleConfig


@dataclass
class ModelConfig:
    """The backbone (the network whose features we keep)."""

    # vit_tiny | vit_small | vit_base | vit_large | vit_giant2 | resnet50 | small_resnet (narrow
    # CIFAR-style ResNet for small images on CPUs; embed_dim = width, depth = blocks per stage:
    # dinolab/models/small_resnet.py) | timm:NAME (any timm
    # model; pip install timm) | torchvision:NAME (ResNet, RegNet, VGG, MobileNet, EfficientNet,
    # ConvNeXt): see dinolab/models/adapters.py
    arch: str = "vit_small"
    cifar_stem: bool = False  # ResNets on 32-64 px images: 3x3/1 first conv, no max-pool
    # Start student and teacher backbones from these weights (fresh heads): a run directory, a
    # teacher_backbone.safetensors, a hub name (dinolab.models.hub) or a weights file; null: random.
    init: str | None = None
    patch_size: int = 16
    img_size: int = 224  # size the position embedding is stored for; other sizes interpolate
    # How the position embedding is resampled to other grids (bicubic): 0.1 = scale factor
    # (g + 0.1) / M, the rule of both official trainers (facebookresearch/dino and dinov2);
    # 0 = size=(gh, gw), dinolab's rule before this key (runs saved without it keep it:
    # config/legacy.py). Saved with the run and in its teacher export.
    interpolate_offset: float = 0.1
    drop_path_rate: float = 0.1
    num_register_tokens: int = 0
    layerscale_init: float | None = None  # e.g. 1e-5 for DINOv2; None disables LayerScale
    ffn: str = "auto"  # auto (the arch's own: swiglu for vit_giant2) | mlp | swiglu
    qkv_bias: bool = True
    # auto | sdpa | math ("math" = explicit softmax(q k^T) v); auto = math for bf16 on CPU
    # (measured 2-3x faster there), sdpa otherwise
    attn_impl: str = "auto"
    # fp32 CPU GEMMs of the ViT blocks: auto (= onednn) | torch (PyTorch's BLAS) | onednn
    # (dinolab/models/layers/linear.py); bf16 autocast and GPUs always use PyTorch's own path
    linear_kernel: str = "auto"
    drop_path_uniform: bool = False  # DINOv2: one rate in every block (DINO: linear ramp)
    drop_path_impl: str = "mask"  # mask | subset (branch on kept samples only) | auto (>0.1)
    pack_sequences: bool = False  # DINOv2 student: all crops as one block-diagonal sequence
    # Custom sizes; 0 keeps the arch's own (e.g. a 2-block ViT for tests or tiny data).
    embed_dim: int = 0
    depth: int = 0
    num_heads: int = 0


@dataclass
class HeadConfig:
    """The DINO projection head: MLP -> bottleneck -> L2 norm -> weight-normalised prototypes."""

    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    nlayers: int = 3
    norm_last_layer: bool = True
    freeze_last_layer_epochs: int = 1
    use_bn: bool = False  # BatchNorm after each hidden Linear (DINO's ResNet-50 recipe)
    # Prototype scores in fp32 also under bf16 autocast (bf16 rounds them ~10x worse than the
    # official fp16 path; fp32 costs < 1% of a step: benchmarks/RESULTS.md, issue 13)
    last_layer_fp32: bool = True


@dataclass
class IBOTHeadConfig(HeadConfig):
    """The iBOT head: a DINO head of its own; unset (null) fields take the DINO head's value."""

    norm_last_layer: bool | None = None  # null: as head.norm_last_layer
    freeze_last_layer_epochs: int | None = None  # null: as head.freeze_last_layer_epochs


@dataclass
class TeacherConfig:
    """The teacher: an EMA of the student whose centred, sharpened outputs are the targets."""

    momentum: float = 0.996  # EMA momentum at step 0, cosine to momentum_end
    momentum_end: float = 1.0
    temp_start: float = 0.04  # target temperature at step 0, linear warm-up to `temp`
    temp: float = 0.07
    temp_warmup_epochs: int = 30


@dataclass
class DataConfig:
    """Where the images are and how they are cut into views."""

    path: str = ""  # folder of images (recursive), an ImageFolder root, or a .txt file list
    format: str = "auto"  # auto | folder | imagefolder | filelist | shards (WebDataset .tar)
    global_size: int = 224
    local_size: int = 96
    num_local_crops: int = 8
    global_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])
    local_scale: list[float] = field(default_factory=lambda: [0.05, 0.4])
    # blur probability of global crop 1, global crop 2, local crops (DINO: 1.0, 0.1, 0.5; the
    # released DINOv2 models: 0.0, 0.9, 0.5) and solarize probability of global crop 2
    blur_p: list[float] = field(default_factory=lambda: [1.0, 0.1, 0.5])
    solarize_p: float = 0.2
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    num_workers: int = -1  # data-loader processes (-1 = auto: one per 4 cores, at least 1)
    cache_decoded: bool = False  # keep decoded images in RAM (small datasets only)
    # pil: each image's views cut by PIL in the loader workers (data/augment.py); batched: the
    # workers only decode and the collate cuts a whole batch's views with torch ops, the same
    # recipe (data/augment_batched.py; 3-4x less CPU on 32-64 px images, slower at 224 px)
    augment_impl: str = "pil"
    # True: each epoch drops the last incomplete global batch; False: a smaller last batch,
    # so every image is seen exactly once per epoch across all processes.
    drop_last: bool = True


@dataclass
class LossConfig:
    """The DINO objective: student temperature, centring, weights (teacher: `TeacherConfig`)."""

    student_temp: float = 0.1
    center_momentum: float = 0.9
    # How teacher scores become targets, for the DINO and iBOT losses: ema (DINO: EMA centre,
    # then sharpening) | sinkhorn (DINOv2: Sinkhorn-Knopp) | batch_softmax (softmax over the
    # batch per prototype, then rows normalised = one Sinkhorn-Knopp iteration; DINO's
    # no-momentum ablation)
    centering: str = "ema"
    sinkhorn_iterations: int = 3
    dino_weight: float = 1.0
    koleo_weight: float = 0.0  # DINOv2: 0.1, on the student's CLS of each global crop


@dataclass
class OptimConfig:
    """AdamW with per-iteration schedules; lr = base_lr * total_batch / 256."""

    base_lr: float = 0.0005
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0  # 0 disables clipping
    # per_param: each tensor clipped to clip_grad on its own (DINO); per_module_norm: one global
    # norm per module (backbone, DINO head, iBOT head), each clipped to clip_grad (DINOv2)
    clip_mode: str = "per_param"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_scaling: str = "linear_256"  # linear_256 (base_lr * B / 256) | sqrt_1024 (DINOv2)
    layer_decay: float = 1.0  # layer-wise lr decay (block i of n gets decay ** (n - i))
    patch_embed_lr_mult: float = 1.0  # DINOv2: 0.2
    backbone_lr_mult: float = 1.0  # lr factor of every backbone parameter (e.g. 0.1 with init)


@dataclass
class IBOTConfig:
    """DINOv2's patch-level objective: masked global-crop patches; weight 0 turns it off."""

    weight: float = 0.0  # DINOv2: 1.0
    mask_probability: float = 0.5  # share of the images that get a mask
    mask_ratio: list[float] = field(default_factory=lambda: [0.1, 0.5])
    mask_min_patches: int = 4  # smallest block (BEiT)
    mask_aspect: list[float] = field(default_factory=lambda: [0.3, 1 / 0.3])
    separate_head: bool = True  # False shares the DINO head (and its prototypes)
    head: IBOTHeadConfig = field(default_factory=IBOTHeadConfig)  # with separate_head only
    center_momentum: float = 0.9  # EMA centering only


@dataclass
class HighResConfig:
    """DINOv2's short final phase at a higher resolution, from the same state (0 = off)."""

    iterations: int = 0
    global_size: int = 518
    local_size: int = 0  # 0: data.local_size (the batch size stays train's)
    lr: float = 0.0  # constant lr of the phase; 0 keeps the last lr of the main schedule


@dataclass
class TrainConfig:
    """The loop: length, batch, precision, checkpoints and logs."""

    epochs: int = 100
    batch_size: int = 64  # per process
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # auto: bf16 autocast where the hardware has native bf16 (CUDA, AVX512-BF16 / AMX CPUs),
    # fp32 elsewhere (dinolab/hardware.py); bf16 | fp32 force it. Weights always stay fp32.
    precision: str = "auto"
    threads: int = 0  # torch intra-op threads of each process (0 = auto: the cores it may use)
    max_steps: int = 0  # stop after this many optimizer steps in total (0 = no limit)
    # e.g. 5min, 2h: stop after this much training time, every schedule fitted to it (the
    # warm-ups keep their share of train.epochs); "" = train for train.epochs
    time_budget: str = ""
    checkpoint_every_epochs: int = 1
    checkpoint_every_steps: int = 0  # also checkpoint mid-epoch every N steps (0 = off)
    keep_checkpoints: int = 1  # numbered snapshots kept besides checkpoint.pth (0 = none)
    log_every_steps: int = 10
    progress: bool = True
    # where metrics, the config and pictures go besides metrics.jsonl and train.log: any of
    # tensorboard (RUN/tensorboard), wandb (RUN/wandb; offline without an API key or with
    # WANDB_MODE=offline), mlflow (MLFLOW_TRACKING_URI, else a file store in RUN/mlruns)
    loggers: list[str] = field(default_factory=lambda: ["tensorboard"])
    project: str = "dinolab"  # the W&B project / MLflow experiment of train.loggers
    tensorboard: bool = True  # false drops tensorboard from train.loggers (older configs)
    # Several processes (torchrun / SLURM): see dinolab/train/parallel.py.
    global_batch_size: int = 0  # >0: batch_size = global_batch_size / processes
    parallel: str = "ddp"  # ddp | fsdp (FSDP2: student, teacher and optimizer sharded)
    dist_backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | gloo | nccl
    dist_timeout_s: int = 1800  # a collective waiting longer means a process died
    # Ctrl-C / SIGTERM: finish the step, save, stop; exit unsaved if the save has not begun
    # this many seconds after the signal (SLURM and torchrun kill 30 s after SIGTERM)
    stop_grace_s: float = 30.0
    compile: bool = False  # torch.compile each backbone block (or the whole ResNet)
    activation_checkpointing: bool = False  # recompute student blocks in backward
    freeze_backbone_epochs: int = 0  # heads-only warm-up: no backbone updates in epochs < N
    # ema (momentum teacher) | student_copy | prev_iter (student before this step's update) |
    # prev_epoch (student frozen at each epoch start): DINO section 5.2, train/teacher_update.py
    teacher_update: str = "ema"


@dataclass
class EvalConfig:
    """k-NN health check during (every_epochs) and at the end of pretraining (optional)."""

    train: str = ""  # labelled ImageFolder for the k-NN memory bank
    val: str = ""  # labelled ImageFolder to classify
    k: list[int] = field(default_factory=lambda: [10, 20, 100, 200])
    temperature: float = 0.07
    image_size: int = 0  # 0: data.global_size
    # The shorter side is resized to image_size * resize_ratio, then centre-cropped: ImageNet's
    # 256 / 224 by default; 1.0 keeps the whole frame (`cpu_fast`, which trains on near-full
    # crops of whole objects). The raw-pixel baseline gets the same view.
    resize_ratio: float = 256 / 224  # data.augment.IMAGENET_RESIZE_RATIO
    batch_size: int = 128
    every_epochs: int = 0  # online k-NN every N epochs during pretraining (0 = only at the end)
    student: bool = False  # also measure the student in the online k-NN
    max_train_images: int = 0  # online k-NN: cap the memory bank (0 = all)
    max_val_images: int = 0  # online k-NN: cap the queries (0 = all)


@dataclass
class VizConfig:
    """Attention maps of a few fixed images during pretraining, to watch the properties emerge."""

    every_epochs: int = 0  # write run_dir/viz/attention_epochNNNN.png every N epochs (0 = off)
    images: list[str] = field(default_factory=list)  # files or folders; [] = first of data.path
    num_images: int = 4  # at most this many images
    image_size: int = 0  # shorter side in pixels (rounded to the patch); 0: data.global_size
    block: int = -1  # which block's CLS attention (-1 = the last)


@dataclass
class Config:
    """A whole run. Saved resolved as `config.yaml` in the run directory."""

    out_dir: str = "runs/dino"
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ibot: IBOTConfig = field(default_factory=IBOTConfig)
    highres: HighResConfig = field(default_factory=HighResConfig)
    viz: VizConfig = field(default_factory=VizConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    gram: GramConfig = field(default_factory=GramConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        """Resolve the derived defaults once (idempotent: a resolved Config stays the same)."""
        self.eval.image_size = self.eval.image_size or self.data.global_size
        self.viz.image_size = self.viz.image_size or self.data.global_size
        self.highres.local_size = self.highres.local_size or self.data.local_size
        ibot = self.ibot.head
        if ibot.norm_last_layer is None:
            ibot.norm_last_layer = self.head.norm_last_layer
        if ibot.freeze_last_layer_epochs is None:
            ibot.freeze_last_layer_epochs = self.head.freeze_last_layer_epochs
