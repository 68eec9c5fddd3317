"""SQS queues with their secure defaults: KMS CMK, TLS-only policy, and a dead-letter queue when they feed work."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.constructs.nag import acknowledge

DLQ_RETENTION = cdk.Duration.days(14)
"""The SQS maximum: a failed event waits two weeks for a person or a redrive."""


def dead_letter_queue(scope: Construct, construct_id: str, *, key: kms.IKey) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )
    acknowledge(queue, "AwsSolutions-SQS3", "This queue is itself a dead-letter queue; its depth is alarmed.")
    return queue


def work_queue(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    dead_letter: sqs.IQueue,
    max_receive_count: int,
    visibility_timeout: cdk.Duration,
    delivery_delay: cdk.Duration | None = None,
) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        delivery_delay=delivery_delay,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letter, max_receive_count=max_receive_count),
    )
