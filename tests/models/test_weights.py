"""models.weights.save_safetensors: weights files get the umask's permissions, not 0600."""

import os
import stat

import pytest
import torch

from dinolab.models.weights import save_safetensors


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_safetensors_files_get_the_permissions_of_any_new_file(tmp_path, mask):
    before = os.umask(mask)
    try:
        path = save_safetensors({"w": torch.zeros(2)}, tmp_path / "w.safetensors", {"a": "b"})
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # 0644, 0640
