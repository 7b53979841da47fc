"""Label propagation: DINO's dense formula, a moving square tracked, and DINO's own script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dinolab.eval.davis_metrics import score_sequence, summarise
from dinolab.eval.label_propagation import LabelPropagator, labels_from_soft, propagate

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "transfer_davis.py"


def dense_dino(target, sources, labels, h, w, k, temperature, radius):
    """DINO's label_propagation written out: [C, N, N] affinities, window, top-k, normalise."""
    n = h * w
    aff = torch.exp(torch.einsum("nd,cmd->cnm", target, sources) / temperature)
    if radius > 0:
        ys, xs = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
        dy, dx = (ys[:, None] - ys[None]).abs(), (xs[:, None] - xs[None]).abs()
        near = (dy <= radius) & (dx <= radius)
        aff = aff * near.float()
    aff = aff.transpose(2, 1).reshape(-1, n)
    kth = aff.topk(k, dim=0).values.min(dim=0).values
    aff[aff < kth] = 0
    aff = aff / aff.sum(0, keepdim=True)
    return labels.permute(0, 2, 1).reshape(-1, labels.shape[1]).T @ aff


@pytest.mark.parametrize("h,w,contexts,radius", [(7, 9, 3, 2), (12, 10, 8, 3), (5, 6, 2, 0)])
def test_propagate_equals_the_dense_formula(h, w, contexts, radius):
    g = torch.Generator().manual_seed(h * w)
    target = F.normalize(torch.randn(h * w, 16, generator=g), dim=1)
    sources = F.normalize(torch.randn(contexts, h * w, 16, generator=g), dim=2)
    labels = torch.rand(contexts, 3, h * w, generator=g)
    ours = propagate(target, sources, labels, (h, w), 5, 0.1, radius)
    ref = dense_dino(target, sources, labels, h, w, 5, 0.1, radius)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


def test_ties_at_the_kth_affinity_are_all_kept_as_in_dino():
    g = torch.Generator().manual_seed(0)
    eye = torch.eye(4)
    target = eye[torch.randint(0, 4, (30,), generator=g)]
    sources = eye[torch.randint(0, 4, (3, 30), generator=g)]
    labels = torch.rand(3, 2, 30, generator=g)
    ours = propagate(target, sources, labels, (5, 6), 5, 0.1, 1)
    torch.testing.assert_close(ours, dense_dino(target, sources, labels, 5, 6, 5, 0.1, 1))


def moving_square(frames=10, size=16, side=5, step=1):
    """One-hot colour features of a square moving right (feature 1) on a background (0),
    with its ground-truth label maps at 8 px per patch."""
    feats, gts = [], []
    for t in range(frames):
        grid = torch.zeros(size, size, dtype=torch.long)
        grid[5 : 5 + side, 1 + t * step : 1 + t * step + side] = 1
        feats.append(F.one_hot(grid, 2).float())
        gts.append(np.kron(grid.numpy(), np.ones((8, 8), dtype=np.int64)).astype(np.uint8))
    return feats, gts


def track(feats, first_gt, patch=8, **kw):
    h, w = feats[0].shape[:2]
    seed = F.one_hot(torch.from_numpy(first_gt[::patch, ::patch]).long(), 2).permute(2, 0, 1)
    prop = LabelPropagator(feats[0], seed.float(), **kw)
    return [first_gt] + [labels_from_soft(prop.step(f), patch, first_gt.shape) for f in feats[1:]]


def test_a_moving_square_is_tracked_with_j_and_f_close_to_1():
    feats, gts = moving_square()
    preds = track(feats, gts[0])
    scores = summarise({"square": score_sequence(np.stack(gts), np.stack(preds))})
    assert scores["J-Mean"] > 0.95 and scores["F-Mean"] > 0.95  # 0.985 / 0.987 measured


def test_without_its_features_the_square_is_lost():
    """The same video with features that say nothing: the mask stays where it started."""
    feats, gts = moving_square(step=2)
    blank = [torch.ones_like(f) for f in feats]
    lost = summarise({"s": score_sequence(np.stack(gts), np.stack(track(blank, gts[0])))})
    kept = summarise({"s": score_sequence(np.stack(gts), np.stack(track(feats, gts[0])))})
    assert lost["J-Mean"] < 0.5 < kept["J-Mean"]


def test_the_queue_holds_the_first_frame_and_the_last_n():
    feats, gts = moving_square(frames=6)
    seed = torch.zeros(2, 16, 16)
    seed[0] = 1
    prop = LabelPropagator(feats[0], seed, n_last_frames=2)
    for f in feats[1:]:
        prop.step(f)
    assert len(prop.queue) == 2 and prop.queue.maxlen == 2


def test_labels_from_soft_upsamples_and_takes_the_argmax():
    soft = torch.zeros(2, 2, 3)
    soft[0] = 1.0
    soft[1, 1, 2] = 5.0  # one patch of object 1, the background elsewhere
    labels = labels_from_soft(soft, 4, (8, 12))
    assert labels.shape == (8, 12) and labels.dtype == np.uint8
    assert labels[6, 10] == 1 and labels[1, 1] == 0


def _official():
    spec = importlib.util.spec_from_file_location("transfer_davis", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    official = bench.load_official(bench.OFFICIAL_REPO)
    if official is None:
        pytest.skip(f"no facebookresearch/dino at {bench.OFFICIAL_REPO} (set DINO_OFFICIAL_REPO)")
    return bench, official


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 on DINO's np.array(PIL)
def test_same_masks_as_dinos_own_script(tmp_path):
    """DINO's eval_video_tracking_davis, run from a fetched copy on the same features."""
    bench, official = _official()
    g = torch.Generator().manual_seed(0)
    feats, gts = moving_square(frames=9)
    feats = torch.stack([f + 0.3 * torch.randn(f.shape, generator=g) for f in feats])
    first = tmp_path / "first.png"
    Image.fromarray(gts[0]).save(first)  # an "L" PNG of object indices, as read_seg expects
    names = [f"{t:05d}" for t in range(len(feats))]
    theirs = bench.official_propagation(official, feats, first, names, 8, tmp_path / "o", radius=3)
    ours = track(list(feats), gts[0], radius=3)
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {t}")
    assert sum(int(a.max()) for a in ours) == len(ours)  # the object is in every frame
