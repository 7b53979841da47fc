"""Dense-probe sets for `benchmarks/dense.py`, in the folder layouts `dinolab eval segment` and
`dinolab eval depth` read (DIR/images + DIR/masks, DIR/images + DIR/depth).

- davis_fg_bg: DAVIS-2016 as object / background, split by sequence (5 train, 5 val).
- cut_paste: textured shapes of 3 classes pasted on textured backgrounds (0 = background).
- raycast_depth: ground plane, walls, boxes and spheres ray-cast in numpy, exact depth.
- motorcycle_depth: scikit-image's stereo motorcycle, depth from its disparity (one image).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

DAVIS_TAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "davis2016-val-dev.tar"
DAVIS_TRAIN = ("blackswan", "breakdance", "car-roundabout", "cows", "dog")
DAVIS_VAL = ("drift-straight", "horsejump-high", "libby", "paragliding-launch", "scooter-black")


def _save(root: Path, name: str, rgb: np.ndarray, target: np.ndarray, kind: str) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / kind).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(root / "images" / f"{name}.png")
    if kind == "masks":
        Image.fromarray(target.astype(np.uint8), mode="L").save(root / kind / f"{name}.png")
    else:
        np.save(root / kind / f"{name}.npy", target.astype(np.float32))


def davis_fg_bg(out: Path, every: int = 10, short: int = 240, tar: Path = DAVIS_TAR) -> Path:
    """out/{train,val}: every `every`-th frame, shorter side `short`, masks 0 / 1."""
    src = out / "_davis"
    if not (src / "davis2016-val-dev").is_dir():
        src.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as t:
            t.extractall(src, filter="data")
    base = src / "davis2016-val-dev"
    for split, seqs in (("train", DAVIS_TRAIN), ("val", DAVIS_VAL)):
        for seq in seqs:
            frames = sorted((base / "JPEGImages" / "480p" / seq).glob("*.jpg"))[::every]
            for f in frames:
                img = Image.open(f).convert("RGB")
                mask = Image.open(base / "Annotations" / "480p" / seq / f"{f.stem}.png")
                w, h = round(img.width * short / img.height), short
                rgb = np.asarray(img.resize((w, h), Image.BICUBIC))
                m = np.asarray(mask.convert("L").resize((w, h), Image.NEAREST)) > 127
                _save(out / split, f"{seq}_{f.stem}", rgb, m.astype(np.uint8), "masks")
    for split in ("train", "val"):
        (out / split / "classes.json").write_text(json.dumps(["background", "object"]))
    return out


def _texture(rng: np.random.Generator, size: int, kind: int) -> np.ndarray:
    """[size, size, 3] uint8: stripes, checks, blobs or noise in random colours."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.5)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == 0:
        t = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    elif kind == 1:
        t = ((xx * freq / 2).astype(int) + (yy * freq / 2).astype(int)) % 2
    elif kind == 2:
        t = np.zeros((size, size))
        for cx, cy, r in rng.uniform(0, size, (12, 3)):
            t = np.maximum(t, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (r / 3 + 2) ** 2))
    else:
        t = rng.random((size, size))
    t = t[..., None].astype(np.float32)
    return (c1 * t + c2 * (1 - t)).clip(0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, size: int, cls: int) -> np.ndarray:
    """Class 1 disks, class 2 squares, class 3 triangles, of random size and place."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = rng.uniform(0.12, 0.3) * size
    cx, cy = rng.uniform(r, size - r, 2)
    if cls == 1:
        return (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
    if cls == 2:
        return (abs(xx - cx) < r) & (abs(yy - cy) < r)
    return (yy - cy < r) & (yy - cy > -r + 2 * abs(xx - cx))


def cut_paste(out: Path, n_train: int = 60, n_val: int = 30, size: int = 96, seed: int = 0) -> Path:
    """out/{train,val}: 1-3 objects per image; each class has its own texture kind (disks:
    stripes, squares: checks, triangles: blobs) in random colours, on a two-colour noise
    background; masks hold the class (0 = background)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            rgb = _texture(rng, size, 3)
            mask = np.zeros((size, size), np.uint8)
            for _ in range(int(rng.integers(1, 4))):
                cls = int(rng.integers(1, 4))
                m = _shape_mask(rng, size, cls)
                rgb[m] = _texture(rng, size, cls - 1)[m]
                mask[m] = cls
            _save(out / split, f"{split}{i:03d}", rgb, mask, "masks")
        names = ["background", "striped disk", "checked square", "blobby triangle"]
        (out / split / "classes.json").write_text(json.dumps(names))
    return out


def _render(rng: np.random.Generator, size: int, max_depth: float) -> tuple:
    """One scene: ground plane, back and side walls, boxes and spheres on the ground, seen by a
    pinhole camera (60 degree field of view) at the origin looking along +z. Depth = z."""
    f = size / (2 * np.tan(np.radians(30)))
    v, u = np.mgrid[0:size, 0:size] + 0.5
    d = np.stack([(u - size / 2) / f, -(v - size / 2) / f, np.ones((size, size))], -1)
    h, back, side = rng.uniform(0.8, 1.6), rng.uniform(0.6, 0.95) * max_depth, rng.uniform(2, 4)
    inf = np.full((size, size), np.inf)
    best_t, normal, colour = inf.copy(), np.zeros((size, size, 3)), np.zeros((size, size, 3))

    def hit(t, n, c):
        nonlocal best_t
        closer = (t > 1e-6) & (t < best_t)
        best_t = np.where(closer, t, best_t)
        normal[closer], colour[closer] = np.broadcast_to(n, d.shape)[closer], c[closer]

    def points(t):
        return d * np.where(np.isfinite(t), t, 0)[..., None]

    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 1] < 0, -h / d[..., 1], np.inf)  # ground y = -h: checks
        p = points(t)
        check = (np.floor(p[..., 0] * 1.5) + np.floor(p[..., 2] * 1.5)) % 2
        pal = rng.integers(40, 256, (2, 3))
        hit(t, np.array([0, 1, 0]), pal[check.astype(int)])
        p = points(np.full((size, size), back))  # back wall z = back: stripes
        stripes = (np.floor(p[..., 1] * 3) % 2).astype(int)
        hit(
            np.full((size, size), back),
            np.array([0, 0, -1]),
            rng.integers(40, 256, (2, 3))[stripes],
        )
        for sign in (-1, 1):  # side walls x = +-side: flat colour
            t = np.where(d[..., 0] * sign > 0, sign * side / d[..., 0], np.inf)
            hit(t, np.array([-sign, 0, 0]), np.broadcast_to(rng.integers(40, 256, 3), d.shape))
        for _ in range(int(rng.integers(1, 4))):  # boxes on the ground (slab method)
            lo = np.array([rng.uniform(-side + 0.5, side - 1.5), -h, rng.uniform(2, back - 1.5)])
            hi = lo + rng.uniform(0.4, 1.5, 3)
            t1, t2 = (lo - 0) / d, (hi - 0) / d
            tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
            t_in, t_out = tn.max(-1), tf.min(-1)
            t = np.where((t_in < t_out) & (t_in > 0), t_in, np.inf)
            face = tn.argmax(-1)
            n = -np.sign(d) * (np.arange(3) == face[..., None])
            hit(t, n, np.broadcast_to(rng.integers(40, 256, 3), d.shape))
        for _ in range(int(rng.integers(1, 3))):  # spheres resting on the ground
            r = rng.uniform(0.3, 0.9)
            c = np.array([rng.uniform(-side + r, side - r), -h + r, rng.uniform(2, back - r)])
            b, cc = (d * c).sum(-1), (d * d).sum(-1)
            disc = b**2 - cc * ((c * c).sum() - r**2)
            t = np.where(disc > 0, (b - np.sqrt(np.maximum(disc, 0))) / cc, np.inf)
            n = (points(t) - c) / r
            hit(t, n, np.broadcast_to(rng.integers(40, 256, 3), d.shape))
    light = np.array([0.4, 0.8, -0.45]) / np.linalg.norm([0.4, 0.8, -0.45])
    shade = 0.35 + 0.65 * np.clip((normal * light).sum(-1), 0, 1)
    noise = rng.normal(0, 6, (size, size, 3))
    rgb = (colour * shade[..., None] + noise).clip(0, 255).astype(np.uint8)
    depth = np.where(np.isfinite(best_t), best_t, 0.0)  # d_z = 1: t is the depth
    return rgb, np.where(depth <= max_depth, depth, 0.0)


def raycast_depth(
    out: Path, n_train: int = 60, n_val: int = 30, size: int = 96, seed: int = 0,
    max_depth: float = 10.0,
) -> Path:  # fmt: skip
    """out/{train,val}: ray-cast scenes with their exact depth in metres (.npy)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            rgb, depth = _render(rng, size, max_depth)
            _save(out / split, f"{split}{i:03d}", rgb, depth, "depth")
    return out


def motorcycle_depth(out: Path) -> Path:
    """out/{train,val}: the same one image, depth = f B / (disparity + doffs) with the Middlebury
    2014 calibration scaled to scikit-image's quarter-size copy (an approximation: a smoke case)."""
    from skimage.data import stereo_motorcycle

    left, _, disp = stereo_motorcycle()
    f, baseline, doffs = 3979.911 / 4, 0.193001, 124.343 / 4
    depth = np.where(np.isfinite(disp) & (disp > 0), f * baseline / (disp + doffs), 0.0)
    for split in ("train", "val"):
        _save(out / split, "motorcycle", left, depth, "depth")
    return out
