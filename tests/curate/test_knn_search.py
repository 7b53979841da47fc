import pytest
import torch
import torch.nn.functional as F

from dinolab.curate.knn_search import faiss_available, knn, knn_to_disk


def _data(n=300, d=16, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_torch_knn_matches_a_full_sort_and_excludes_self():
    x = _data()
    sims, idx = knn(x, k=5, chunk_size=37, backend="torch")
    full = x @ x.T
    full.fill_diagonal_(-2)
    ref_s, ref_i = full.topk(5, dim=1)
    assert torch.equal(idx, ref_i) and torch.allclose(sims, ref_s)
    q = _data(20, seed=1)
    sims, idx = knn(q, x, k=7, chunk_size=50, backend="torch")
    assert torch.equal(idx, (q @ x.T).topk(7, dim=1).indices)


def test_k_is_capped_by_the_candidates():
    x = _data(4)
    sims, idx = knn(x, k=10, backend="torch")
    assert idx.shape == (4, 3)


def test_knn_to_disk_resumes_and_equals_knn(tmp_path):
    x = _data(100)
    sims, idx = knn_to_disk(x, None, 6, tmp_path, "self", chunk_size=30, backend="torch",
                            progress=False)  # fmt: skip
    ref = knn(x, k=6, backend="torch")
    assert (idx == ref[1].numpy()).all()
    import json

    state = json.loads((tmp_path / "self_progress.json").read_text())
    state["done"] = 60  # as if killed after two chunks: rows 60.. recomputed, rows < 60 kept
    (tmp_path / "self_progress.json").write_text(json.dumps(state))
    sims2, idx2 = knn_to_disk(x, None, 6, tmp_path, "self", chunk_size=30, backend="torch",
                              progress=False)  # fmt: skip
    assert (idx2 == idx).all()


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed (dinolab[curate])")
def test_faiss_and_torch_agree():
    x, q = _data(500), _data(40, seed=2)
    for base in (None, x):
        queries = x if base is None else q
        s1, i1 = knn(queries, base, k=10, chunk_size=64, backend="torch")
        s2, i2 = knn(queries, base, k=10, chunk_size=64, backend="faiss")
        assert torch.equal(i1, i2) and torch.allclose(s1, s2, atol=1e-5)


def test_asking_for_faiss_without_it_is_one_sentence(monkeypatch):
    import dinolab.curate.knn_search as ks

    monkeypatch.setattr(ks, "faiss_available", lambda: False)
    with pytest.raises(ValueError, match=r"pip install 'dinolab\[curate\]'"):
        knn(_data(10), k=2, backend="faiss")
