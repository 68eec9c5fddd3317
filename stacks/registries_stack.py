"""Registries lifecycle: the ECR repositories of the pipeline's images, deployed before anything runs them.

A fresh account goes Storage/Monitoring/Registries -> images pushed (the ``images`` workflow) -> Render and
Training, whose job definitions and training launcher name ``<repository>:<image tag>``. Keeping the
repositories here (not in the stacks that run the images) is what lets the images exist before those stacks.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from constructs import Construct

from stacks.base import PipelineStack
from stacks.config import EnvironmentSettings
from stacks.constructs.image_repository import image_repository
from stacks.names import PipelineNames


def repository_named(scope: Construct, construct_id: str, name: str) -> ecr.IRepository:
    """A Registries repository as another stack sees it: by its fixed name, in the stack's own account and
    region, so no cross-stack reference (and no export to keep) exists; the stack depends on Registries."""
    return ecr.Repository.from_repository_name(scope, construct_id, name)


class RegistriesStack(PipelineStack):
    isaac_sim: ecr.Repository
    """Our render image: the mirrored Isaac Sim base plus the render job layer (containers/isaac-sim)."""
    isaac_sim_base: ecr.Repository
    """The user's mirror of ``nvcr.io/nvidia/isaac-sim:<version>`` (about 10 GB): the images workflow builds
    FROM it, so CI needs no NGC credentials and render hosts no internet path."""
    yolo: ecr.Repository
    """The YOLO training and serving image (containers/yolo), cpu and gpu variants."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: EnvironmentSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, settings=settings, **kwargs)
        names = PipelineNames(settings)
        self.isaac_sim = image_repository(
            self,
            "IsaacSimImage",
            repository_name=names.isaac_sim_repository,
            keep_images=5,
            removal_policy=settings.removal_policy,
        )
        self.isaac_sim_base = image_repository(
            self,
            "IsaacSimBaseImage",
            repository_name=names.isaac_sim_base_repository,
            keep_images=2,
            removal_policy=settings.removal_policy,
        )
        self.yolo = image_repository(
            self,
            "YoloImage",
            repository_name=names.yolo_repository,
            # Two variants (cpu, gpu) per commit: the last 5 commits.
            keep_images=10,
            removal_policy=settings.removal_policy,
        )
        cdk.CfnOutput(self, "IsaacSimRepositoryUri", value=self.isaac_sim.repository_uri)
        cdk.CfnOutput(self, "IsaacSimBaseRepositoryUri", value=self.isaac_sim_base.repository_uri)
        cdk.CfnOutput(self, "YoloRepositoryUri", value=self.yolo.repository_uri)
