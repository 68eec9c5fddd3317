"""Storage lifecycle: the data bucket and its key. Everything else reads from it; it outlives them."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from sim2cloud import contract
from stacks.base import PipelineStack
from stacks.config import EnvironmentSettings
from stacks.constructs.data_bucket import DataBucket
from stacks.constructs.encryption import customer_key
from stacks.names import PipelineNames


class StorageStack(PipelineStack):
    bucket: s3.Bucket
    key: kms.Key

    def __init__(self, scope: Construct, construct_id: str, *, settings: EnvironmentSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, settings=settings, **kwargs)
        self.key = customer_key(
            self,
            "DataKey",
            alias=f"alias/{settings.resource_name('data')}",
            description=f"Sim2Cloud {settings.name}: data bucket, training volumes and model artifacts",
            removal_policy=settings.removal_policy,
        )
        data = DataBucket(
            self,
            "Data",
            bucket_name=PipelineNames(settings).data_bucket,
            key=self.key,
            storage=settings.storage,
            removal_policy=settings.removal_policy,
        )
        self.bucket = data.bucket
        cdk.CfnOutput(self, contract.DATA_BUCKET_OUTPUT, value=self.bucket.bucket_name)
