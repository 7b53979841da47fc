import torch

from dinolab.eval.logreg import fit_logreg, logreg_grid


def test_separable_data_is_learned_and_c_is_chosen_on_val():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(30)
    x = 3 * torch.eye(3, 6)[labels] + 0.3 * torch.randn(90, 6, generator=g)
    vx = 3 * torch.eye(3, 6)[labels] + 0.3 * torch.randn(90, 6, generator=g)
    res = logreg_grid(x, labels, vx, labels, 3, Cs=(1e-6, 1.0), max_iter=100)
    assert res["scores"][1.0]["top1"] == 100.0 and res["scores"][1.0]["train_top1"] == 100.0
    assert max(s["top1"] for s in res["scores"].values()) == res["scores"][res["best_C"]]["top1"]
    assert res["best_C"] == 1e-6  # a tie goes to the strongest penalty


def test_penalty_shrinks_weights():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 4, generator=g), torch.arange(40) % 2
    strong, _ = fit_logreg(x, y, 2, C=1e-3)
    weak, _ = fit_logreg(x, y, 2, C=1e3)
    assert strong.norm() < 0.1 * weak.norm()


def test_run_logreg_on_a_multi_block_avgpool_variant(backbone, folders):
    from dinolab.eval.logreg import run_logreg

    res = run_logreg(backbone, folders / "train", folders / "val", 32, Cs=(1.0,),
                     variant=(2, True), test_root=folders / "val", max_iter=20,
                     num_workers=0, precision="fp32", progress=False)  # fmt: skip
    assert res["features"] == "blocks2+avgpool" and res["n_test"] == res["n_val"] == 6
    assert res["best"]["test_top1"] == res["best"]["top1"]  # the test split is the val split
