"""A pipeline Lambda with its secure defaults: its own role (no AWS managed policy), an encrypted log group with
retention, a KMS-encrypted dead-letter queue for asynchronous invocations, and code bundled without Docker."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sim2cloud import wiring
from sim2cloud.lambda_bundle import build_lambda_bundle
from stacks.constructs.encryption import encrypted_log_group
from stacks.constructs.nag import acknowledge, skip_checkov
from stacks.constructs.secure_queue import dead_letter_queue

FUNCTION_TIMEOUT = cdk.Duration.minutes(2)
"""The orchestration functions' timeout: each handles one event's S3/Batch/SageMaker calls."""
RUNTIME = lambda_.Runtime.PYTHON_3_12
"""Python 3.12: the handlers are stdlib + boto3 and tested on 3.11+; 3.12 is the version this project pins."""
ARCHITECTURE = lambda_.Architecture.ARM_64
"""Graviton: cheaper per GB-second, and the bundles are pure Python (no native wheels to match)."""


class PipelineFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_folder: str,
        function_name: str,
        environment: Mapping[str, str],
        key: kms.IKey,
        bundle_root: Path,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
        timeout: cdk.Duration,
        memory_mib: int = 256,
        retry_attempts: int = 2,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = encrypted_log_group(
            self, "Logs", key=key, retention_days=log_retention_days, removal_policy=removal_policy
        )
        # Our own role instead of AWSLambdaBasicExecutionRole: writes to its own log group only.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        self.dead_letter_queue = dead_letter_queue(self, "AsyncDlq", key=key)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(build_lambda_bundle(source_folder, bundle_root))),
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_mib,
            # Asynchronous invocations (EventBridge) retry, then land in the encrypted DLQ, never vanish.
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=retry_attempts,
            environment_encryption=key,
            tracing=lambda_.Tracing.ACTIVE,
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            "X-Ray tracing: xray:PutTraceSegments/PutTelemetryRecords have no resource-level permissions.",
            applies_to=("Resource::*",),
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Pinned to Python 3.12 on purpose: the project's Lambda runtime; upgrading is a tested change, not drift.",
        )
        skip_checkov(
            self.function,
            "CKV_AWS_117",
            "Event-driven function calling only AWS APIs; a VPC would add NAT or endpoints for no isolation gain.",
        )
        skip_checkov(
            self.function,
            "CKV_AWS_115",
            "Concurrency is bounded by the event sources (SQS batch, rare S3/SageMaker events); no reservation.",
        )

    @property
    def grantable(self) -> iam.IGrantable:
        return self.role

    @property
    def dlq(self) -> sqs.Queue:
        return self.dead_letter_queue


def wired_function(
    scope: Construct, folder: str, *, environment: Mapping[str, str], **options: Any
) -> PipelineFunction:
    """The function ``lambda/<folder>`` as sim2cloud/wiring.py declares it (construct id, environment checked
    against the declared variables); ``options`` are :class:`PipelineFunction`'s other keyword arguments."""
    return PipelineFunction(
        scope,
        wiring.FUNCTIONS[folder].construct_id,
        source_folder=folder,
        environment=wiring.function_environment(folder, environment),
        timeout=FUNCTION_TIMEOUT,
        **options,
    )
