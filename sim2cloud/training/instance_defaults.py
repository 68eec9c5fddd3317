"""Training settings that fit the instance: batch size, dataloader workers, image cache and mixed precision.

A hyperparameter left at ``auto`` (the default of ``batch``, ``workers``, ``cache`` and ``amp``) is chosen here
from what the job finds: GPU count and memory, usable CPUs, available RAM and the dataset's size. A value the
user set always wins. :func:`choose_settings` is a pure function of :class:`InstanceFacts` (tested without a
GPU); :func:`gather_facts` reads the facts from the machine, and :func:`describe` is the log block the job
prints once at its start.

Why these rules (YOLOv8 on SageMaker GPU instances):

* **batch**: Ultralytics accumulates gradients up to a nominal batch of 64 images (``nbs``), so any batch up to
  64 per optimizer step trains the same way; a larger batch only cuts per-step overhead (Python, the
  assigner, kernel launches) that leaves a fast GPU idle at batch 16. YOLOv8n at 640 px with batch 64, bf16 and
  the GPU-drawn augmentation reserved 8.4 GiB on an H200 (Ultralytics' GPU_mem); the per-GPU batch is halved for
  each step of model scale (s, m, l, x), for smaller GPUs and for larger images, and doubled for small images,
  between 8 and 128. It never exceeds a quarter of the training images (an epoch keeps at least 4 steps).
* **workers**: mosaic and the affine warp run on the CPU, one image per worker at a time; every usable CPU of a
  rank but one (the rank's own process feeds the GPU) becomes a worker. Usable CPUs are the process's affinity
  (``taskset``, container CPU sets), not the host's count.
* **cache**: decoding JPEGs is the largest CPU cost after augmentation; decoded images (resized to ``imgsz``
  once) are kept in RAM when every rank's copy fits in half of the available memory.
* **amp**: bf16 on GPUs that support it (Ampere and newer), else fp32 (fp16 needs Ultralytics' AMP check, which
  downloads weights).
* **threads**: on CPU, Ultralytics sets PyTorch to CPUs - 1 threads (1 of 2 cores); the job computes on all,
  unless the machine is already busy (then threads waiting for each other's cores slow every step).
* **gpu_augment**: with few vCPUs per GPU the CPU-side mosaic and warp are the limit; when the decoded images are
  cached and fit in a quarter of a GPU's memory, the GPU draws them (:mod:`sim2cloud.training.gpu_augment`).
* **channels_last**: in bf16 cuDNN's convolutions are much faster on NHWC tensors: one YOLOv8n step (batch 64,
  640 px, forward, loss, backward, AdamW, EMA) took 47-53 ms in channels_last vs 104 ms in PyTorch's default
  NCHW on an H200 (``bench/train_step_profile.py``, two runs). Without bf16 (fp32 on older GPUs) it stays off,
  and on CPU too: oneDNN's NHWC steps looked faster on the busy 2-core dev machine, but the demo trained that way
  ended below its quality gate (Ultralytics-val mAP50 0.4988 vs 0.5087 in NCHW; its schedule was fitted in NCHW).
* **cuda_graphs**: on one GPU a step of a small model is limited by Python launching its kernels (an H200 spent
  63 ms of wall time on a batch-64 YOLOv8n step holding 39 ms of GPU kernels); replaying the forward, the loss
  (written with fixed shapes, :mod:`sim2cloud.training.static_loss`) and the backward as CUDA graphs launches
  each pass once (:mod:`sim2cloud.training.cuda_graphs`): 37.4 ms for 36.4 ms of kernels. Off with several
  GPUs: DDP all-reduces gradients inside the backward pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim2cloud.hyperparameters import AUTO
from sim2cloud.training import devices

AUTO_SETTINGS = ("batch", "workers", "cache", "amp", "threads", "gpu_augment", "channels_last", "cuda_graphs")
"""The hyperparameters chosen here when left at ``auto``."""

REFERENCE_IMGSZ = 640
"""Image size the per-GPU batch table is written for; other sizes scale the batch by the pixel ratio."""
GPU_BATCH_BY_MEMORY_GIB = ((40.0, 64), (20.0, 64), (14.0, 32), (0.0, 16))
"""(smallest GPU memory in GiB, batch per GPU for YOLOv8n at 640 px): A10G/L4 (24 GiB) and larger take 64,
a T4 (16 GiB) 32, anything smaller 16. 64 is Ultralytics' nominal batch: larger steps change the schedule."""
MIN_BATCH, MAX_GPU_BATCH = 8, 128
MIN_STEPS_PER_EPOCH = 4
CPU_BATCH = 16
"""On CPU images/s hardly depend on the batch; Ultralytics' default keeps its schedule."""
GPU_STORE_SHARE = 0.25
"""Draw augmentation on the GPU only when the decoded images take at most this share of a GPU's memory."""
BUSY_LOAD_PER_CPU = 0.5
"""Above this load per CPU, CPU training keeps Ultralytics' CPUs - 1 threads (oversubscribed OpenMP threads
stall each other: 2 threads on a 2-core machine at load 6 per core ran 10x slower than 1)."""
CACHE_RAM_SHARE = 0.5
"""Cache in RAM only when all ranks' decoded images take at most this share of the available memory."""
BYTES_PER_CACHED_PIXEL = 3
MODEL_SCALES = "nsmlx"


@dataclass(frozen=True)
class InstanceFacts:
    """What the job finds on its instance and in its dataset."""

    gpu_count: int
    """GPUs the job trains on (0: CPU)."""
    gpu_memory_gib: float
    """Memory of the smallest of those GPUs (0 without GPUs)."""
    bf16_supported: bool
    cpu_count: int
    """CPUs this process may run on (its affinity), at least 1."""
    ram_available_gib: float
    """Memory available to the job (the container's limit when lower than the host's)."""
    train_images: int
    val_images: int
    imgsz: int
    model: str
    """The ``model`` hyperparameter (``yolov8s.yaml``, ``weights.pt``): its scale letter sizes the batch."""
    load_per_cpu: float = 0.0
    """1-minute load average per usable CPU when the job starts (other work already running on the machine)."""


@dataclass(frozen=True)
class Choice:
    """One setting: the value passed to Ultralytics and why."""

    value: Any
    reason: str
    user_set: bool = False


def model_scale(model: str) -> str:
    """``yolov8s.yaml`` -> ``s``; ``n`` when the name carries no scale letter (custom YAMLs, weights files)."""
    match = re.search(r"yolo[a-z]*?\d+([nsmlx])", Path(model).stem.lower())
    return match.group(1) if match else "n"


def _power_of_two_at_most(value: float) -> int:
    result = 1
    while result * 2 <= value:
        result *= 2
    return result


def _choose_batch(facts: InstanceFacts) -> Choice:
    steps_cap = max(facts.train_images // MIN_STEPS_PER_EPOCH, 1)
    if facts.gpu_count == 0:
        batch = max(min(CPU_BATCH, steps_cap), 1)
        return Choice(batch, f"CPU training: Ultralytics' default {CPU_BATCH}" + _capped(batch, CPU_BATCH, facts))
    base = next(batch for memory, batch in GPU_BATCH_BY_MEMORY_GIB if facts.gpu_memory_gib >= memory)
    scale = model_scale(facts.model)
    per_gpu = base * (REFERENCE_IMGSZ / facts.imgsz) ** 2 / 2 ** MODEL_SCALES.index(scale)
    wanted = min(max(_power_of_two_at_most(per_gpu), MIN_BATCH), MAX_GPU_BATCH)
    per_gpu_batch = max(min(wanted, steps_cap // facts.gpu_count), 1)
    reason = (
        f"{per_gpu_batch} per GPU x {facts.gpu_count} GPU(s) ({facts.gpu_memory_gib:.0f} GiB each, "
        f"model scale {scale}, imgsz {facts.imgsz}); up to the nominal batch 64 the optimizer steps as with 16"
    )
    return Choice(per_gpu_batch * facts.gpu_count, reason + _capped(per_gpu_batch, wanted, facts))


def _capped(batch: int, wanted: int, facts: InstanceFacts) -> str:
    if batch < wanted:
        return f"; capped so {facts.train_images} training images make >= {MIN_STEPS_PER_EPOCH} steps per epoch"
    return ""


def _choose_workers(facts: InstanceFacts) -> Choice:
    ranks = max(facts.gpu_count, 1)
    per_rank = max(facts.cpu_count // ranks, 1)
    if facts.gpu_count == 0:
        return Choice(0, "CPU training: Ultralytics loads in the training process on CPU (it forces 0 workers)")
    workers = max(per_rank - 1, 1)
    return Choice(
        workers, f"{facts.cpu_count} usable CPU(s) / {ranks} rank(s), one left per rank for its training process"
    )


def cached_bytes(facts: InstanceFacts) -> int:
    """RAM Ultralytics' ``cache=ram`` takes per rank: every train and val image decoded at ``imgsz``."""
    return (facts.train_images + facts.val_images) * facts.imgsz * facts.imgsz * BYTES_PER_CACHED_PIXEL


def _choose_cache(facts: InstanceFacts) -> Choice:
    ranks = max(facts.gpu_count, 1)
    needed_gib = cached_bytes(facts) * ranks / 2**30
    budget_gib = facts.ram_available_gib * CACHE_RAM_SHARE
    where = f"{needed_gib:.1f} GiB for {ranks} rank(s) vs {budget_gib:.1f} GiB (half the available RAM)"
    if needed_gib <= budget_gib:
        return Choice("ram", f"decoded images fit in RAM: {where}")
    return Choice(False, f"decoded images do not fit in RAM: {where}; decoding each epoch")


def _choose_threads(facts: InstanceFacts) -> Choice:
    if facts.gpu_count:
        return Choice(None, "GPU training: Ultralytics' thread settings (the GPU computes)")
    if facts.load_per_cpu > BUSY_LOAD_PER_CPU:
        return Choice(
            max(facts.cpu_count - 1, 1),
            f"the CPUs are busy with other work (load {facts.load_per_cpu:.1f} per CPU): Ultralytics' CPUs - 1, "
            "as threads that wait for each other's cores slow every step",
        )
    return Choice(facts.cpu_count, f"CPU training computes on every usable CPU ({facts.cpu_count})")


def _choose_amp(facts: InstanceFacts) -> Choice:
    device = devices.device_for_gpu_count(facts.gpu_count)
    value = devices.amp_setting(AUTO, device, facts.bf16_supported)
    if facts.gpu_count == 0:
        return Choice(value, "CPU training runs in fp32")
    if value:
        return Choice(value, "the GPU supports bf16 (no loss scaling, no AMP check download)")
    return Choice(value, "the GPU has no bf16 (fp16 would need Ultralytics' AMP check, which downloads weights)")


def _choose_gpu_augment(facts: InstanceFacts, cache: Any) -> Choice:
    if facts.gpu_count == 0:
        return Choice(False, "CPU training")
    if cache != "ram":
        return Choice(False, "the GPU draws from the decoded images, which are not cached in RAM")
    needed_gib = cached_bytes(facts) / 2**30
    budget_gib = facts.gpu_memory_gib * GPU_STORE_SHARE
    where = f"{needed_gib:.1f} GiB of decoded images per GPU vs {budget_gib:.1f} GiB (a quarter of its memory)"
    if needed_gib > budget_gib:
        return Choice(False, f"too large to keep on the GPU: {where}")
    return Choice(True, f"mosaic, affine, HSV and flips drawn on the GPU ({where}); CPU workers only move boxes")


def _choose_channels_last(facts: InstanceFacts, amp: Any) -> Choice:
    if facts.gpu_count == 0:
        return Choice(False, "CPU training")
    if amp != "bf16":
        return Choice(False, "no bf16 training: NHWC convolutions are not reliably faster in fp32")
    return Choice(True, "bf16 convolutions run fastest on NHWC tensors (an H200 step: 47-53 vs 104 ms)")


def _choose_cuda_graphs(facts: InstanceFacts) -> Choice:
    if facts.gpu_count == 0:
        return Choice(False, "CPU training")
    if facts.gpu_count > 1:
        return Choice(False, f"{facts.gpu_count} GPUs: DDP all-reduces gradients inside the backward pass")
    return Choice(
        True, "one GPU: the training step (forward, loss, backward) replayed without Python launching each kernel"
    )


def choose_settings(facts: InstanceFacts, requested: Mapping[str, Any]) -> dict[str, Choice]:
    """Each of :data:`AUTO_SETTINGS`: the user's value when it is not ``auto``, else the instance's choice.

    ``requested`` maps setting names to the parsed hyperparameter values (``auto`` or a concrete value); a
    name missing from it counts as ``auto``.
    """
    choosers = {
        "batch": _choose_batch,
        "workers": _choose_workers,
        "cache": _choose_cache,
        "amp": _choose_amp,
        "threads": _choose_threads,
        "cuda_graphs": _choose_cuda_graphs,
    }
    chosen: dict[str, Choice] = {}
    for name in AUTO_SETTINGS:
        value = requested.get(name, AUTO)
        if value != AUTO:
            chosen[name] = Choice(_ultralytics_value(name, value, facts), "set by the user", user_set=True)
        elif name == "gpu_augment":
            chosen[name] = _choose_gpu_augment(facts, chosen["cache"].value)
        elif name == "channels_last":
            chosen[name] = _choose_channels_last(facts, chosen["amp"].value)
        else:
            chosen[name] = choosers[name](facts)
    return chosen


def _ultralytics_value(name: str, value: Any, facts: InstanceFacts) -> Any:
    if name == "cache":
        return False if value == "false" else value
    if name == "amp":
        return devices.amp_setting(str(value), devices.device_for_gpu_count(facts.gpu_count), facts.bf16_supported)
    if name in ("gpu_augment", "channels_last", "cuda_graphs"):
        return value == "true"
    return value


def describe(facts: InstanceFacts, chosen: Mapping[str, Choice]) -> str:
    """The block the job logs once at its start: the facts, then each setting with its reason."""
    gpus = (
        f"{facts.gpu_count} GPU(s) of {facts.gpu_memory_gib:.0f} GiB" + (", bf16" if facts.bf16_supported else "")
        if facts.gpu_count
        else "no GPU"
    )
    lines = [
        f"training settings for this instance ({gpus}; {facts.cpu_count} usable CPU(s); "
        f"{facts.ram_available_gib:.1f} GiB RAM available; {facts.train_images} train + {facts.val_images} val "
        f"images at imgsz {facts.imgsz}):"
    ]
    for name, choice in chosen.items():
        lines.append(f"  {name} = {choice.value}: {choice.reason}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Reading the facts from the machine
# --------------------------------------------------------------------------------------
def usable_cpu_count() -> int:
    """CPUs this process may run on: its affinity (taskset, cgroup cpusets), which os.cpu_count() ignores."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def _meminfo_available_bytes(meminfo: str) -> int | None:
    match = re.search(r"^MemAvailable:\s+(\d+)\s+kB", meminfo, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def available_ram_gib(meminfo_path: Path = Path("/proc/meminfo"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> float:
    """MemAvailable, lowered to the container's cgroup memory limit (minus its usage) when there is one."""
    available: int | None = None
    if meminfo_path.is_file():
        available = _meminfo_available_bytes(meminfo_path.read_text())
    for limit_name, usage_name in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", None)):
        limit_file = cgroup_root / limit_name
        if not limit_file.is_file():
            continue
        text = limit_file.read_text().strip()
        if not text.isdigit():
            continue  # "max": no limit
        room = int(text)
        if usage_name and (cgroup_root / usage_name).is_file():
            room -= int((cgroup_root / usage_name).read_text().strip() or 0)
        available = room if available is None else min(available, room)
    return max(available or 0, 0) / 2**30


def _load_per_cpu() -> float:
    try:
        return os.getloadavg()[0] / usable_cpu_count()
    except OSError:  # not available on this platform
        return 0.0


def gather_facts(device: str, train_images: int, val_images: int, imgsz: int, model: str) -> InstanceFacts:
    """The facts of this machine for a job on ``device`` (``cpu`` or GPU indices, from ``devices.resolve_device``)."""
    gpu_indices = [] if device == "cpu" else [int(index) for index in device.split(",")]
    memory_gib, bf16 = 0.0, False
    if gpu_indices:
        import torch

        memory_gib = min(torch.cuda.get_device_properties(i).total_memory for i in gpu_indices) / 2**30
        bf16 = bool(torch.cuda.is_bf16_supported())
    return InstanceFacts(
        gpu_count=len(gpu_indices),
        gpu_memory_gib=memory_gib,
        bf16_supported=bf16,
        cpu_count=usable_cpu_count(),
        ram_available_gib=available_ram_gib(),
        load_per_cpu=_load_per_cpu(),
        train_images=train_images,
        val_images=val_images,
        imgsz=imgsz,
        model=model,
    )
