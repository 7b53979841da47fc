"""Attention videos from a folder of frames: GIF (and MP4 where imageio-ffmpeg is installed)."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from dinolab.viz.video import attention_video

from .test_attention import save_image, tiny_vit


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        save_image(folder / f"f{i:02d}.png", 32, 40, seed=i)
    return folder


def test_gif_and_preview(frames, tmp_path):
    out = attention_video(tiny_vit(), frames, tmp_path / "v" / "att.gif", size=32, fps=5)
    assert out["frames"] == 3
    with Image.open(out["video"]) as gif:
        assert gif.format == "GIF" and gif.n_frames == 3 and gif.size == (80, 32)
    with Image.open(out["preview"]) as im:
        assert im.format == "PNG"


def test_mp4(frames, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    out = attention_video(tiny_vit(), frames, tmp_path / "att.mp4", size=32, head=1)
    assert out["video"].stat().st_size > 0


def test_bad_arguments(frames, tmp_path):
    with pytest.raises(ValueError, match=".gif or .mp4"):
        attention_video(tiny_vit(), frames, tmp_path / "att.avi")
    with pytest.raises(ValueError, match="head 7 does not exist"):
        attention_video(tiny_vit(), frames, tmp_path / "att.gif", head=7)


def test_one_preview_per_format_made_from_the_written_file(frames, tmp_path, monkeypatch):
    """GIF and MP4 of one stem keep a preview each, decoded back from their own file (a GIF's
    frames are quantised to 256 colours: the preview shows that, not the raw frames)."""
    import dinolab.viz.video as video

    seen = {}
    real = video.stored_frames
    monkeypatch.setattr(
        video, "stored_frames", lambda v, picks: seen.setdefault(v.suffix, real(v, picks))
    )
    formats = [".gif"] + [".mp4"] * bool(importlib.util.find_spec("imageio_ffmpeg"))
    previews = set()
    for suffix in formats:
        out = attention_video(tiny_vit(), frames, tmp_path / f"att{suffix}", size=32)
        assert out["preview"] == tmp_path / f"att_{suffix[1:]}_preview.png"
        with Image.open(out["preview"]) as im:
            assert im.format == "PNG"
        previews.add(out["preview"])
        assert sorted(seen[suffix]) == [0, 1, 2] and seen[suffix][0].dtype == np.uint8
    assert len(previews) == len(formats) and all(p.is_file() for p in previews)
    with Image.open(tmp_path / "att.gif") as gif:  # what the file holds, frame 1
        gif.seek(1)
        assert np.array_equal(seen[".gif"][1], np.asarray(gif.convert("RGB")))
