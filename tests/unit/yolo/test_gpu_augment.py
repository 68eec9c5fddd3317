"""The GPU-drawn training batch equals Ultralytics' CPU pipeline for the same random draws (checked on the CPU).

Two copies of one cached training dataset: Ultralytics' own, and one whose transforms record plans. Seeded
alike, each sample gets the same mosaic partners, centre, affine matrix, HSV gains and flips; the planned sample
drawn by ``gpu_augment.draw`` must match Ultralytics' pixels (up to the rounding of bilinear sampling and of
OpenCV's fixed-point colour conversion) and carry exactly the same boxes and classes. Ultralytics runs in a
child process (gpu_augment_child.py says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture(scope="module")
def child(child_script: Callable[..., dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # TRITON_INTERPRET: the draw kernel runs on the CPU through Triton's interpreter.
    return child_script("gpu_augment_child.py", tmp_path_factory.mktemp("gpu-augment"), TRITON_INTERPRET="1")


def test_ultralytics_default_pipeline_is_drawn_on_the_gpu(child: dict[str, Any]) -> None:
    assert child["supported"] is None


@pytest.mark.parametrize("seed", range(6))
def test_the_drawn_mosaic_matches_ultralytics_pixels_and_boxes(child: dict[str, Any], seed: int) -> None:
    result = child["mosaic"][seed]
    assert result["has_mosaic"]
    assert result["shapes"] == [[3, 64, 64], [3, 64, 64]]
    assert result["same_classes"] and result["boxes_difference"] < 1e-5
    assert result["mean_difference"] < 1.0, result  # grey levels of 255
    assert result["p99_difference"] <= 6.0, result
    assert result["mean_difference_to_another_draw"] > 10 * result["mean_difference"]  # the check can tell


def test_close_mosaic_keeps_drawing_on_the_gpu(child: dict[str, Any]) -> None:
    result = child["closed"]
    assert not result["has_mosaic"]
    assert result["same_classes"] and result["boxes_difference"] < 1e-5
    assert result["mean_difference"] < 1.0, result


def test_the_workers_switch_to_the_closed_pipeline_by_epoch(child: dict[str, Any]) -> None:
    # No loader restart at close_mosaic: each sample's epoch tag picks the pipeline.
    assert child["switching"] == {"epoch_0_mosaic": True, "epoch_1_mosaic": False, "epoch_1_as_closed": True}


def test_a_batch_collates_into_one_plan(child: dict[str, Any]) -> None:
    assert child["collate"] == {
        "is_plan": True,
        "size": 3,
        "output_hw": [64, 64],
        "canvas_hw": [128, 128],
        "pasted_into": [0, 1, 2],
        "max_batch_idx": 2,
    }


def test_a_batch_leaves_its_worker_as_arrays_and_reaches_the_trainer_as_tensors(child: dict[str, Any]) -> None:
    # No tensor crosses the process boundary (each would cost a shared-memory file descriptor)...
    transfer = child["transfer"]
    assert transfer["tensors_in_the_batch"] == [] and transfer["plan_tensors"] == []
    # ...and the trainer gets back exactly Ultralytics' collated tensors.
    assert transfer["restored_equal"] == transfer["reference_tensors"]
    assert {"batch_idx", "bboxes", "cls"} <= set(transfer["reference_tensors"])


def test_pipelines_it_cannot_draw_stay_on_the_cpu(child: dict[str, Any]) -> None:
    assert child["unsupported"] == ["MixUp p=0.5", "perspective=0.001", "transform function"]


def test_augmentations_do_not_depend_on_the_number_of_dataloader_workers(child: dict[str, Any]) -> None:
    workers = child["workers"]
    assert workers["same_with_0_1_3_workers"]  # 0, 1 and 3 workers: the same order, plans and boxes
    assert workers["ultralytics_seeding_differs_with_0_and_3_workers"]  # what per-sample seeds fix
    assert workers["epochs_differ"]  # each epoch still draws anew


def test_the_epoch_order_is_tagged_and_restarts_where_the_trainer_says(child: dict[str, Any]) -> None:
    workers = child["workers"]
    assert workers["epoch_tags"] == [[0, 1, 2, 3], [4, 5, 6, 7], [20, 21, 22, 23]]
    assert workers["orders_differ"]


def test_each_combination_of_training_options_has_an_importable_trainer(child: dict[str, Any]) -> None:
    # Module-level classes: Ultralytics' DDP launcher re-imports the trainer by module and name in each rank.
    names = child["trainers"]
    assert names["gpu_augment=False channels_last=False cuda_graphs=False"] is None
    assert names["gpu_augment=True channels_last=True cuda_graphs=True"] == "ChannelsLastGpuAugmentCudaGraphTrainer"
    assert names["gpu_augment=False channels_last=False cuda_graphs=True"] == "CudaGraphTrainer"
    assert names["gpu_augment=True channels_last=False cuda_graphs=False"] == "GpuAugmentTrainer"
    assert len(set(names.values())) == 8
    # Draw first (GpuAugmentTrainer), then the drawn batch goes channels_last, then Ultralytics' own steps; the
    # graphs only replace the model's forward.
    assert child["all_options_trainer_order"] == [
        "ChannelsLastGpuAugmentCudaGraphTrainer",
        "CudaGraphTrainer",
        "ChannelsLastGpuAugmentTrainer",
        "GpuAugmentTrainer",
        "ChannelsLastTrainer",
        "DetectionTrainer",
    ]


def test_cuda_graphs_stay_off_where_they_cannot_apply(child: dict[str, Any]) -> None:
    reasons = child["graph_guards"]["reasons"]
    assert reasons["one_gpu"] is None
    assert "cpu" in reasons["cpu"]
    assert "DDP" in reasons["ddp"]  # multi-GPU training keeps Ultralytics' eager DDP step
    assert "accumulate" in reasons["accumulating"]
    # A model copied while the graph is installed (Ultralytics' NaN recovery builds a new EMA) gets the model's
    # own forward; the graph goes back on afterwards. On the CPU the installed forward is the eager one.
    guards = child["graph_guards"]
    assert guards["copy_has_own_forward"] and guards["reinstalled"] and guards["cpu_forward_is_eager"]


def test_the_draw_kernel_draws_what_the_pytorch_draw_draws(child: dict[str, Any]) -> None:
    kernel = child["kernel"]
    assert kernel["interpreted"] and kernel["shape"] == [9, 3, 64, 64]
    # Mosaics (4 tiles) and single images (1 tile) in one batch, some flipped, most with HSV gains.
    assert kernel["tiles_per_image"] == [1, 4]
    assert kernel["flipped_images"] > 0 and kernel["images_with_hsv_gains"] > 0
    # The same arithmetic; PyTorch's grid_sample normalises coordinates and back, so a pixel at a rounding
    # boundary may land on the other grey level.
    assert kernel["mean_difference"] < 0.01 and kernel["share_above_one"] < 1e-3
    assert kernel["mean_difference_to_another_batch"] > 10  # the comparison can tell images apart
