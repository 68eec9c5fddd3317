"""Which devices a training job uses: every visible GPU, data-parallel, else the CPU.

With several GPUs Ultralytics runs DistributedDataParallel: the launching process spawns one worker per GPU
(``torch.distributed.run``); only rank 0 validates, saves ``last.pt``/``best.pt`` and runs the
``on_model_save`` callback, so the per-epoch metric line and the checkpoint copy are produced once, by rank 0.
"""

from __future__ import annotations


def visible_gpu_count(sm_num_gpus: str | None, cuda_device_count: int) -> int:
    """GPUs to train on: SageMaker's ``SM_NUM_GPUS`` when set (capped by what CUDA sees), else CUDA's count.

    The cap matters when a GPU instance type runs a CPU-only image: SageMaker still says 4, CUDA says 0.
    """
    if sm_num_gpus is None or not sm_num_gpus.strip():
        return max(cuda_device_count, 0)
    try:
        declared = int(sm_num_gpus)
    except ValueError as error:
        raise ValueError(f"SM_NUM_GPUS={sm_num_gpus!r} is not an integer") from error
    if declared < 0:
        raise ValueError(f"SM_NUM_GPUS={sm_num_gpus!r} is negative")
    return min(declared, max(cuda_device_count, 0))


def device_for_gpu_count(gpu_count: int) -> str:
    """The Ultralytics ``device`` argument: 0 -> ``cpu``, 1 -> ``0``, N -> ``0,1,...,N-1`` (DDP)."""
    if gpu_count < 0:
        raise ValueError(f"gpu_count must be >= 0, got {gpu_count}")
    if gpu_count == 0:
        return "cpu"
    return ",".join(str(index) for index in range(gpu_count))


def resolve_device(requested: str, sm_num_gpus: str | None, cuda_device_count: int) -> str:
    """The ``device`` hyperparameter (``auto``, ``cpu`` or indices) turned into Ultralytics' argument."""
    if requested == "auto":
        return device_for_gpu_count(visible_gpu_count(sm_num_gpus, cuda_device_count))
    if requested == "cpu":
        return "cpu"
    indices = [int(i) for i in requested.split(",")]
    missing = [i for i in indices if i >= cuda_device_count]
    if missing:
        raise ValueError(f"device={requested!r} asks for GPU(s) {missing} but only {cuda_device_count} are visible")
    return requested


def amp_setting(requested: str, device: str, bf16_supported: bool) -> bool | str:
    """Mixed precision for Ultralytics without its AMP self-check.

    Ultralytics' check (fp16 ``amp=True``) loads yolo26n.pt and downloads it when absent, which a training job
    must never do. ``bf16`` skips that check entirely (bf16 needs no GradScaler), so ``auto`` means bf16 on GPUs
    that support it (Ampere and newer: A10G, L4, L40S, A100, H100) and full fp32 elsewhere (CPU, T4/V100).
    """
    if requested == "false" or device == "cpu":
        return False
    if requested == "bf16":
        return "bf16"
    return "bf16" if bf16_supported else False
