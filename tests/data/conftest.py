"""Fixtures: tiny image trees built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.data.image_zoo import gradient, write_zoo


@pytest.fixture
def zoo(tmp_path: Path) -> dict[str, Path]:
    return write_zoo(tmp_path / "zoo")


@pytest.fixture
def class_tree(tmp_path: Path) -> Path:
    """ImageFolder: root/{cat,dog}/..., one nested image, one hidden class folder."""
    root = tmp_path / "classes"
    img = Image.fromarray(gradient())
    for cls, n in (("cat", 2), ("dog", 3)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            img.save(root / cls / f"{i}.png")
    (root / "dog" / "puppies").mkdir()
    img.save(root / "dog" / "puppies" / "p.jpg")
    (root / ".trash").mkdir()
    img.save(root / ".trash" / "t.jpg")
    return root
