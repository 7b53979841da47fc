import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dinolab.curate.dedup import apply_whitening, dedup, fit_whitening
from dinolab.curate.store import PROGRESS, VALID, Selection, write_json


def _store(path, x: torch.Tensor) -> Selection:
    path.mkdir()
    np.save(path / "embeddings.npy", x.numpy())
    np.save(path / "hashes.npy", np.array([i.to_bytes(20, "big") for i in range(1, len(x) + 1)],
                                          "S20"))  # fmt: skip
    (path / "files.txt").write_text("".join(f"/x/{i}.png\n" for i in range(len(x))))
    np.save(path / VALID, np.ones(len(x), bool))
    write_json(path / PROGRESS, {"count": len(x), "done": len(x)})  # a finished store
    return Selection(path, np.arange(len(x)))


def _anisotropic(n: int, seed: int = 0) -> torch.Tensor:
    """Unit rows with one large shared offset (every raw cosine > 0.999) and unequal
    variances per direction."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, -1, 16)
    return F.normalize(torch.randn(n, 16, generator=g) * scales + 100.0, dim=1)


def test_fit_whitening_gives_unit_covariance_on_the_kept_directions():
    x = _anisotropic(400)
    w = fit_whitening(x, dims=6)
    z = (x - w["mean"]) @ w["projection"].T
    assert z.shape == (400, 6)
    assert torch.allclose(z.T @ z / 400, torch.eye(6), atol=1e-3)
    assert fit_whitening(x, dims=99)["projection"].shape == (16, 16)  # clamped to the dim
    assert torch.allclose(apply_whitening(w, x).norm(dim=1), torch.ones(400))
    with pytest.raises(ValueError, match="learned on 16-d embeddings and these are 8-d"):
        apply_whitening(w, x[:, :8])


def test_whitening_joins_planted_copies_hidden_under_a_dominant_direction(tmp_path):
    x = _anisotropic(60)
    g = torch.Generator().manual_seed(1)
    x[50:] = F.normalize(x[:10] + 1e-5 * torch.randn(10, 16, generator=g), dim=1)
    sel = _store(tmp_path / "emb", x)
    raw = dedup(sel, tmp_path / "raw", k=8, threshold=0.999, progress=False, figure_groups=0)
    white = dedup(sel, tmp_path / "w", k=8, threshold=0.95, progress=False, figure_groups=0,
                  whiten="all")  # fmt: skip
    assert raw["images"] == 1  # raw cosines are all near 1: everything chains together
    labels = np.load(tmp_path / "w" / "components.npy")
    assert white["images"] == 50 and all(labels[i] == labels[50 + i] for i in range(10))
    assert white["whiten_dims"] == 16 and white["whiten_on"] == "pool"
    assert (tmp_path / "w" / "whitening.pt").is_file()


def test_against_sets_and_later_runs_use_the_saved_whitening(tmp_path):
    x, other = _anisotropic(40), _anisotropic(300, seed=5)
    sel = _store(tmp_path / "emb", x)
    _store(tmp_path / "sep", other)
    evals = _store(tmp_path / "eval", x[[5, 6]].clone())  # exact copies of two pool rows
    kw = {"k": 8, "threshold": 0.99, "against_threshold": 0.999, "progress": False,
          "figure_groups": 0, "whiten": 8}  # fmt: skip
    first = dedup(sel, tmp_path / "a", [evals], whiten_on=tmp_path / "sep", **kw)
    w = torch.load(tmp_path / "a" / "whitening.pt", weights_only=True)
    assert torch.allclose(w["mean"], other.mean(0), atol=1e-6)  # learned on the separate set
    assert first["whiten_on"] == str(tmp_path / "sep") and first["whiten_dims"] == 8
    assert first["eval_overlap_images"] == 2  # the eval rows went through the same whitening
    again = dedup(sel, tmp_path / "b", [evals], whiten_on=tmp_path / "a" / "whitening.pt", **kw)
    saved = tmp_path / "a" / "whitening.pt"
    assert again["whiten_on"] == f"{saved} (learned on {tmp_path / 'sep'})"
    assert np.array_equal(np.load(tmp_path / "a" / "components.npy"),
                          np.load(tmp_path / "b" / "components.npy"))  # fmt: skip
    assert torch.equal(torch.load(tmp_path / "b" / "whitening.pt", weights_only=True)["projection"],
                       w["projection"])  # fmt: skip


def test_whiten_and_center_together_are_refused(tmp_path):
    sel = _store(tmp_path / "emb", _anisotropic(10))
    with pytest.raises(ValueError, match="give --center or --whiten"):
        dedup(sel, tmp_path / "d", progress=False, center=True, whiten="all")


def test_a_rerun_with_other_settings_in_the_same_folder_recomputes_the_knn_graph(tmp_path):
    x = _anisotropic(60)
    x[50:] = F.normalize(x[:10] + 1e-5 * torch.randn(10, 16), dim=1)
    sel = _store(tmp_path / "emb", x)
    kw = {"k": 8, "threshold": 0.95, "progress": False, "figure_groups": 0}
    raw = dedup(sel, tmp_path / "same", **kw)
    white = dedup(sel, tmp_path / "same", whiten="all", **kw)  # not the raw graph's cache
    fresh = dedup(sel, tmp_path / "fresh", whiten="all", **kw)
    assert raw["images"] == 1 and white["images"] == fresh["images"] == 50
