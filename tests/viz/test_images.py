"""Where the pictures' images come from: files, folders and .txt lists."""

from dinolab.viz.images import image_paths

from .test_attention import save_image


def test_a_list_file_is_read_like_data_path_lists(tmp_path):
    (tmp_path / "imgs").mkdir()
    a = save_image(tmp_path / "imgs" / "a.png")
    b = save_image(tmp_path / "b.png", seed=1)
    listing = tmp_path / "imgs" / "list.txt"
    listing.write_text(f"# relative to the list's folder\na.png\n\n{b}\n")
    assert image_paths([listing]) == [a, b]
