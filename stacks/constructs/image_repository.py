"""ECR repositories with their secure defaults: KMS encryption, scan on push, immutable tags, bounded history."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from constructs import Construct


def image_repository(
    scope: Construct,
    construct_id: str,
    *,
    repository_name: str,
    keep_images: int,
    removal_policy: cdk.RemovalPolicy,
) -> ecr.Repository:
    """Immutable tags make a job definition or model name a fixed image; old images expire past ``keep_images``."""
    return ecr.Repository(
        scope,
        construct_id,
        repository_name=repository_name,
        image_scan_on_push=True,
        image_tag_mutability=ecr.TagMutability.IMMUTABLE,
        encryption=ecr.RepositoryEncryption.KMS,
        lifecycle_rules=[
            ecr.LifecycleRule(description=f"keep the last {keep_images} images", max_image_count=keep_images)
        ],
        removal_policy=removal_policy,
        # Images are rebuilt from the repository, never user data: a destroyed dev repository takes its images
        # with it (a retained one keeps them).
        empty_on_delete=removal_policy == cdk.RemovalPolicy.DESTROY,
    )
