import math

import torch
import torch.nn.functional as F

from dinolab.eval.knn import knn_classify


def test_votes_by_hand():
    # 2-D unit features; test point at angle 0. Train: two of class 0 near, one of class 1 nearer.
    angles = torch.tensor([0.1, 0.2, 0.05, 3.0])
    train = torch.stack([angles.cos(), angles.sin()], 1)
    train_labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[1.0, 0.0]])
    T = 0.07
    # k=1: nearest is index 2 (class 1).
    # k=3: class 0 weight exp(cos .1/T)+exp(cos .2/T), class 1 exp(cos .05/T).
    w0 = math.exp(math.cos(0.1) / T) + math.exp(math.cos(0.2) / T)
    w1 = math.exp(math.cos(0.05) / T)
    assert w0 > w1  # so class 0 wins with k=3
    res = knn_classify(
        train, train_labels, test, torch.tensor([0]), ks=(1, 3), temperature=T, num_classes=2
    )
    assert res[1]["top1"] == 0.0
    assert res[3]["top1"] == 100.0
    assert res[1]["top5"] == 100.0  # only 2 classes: top-5 always contains the truth


def test_temperature_changes_the_vote():
    # One very close neighbour of class 1 vs two moderately close of class 0.
    angles = torch.tensor([0.5, 0.5, 0.01])
    train = torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.tensor([0, 0, 1])
    test = torch.tensor([[1.0, 0.0]])
    sharp = knn_classify(
        train, labels, test, torch.tensor([1]), ks=(3,), temperature=0.01, num_classes=2
    )
    flat = knn_classify(
        train, labels, test, torch.tensor([1]), ks=(3,), temperature=100.0, num_classes=2
    )
    assert sharp[3]["top1"] == 100.0 and flat[3]["top1"] == 0.0


def test_clusters_and_chunking_agree():
    g = torch.Generator().manual_seed(0)
    centers = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    labels = torch.arange(5).repeat_interleave(40)
    feats = F.normalize(centers[labels] + 0.05 * torch.randn(200, 16, generator=g), dim=1)
    a = knn_classify(feats[::2], labels[::2], feats[1::2], labels[1::2], ks=(10, 20, 200))
    b = knn_classify(
        feats[::2], labels[::2], feats[1::2], labels[1::2], ks=(10, 20, 200), chunk_size=7
    )
    assert a == b
    assert a[10]["top1"] == 100.0
    assert set(a) == {10, 20, 200}  # k larger than the bank is clipped, not an error


def test_bank_chunks_and_unnormalised_rows_agree():
    g = torch.Generator().manual_seed(1)
    train, test = torch.randn(50, 8, generator=g), torch.randn(20, 8, generator=g)
    labels, test_labels = torch.arange(50) % 4, torch.arange(20) % 4
    ref = knn_classify(
        F.normalize(train, dim=1), labels, F.normalize(test, dim=1), test_labels, ks=(1, 5, 20)
    )
    chunked = knn_classify(
        3 * train, labels, test, test_labels, ks=(1, 5, 20), chunk_size=6, bank_chunk_size=7
    )
    assert chunked == ref


def test_bank_prepared_once_matches_chunked_bank():
    g = torch.Generator().manual_seed(2)
    train, test = torch.randn(40, 8, generator=g), torch.randn(15, 8, generator=g)
    labels, test_labels = torch.arange(40) % 3, torch.arange(15) % 3
    once = knn_classify(2 * train, labels, test, test_labels, ks=(1, 10), chunk_size=4)
    chunked = knn_classify(
        2 * train, labels, test, test_labels, ks=(1, 10), chunk_size=4, bank_chunk_size=9
    )
    assert once == chunked
