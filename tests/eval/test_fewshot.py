import pytest
import torch
import torch.nn.functional as F

from dinolab.eval.fewshot import fewshot_knn, fewshot_table, sample_per_class


def test_sampling_picks_exactly_n_per_class():
    labels = torch.tensor([0] * 7 + [1] * 3 + [2] * 5)
    for seed in range(3):
        idx = sample_per_class(labels, 3, seed)
        assert torch.bincount(labels[idx], minlength=3).tolist() == [3, 3, 3]
        assert len(set(idx.tolist())) == 9
    assert not torch.equal(sample_per_class(labels, 2, 0), sample_per_class(labels, 2, 1))
    with pytest.raises(ValueError, match="Class 1 has 3 training image"):
        sample_per_class(labels, 4, 0)


def test_fewshot_mean_and_std_over_tries():
    g = torch.Generator().manual_seed(0)
    centers = F.normalize(torch.randn(3, 16, generator=g), dim=1)
    labels = torch.arange(3).repeat_interleave(20)
    feats = centers[labels] + 0.05 * torch.randn(60, 16, generator=g)
    res = fewshot_knn(feats, labels, feats, labels, shots=(1, 4), tries=3, ks=(1, 20))
    s = res["4"]["20"]["top1"]
    assert len(s["runs"]) == 3 and s["mean"] == 100.0 and s["std"] == 0.0
    assert set(res) == {"1", "4"}
    table = fewshot_table(
        {"scores": res, "n_classes": 3, "n_val": 60, "tries": 3, "temperature": 0.07}
    )
    assert "| 4 | 20 | 100.00 ± 0.00 |" in table
