"""The data bucket with its secure defaults in one place (aws-solutions-constructs style)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from sim2cloud import contract
from stacks.config import StorageSettings
from stacks.constructs.nag import acknowledge, skip_checkov


class DataBucket(Construct):
    """KMS-encrypted, versioned, TLS-only, private bucket with server access logs and per-prefix lifecycle.

    S3 -> EventBridge notifications are on, so rules in other stacks can react to objects without the
    notification custom resource (a Lambda) and without a cross-stack cycle.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_name: str,
        key: kms.IKey,
        storage: StorageSettings,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # Access-log buckets cannot use SSE-KMS (the S3 log delivery service has no key access), so SSE-S3.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(storage.access_log_expire_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=False,
        )
        acknowledge(
            self.access_logs, "AwsSolutions-S1", "This is the access-log bucket; logging it into itself would loop."
        )
        skip_checkov(
            self.access_logs, "CKV_AWS_18", "This is the access-log bucket; logging it into itself would loop."
        )
        skip_checkov(
            self.access_logs, "CKV_AWS_145", "S3 log delivery cannot write to SSE-KMS buckets; SSE-S3 is used."
        )
        skip_checkov(self.access_logs, "CKV_AWS_144", "Access logs are regenerable audit data; no cross-region copy.")
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            # S3 Bucket Keys cut KMS requests (and cost) for the many small render files.
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-renders",
                    prefix=contract.RENDERS_PREFIX,
                    expiration=cdk.Duration.days(storage.renders_expire_days),
                ),
                s3.LifecycleRule(
                    id="datasets-to-infrequent-access",
                    prefix=contract.DATASETS_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=cdk.Duration.days(storage.datasets_transition_days),
                        )
                    ],
                ),
                s3.LifecycleRule(
                    id="noncurrent-versions-and-uploads",
                    noncurrent_version_expiration=cdk.Duration.days(storage.noncurrent_expire_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                ),
            ],
            removal_policy=removal_policy,
            # Never auto-delete: nothing the user uploaded is deleted by the pipeline, even in dev.
            auto_delete_objects=False,
        )
        # S3 -> EventBridge through the bucket's own CloudFormation property. The L2's event_bridge_enabled=True
        # routes it through the BucketNotifications custom resource (a Lambda with an AWS managed policy);
        # CloudFormation has supported EventBridgeConfiguration natively for years, so the L1 property is used.
        cfn_bucket = self.bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
        )
        skip_checkov(self.bucket, "CKV_AWS_144", "Cross-region replication is a DR choice left to the account owner.")
