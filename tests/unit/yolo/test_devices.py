from __future__ import annotations

import pytest

from sim2cloud.training.devices import amp_setting, device_for_gpu_count, resolve_device, visible_gpu_count


@pytest.mark.parametrize(("gpus", "device"), [(0, "cpu"), (1, "0"), (2, "0,1"), (4, "0,1,2,3"), (8, "0,1,2,3,4,5,6,7")])
def test_gpu_count_to_ultralytics_device(gpus: int, device: str) -> None:
    assert device_for_gpu_count(gpus) == device


def test_negative_count_is_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        device_for_gpu_count(-1)


@pytest.mark.parametrize(
    ("sm_num_gpus", "cuda", "expected"),
    [
        (None, 0, 0),  # local CPU run
        (None, 2, 2),  # local GPUs, no SageMaker variable
        ("4", 4, 4),  # ml.g5.12xlarge
        ("4", 0, 0),  # GPU instance, CPU-only image: CUDA sees nothing
        ("1", 8, 1),  # SageMaker grants fewer than the host shows
        ("", 1, 1),
    ],
)
def test_visible_gpu_count(sm_num_gpus: str | None, cuda: int, expected: int) -> None:
    assert visible_gpu_count(sm_num_gpus, cuda) == expected


@pytest.mark.parametrize("bad", ["four", "-1"])
def test_bad_sm_num_gpus(bad: str) -> None:
    with pytest.raises(ValueError, match="SM_NUM_GPUS"):
        visible_gpu_count(bad, 1)


def test_resolve_auto_uses_every_visible_gpu() -> None:
    assert resolve_device("auto", "4", 4) == "0,1,2,3"
    assert resolve_device("auto", None, 0) == "cpu"
    assert resolve_device("cpu", "4", 4) == "cpu"
    assert resolve_device("1", "2", 2) == "1"
    with pytest.raises(ValueError, match="only 1 are visible"):
        resolve_device("0,1", "1", 1)


def test_amp_never_runs_the_downloading_fp16_check() -> None:
    assert amp_setting("auto", "cpu", bf16_supported=False) is False
    assert amp_setting("auto", "0,1", bf16_supported=True) == "bf16"
    assert amp_setting("auto", "0", bf16_supported=False) is False
    assert amp_setting("false", "0", bf16_supported=True) is False
    assert amp_setting("bf16", "cpu", bf16_supported=True) is False
