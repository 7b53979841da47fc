"""The evaluation fixtures (tiny labelled folders, a run directory with a tiny ViT teacher)."""

from tests.eval.conftest import backbone, folders, one_thread, run_dir  # noqa: F401
