"""The training settings chosen for an instance: given facts -> settings and reasons; a user's value always wins."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sim2cloud.hyperparameters import AUTO, Hyperparameters, parse_hyperparameters
from sim2cloud.training import instance_defaults
from sim2cloud.training.instance_defaults import InstanceFacts, choose_settings

H200 = InstanceFacts(
    gpu_count=1,
    gpu_memory_gib=139.8,
    bf16_supported=True,
    cpu_count=16,
    ram_available_gib=120.0,
    train_images=1920,
    val_images=480,
    imgsz=640,
    model="yolov8n.yaml",
)
G5_XLARGE = dataclasses.replace(H200, gpu_memory_gib=22.0, cpu_count=4, ram_available_gib=14.0)
"""ml.g5.xlarge: one A10G (24 GB, about 22 GiB usable), 4 vCPUs, 16 GiB."""
T4_SMALL = dataclasses.replace(G5_XLARGE, gpu_memory_gib=14.6, bf16_supported=False)
P4D = dataclasses.replace(
    H200, train_images=24_000, val_images=6000, gpu_count=8, gpu_memory_gib=39.4, cpu_count=96, ram_available_gib=1100.0
)
CPU_2 = InstanceFacts(
    gpu_count=0,
    gpu_memory_gib=0.0,
    bf16_supported=False,
    cpu_count=2,
    ram_available_gib=20.0,
    train_images=640,
    val_images=160,
    imgsz=160,
    model="yolov8n.yaml",
)
ALL_AUTO = {name: AUTO for name in instance_defaults.AUTO_SETTINGS}


def values(facts: InstanceFacts, requested: dict[str, object] | None = None) -> dict[str, object]:
    return {name: choice.value for name, choice in choose_settings(facts, requested or ALL_AUTO).items()}


def test_a_large_gpu_gets_the_nominal_batch_every_cpu_but_one_the_ram_cache_and_bf16() -> None:
    assert values(H200) == {
        "batch": 64,
        "workers": 15,
        "cache": "ram",
        "amp": "bf16",
        "threads": None,
        "gpu_augment": True,
        "channels_last": True,
        "cuda_graphs": True,
    }


def test_a_small_cpu_gpu_instance_gets_workers_for_its_vcpus() -> None:
    # g5.xlarge: 4 vCPUs -> 3 workers and the main process; 2,400 decoded 640 px images (2.7 GiB) fit in 7 GiB.
    assert values(G5_XLARGE) == {
        "batch": 64,
        "workers": 3,
        "cache": "ram",
        "amp": "bf16",
        "threads": None,
        "gpu_augment": True,
        "channels_last": True,
        "cuda_graphs": True,
    }


def test_a_gpu_without_bf16_trains_in_fp32_with_a_smaller_batch() -> None:
    chosen = choose_settings(T4_SMALL, ALL_AUTO)
    assert (chosen["batch"].value, chosen["amp"].value, chosen["channels_last"].value) == (32, False, False)
    assert "no bf16" in chosen["amp"].reason


def test_channels_last_follows_bf16_training() -> None:
    assert values(H200)["channels_last"] is True
    assert values(H200, {**ALL_AUTO, "amp": "false"})["channels_last"] is False  # the user's fp32 turns it off
    assert values(T4_SMALL, {**ALL_AUTO, "amp": "bf16"})["channels_last"] is True
    assert values(CPU_2)["channels_last"] is False
    assert values(H200, {**ALL_AUTO, "channels_last": "false"})["channels_last"] is False


def test_cuda_graphs_run_on_exactly_one_gpu() -> None:
    assert values(H200)["cuda_graphs"] is True
    assert values(G5_XLARGE)["cuda_graphs"] is True
    p4d = choose_settings(P4D, ALL_AUTO)["cuda_graphs"]
    assert p4d.value is False and "DDP" in p4d.reason
    assert values(CPU_2)["cuda_graphs"] is False
    assert values(H200, {**ALL_AUTO, "cuda_graphs": "false"})["cuda_graphs"] is False


def test_every_gpu_gets_its_share_of_batch_and_cpus() -> None:
    # DDP: the batch is the total over ranks; each rank gets its CPUs' workers and caches its own copy
    # (30,000 decoded images, 37 GiB, are too many to keep on a 40 GiB GPU: its CPUs draw them).
    assert values(P4D) == {
        "batch": 512,
        "workers": 11,
        "cache": "ram",
        "amp": "bf16",
        "threads": None,
        "gpu_augment": False,
        "channels_last": True,
        "cuda_graphs": False,
    }
    # 1,920 images on 8 GPUs: 64 each would leave 3 steps an epoch.
    assert values(dataclasses.replace(P4D, train_images=1920))["batch"] == 8 * 60


def test_the_batch_follows_image_size_and_model_scale() -> None:
    assert values(dataclasses.replace(H200, imgsz=320))["batch"] == 128  # capped at MAX_GPU_BATCH
    assert values(dataclasses.replace(H200, model="yolov8s.yaml"))["batch"] == 32
    assert values(dataclasses.replace(H200, model="yolov8m.yaml", imgsz=1280))["batch"] == 8
    assert values(dataclasses.replace(H200, model="my-weights.pt"))["batch"] == 64


def test_a_small_dataset_keeps_several_steps_per_epoch() -> None:
    chosen = choose_settings(dataclasses.replace(H200, train_images=100), ALL_AUTO)
    assert chosen["batch"].value == 25 and "steps per epoch" in chosen["batch"].reason


def test_a_dataset_too_large_for_ram_is_decoded_every_epoch() -> None:
    chosen = choose_settings(dataclasses.replace(G5_XLARGE, train_images=200_000), ALL_AUTO)
    assert chosen["cache"].value is False
    assert "do not fit" in chosen["cache"].reason


def test_the_gpu_draws_augmentation_only_from_cached_images_that_fit_in_its_memory() -> None:
    assert values(dataclasses.replace(G5_XLARGE, train_images=40_000))["gpu_augment"] is False  # no RAM cache
    on_t4 = choose_settings(dataclasses.replace(T4_SMALL, ram_available_gib=200.0, train_images=4000), ALL_AUTO)
    assert on_t4["cache"].value == "ram" and on_t4["gpu_augment"].value is False
    assert "too large to keep on the GPU" in on_t4["gpu_augment"].reason
    assert values(H200, {**ALL_AUTO, "cache": "false"})["gpu_augment"] is False


def test_each_rank_caches_its_own_copy() -> None:
    one_rank = dataclasses.replace(H200, ram_available_gib=10.0)
    assert values(one_rank)["cache"] == "ram"
    assert values(dataclasses.replace(one_rank, gpu_count=4))["cache"] is False


def test_cpu_training_threads_use_every_cpu_unless_the_machine_is_busy() -> None:
    assert values(CPU_2)["threads"] == 2
    busy = choose_settings(dataclasses.replace(CPU_2, load_per_cpu=3.0), ALL_AUTO)["threads"]
    assert busy.value == 1 and "busy" in busy.reason
    assert values(dataclasses.replace(CPU_2, cpu_count=8, load_per_cpu=0.9))["threads"] == 7


def test_cpu_training_keeps_the_cores_for_compute() -> None:
    assert values(CPU_2) == {
        "batch": 16,
        "workers": 0,
        "cache": "ram",
        "amp": False,
        "threads": 2,
        "gpu_augment": False,
        "channels_last": False,
        "cuda_graphs": False,
    }


@pytest.mark.parametrize("facts", [H200, G5_XLARGE, T4_SMALL, P4D, CPU_2], ids=["h200", "g5", "t4", "p4d", "cpu"])
def test_a_user_setting_always_wins(facts: InstanceFacts) -> None:
    requested = {
        "batch": 8,
        "workers": 0,
        "cache": "false",
        "amp": "false",
        "threads": 3,
        "gpu_augment": "true",
        "channels_last": "true",
        "cuda_graphs": "false",
    }
    chosen = choose_settings(facts, requested)
    assert {name: choice.value for name, choice in chosen.items()} == {
        "batch": 8,
        "workers": 0,
        "cache": False,
        "amp": False,
        "threads": 3,
        "gpu_augment": True,
        "channels_last": True,
        "cuda_graphs": False,
    }
    assert all(choice.user_set and choice.reason == "set by the user" for choice in chosen.values())
    partly = choose_settings(facts, {**ALL_AUTO, "batch": 24})
    assert partly["batch"].value == 24 and not partly["workers"].user_set


def test_the_hyperparameters_default_to_auto_and_parse_a_user_value() -> None:
    assert {name: getattr(Hyperparameters(), name) for name in instance_defaults.AUTO_SETTINGS} == ALL_AUTO
    hp = parse_hyperparameters({"batch": "32", "workers": "auto", "cache": "disk", "amp": "AUTO"})
    assert (hp.batch, hp.workers, hp.cache, hp.amp) == (32, AUTO, "disk", AUTO)


def test_the_log_block_names_each_setting_and_its_reason() -> None:
    chosen = choose_settings(G5_XLARGE, {**ALL_AUTO, "batch": 16})
    text = instance_defaults.describe(G5_XLARGE, chosen)
    assert "4 usable CPU(s)" in text and "1 GPU(s) of 22 GiB" in text
    assert "  batch = 16: set by the user" in text
    assert "  workers = 3: 4 usable CPU(s) / 1 rank(s)" in text


def test_model_scale_is_read_from_the_model_name() -> None:
    assert [instance_defaults.model_scale(m) for m in ("yolov8n.yaml", "yolo11x.yaml", "yolov8s.pt", "w.pt")] == [
        "n",
        "x",
        "s",
        "n",
    ]


def test_available_ram_is_lowered_to_the_container_limit(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  65536000 kB\nMemAvailable:  33554432 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert instance_defaults.available_ram_gib(meminfo, cgroup) == 32.0
    (cgroup / "memory.max").write_text("max\n")
    assert instance_defaults.available_ram_gib(meminfo, cgroup) == 32.0
    (cgroup / "memory.max").write_text(str(16 * 2**30))
    (cgroup / "memory.current").write_text(str(4 * 2**30))
    assert instance_defaults.available_ram_gib(meminfo, cgroup) == 12.0
