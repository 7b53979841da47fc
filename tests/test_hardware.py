"""Precision, attention and thread choices from the hardware, with the probe mocked."""

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dinolab import hardware


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a given x86 CPU: `cpu(flags, onednn_bf16)`."""

    def fake(flags: set[str], onednn: bool, machine: str = "x86_64") -> hardware.CPUInfo:
        monkeypatch.setattr(hardware, "_cpu_flags_and_model", lambda: (flags, "Test CPU"))
        monkeypatch.setattr(hardware, "_onednn_bf16", lambda: onednn)
        monkeypatch.setattr(hardware.platform, "machine", lambda: machine)
        hardware.probe_cpu.cache_clear()
        hardware._warn_once.cache_clear()
        return hardware.probe_cpu()

    yield fake
    hardware.probe_cpu.cache_clear()
    hardware._warn_once.cache_clear()


def test_auto_is_fp32_on_a_cpu_without_native_bf16(cpu):
    info = cpu({"avx2", "fma"}, onednn=False)
    assert not info.native_bf16
    precision, note = hardware.resolve_precision("auto", "cpu")
    assert precision == "fp32"
    assert note == "precision auto -> fp32: this CPU has no native bf16 (no AVX512-BF16 or AMX)"


def test_auto_is_bf16_on_avx512_bf16_or_amx(cpu):
    for flag in ("avx512_bf16", "amx_bf16"):
        cpu({"avx512f", flag}, onednn=True)
        precision, note = hardware.resolve_precision("auto", "cpu")
        assert precision == "bf16"
        assert flag in note


def test_flags_without_onednn_support_are_not_native(cpu):
    # e.g. ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 machine: oneDNN will not use bf16
    info = cpu({"avx512_bf16"}, onednn=False)
    assert not info.native_bf16
    assert hardware.resolve_precision("auto", "cpu")[0] == "fp32"


def test_arm_bf16_extension(cpu):
    assert cpu({"fp", "asimd", "bf16"}, onednn=True, machine="aarch64").native_bf16
    assert not cpu({"fp", "asimd"}, onednn=True, machine="aarch64").native_bf16


def test_explicit_bf16_without_native_support_warns_once(cpu):
    cpu({"avx2"}, onednn=False)
    with pytest.warns(RuntimeWarning, match="bf16 is emulated and much slower"):
        assert hardware.resolve_precision("bf16", "cpu")[0] == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call must not warn again
        assert hardware.resolve_precision("bf16", "cpu")[0] == "bf16"


def test_explicit_fp32_and_native_bf16_do_not_warn(cpu):
    cpu({"avx512_bf16"}, onednn=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hardware.resolve_precision("fp32", "cpu")[0] == "fp32"
        assert hardware.resolve_precision("bf16", "cpu")[0] == "bf16"


def test_cuda_follows_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert hardware.resolve_precision("auto", "cuda:0") == (
        "bf16",
        "precision auto -> bf16: this GPU supports bf16",
    )
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert hardware.resolve_precision("auto", "cuda")[0] == "fp32"


def test_unknown_precision_is_one_sentence():
    with pytest.raises(ValueError, match="precision 'fp16' is unknown; use one of auto, bf16"):
        hardware.resolve_precision("fp16", "cpu")


def test_autocast_context_follows_the_resolution(cpu):
    cpu({"avx2"}, onednn=False)
    with hardware.autocast("cpu", "auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    cpu({"avx512_bf16"}, onednn=True)
    with hardware.autocast("cpu", "auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_thread_plan_from_cores():
    two = hardware.plan_threads(0, -1, cores=2)
    assert (two.torch_threads, two.num_workers) == (2, 0)  # no worker preempting a thread
    assert (
        two.reason == "2 of 2 cores for this process: 2 torch threads, data loaded in this process "
        "(no worker to preempt a torch thread)"
    )
    one = hardware.plan_threads(0, -1, cores=1)
    assert (one.torch_threads, one.num_workers) == (1, 0)
    # two torchrun processes on 16 cores: 8 each, 2 workers each
    ddp = hardware.plan_threads(0, -1, cores=16, procs_per_machine=2)
    assert (ddp.torch_threads, ddp.num_workers) == (6, 2)  # threads + workers = the share
    gpu = hardware.plan_threads(0, -1, cores=16, device_type="cuda")
    assert (gpu.torch_threads, gpu.num_workers) == (4, 10)
    explicit = hardware.plan_threads(3, 4, cores=2)
    assert (explicit.torch_threads, explicit.num_workers) == (3, 4)
    assert "expect contention" in explicit.reason


class _Threads(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return torch.get_num_threads()


def test_data_workers_run_single_threaded():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = [int(x) for x in DataLoader(_Threads(), batch_size=1, num_workers=1)]
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1]


def test_describe_is_json_ready():
    info = hardware.describe()
    assert {"model", "capability", "cores", "native_bf16", "bf16_reason", "torch"} <= info.keys()
