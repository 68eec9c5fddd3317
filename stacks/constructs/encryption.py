"""Customer-managed KMS keys with rotation: one per stack that stores data, so key policies never need
principals from another stack (which would create a cross-stack cycle)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct


def customer_key(
    scope: Construct, construct_id: str, *, alias: str, description: str, removal_policy: cdk.RemovalPolicy
) -> kms.Key:
    return kms.Key(
        scope,
        construct_id,
        alias=alias,
        description=description,
        enable_key_rotation=True,
        # A key scheduled for deletion still waits its pending window, so DESTROY in dev is recoverable.
        pending_window=cdk.Duration.days(7),
        removal_policy=removal_policy,
    )


def allow_cloudwatch_logs(key: kms.Key) -> None:
    """Let CloudWatch Logs use ``key`` for log groups of this account and region only."""
    stack = cdk.Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchLogs",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],  # in a key policy "*" means this key
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                    )
                }
            },
        )
    )


def allow_service_on_behalf_of_this_account(key: kms.Key, service: str, source_arn: str, *, sid: str) -> None:
    """Let ``service`` (a service principal such as ``events.amazonaws.com``) encrypt for this key's readers, only
    on behalf of this account's resources matching ``source_arn`` (an ARN pattern): the aws:SourceAccount and
    aws:SourceArn conditions AWS documents against the confused deputy, so another account's rule or alarm
    cannot have the service use our key."""
    stack = cdk.Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.ServicePrincipal(service)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy "*" means this key
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": source_arn},
            },
        )
    )


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    retention_days: int,
    removal_policy: cdk.RemovalPolicy,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=log_group_name,
        encryption_key=key,
        retention=_retention(retention_days),
        removal_policy=removal_policy,
    )


_RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
}


def _retention(days: int) -> logs.RetentionDays:
    if days not in _RETENTION_BY_DAYS:
        raise ValueError(f"log retention of {days} days: choose one of {sorted(_RETENTION_BY_DAYS)}")
    return _RETENTION_BY_DAYS[days]
