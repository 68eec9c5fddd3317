"""Least-privilege access to prefixes of the data bucket: object actions on ``<prefix>*`` only, listing only
under those prefixes, and the KMS actions the bucket's key needs for exactly that.

ARNs are built from the bucket's fixed physical name (``PipelineNames.data_bucket``), not from a cross-stack
token, so the cdk-nag finding for each prefix wildcard has a stable id that can be acknowledged precisely.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import IConstruct

from stacks.constructs.nag import acknowledge


def bucket_arn(bucket_name: str) -> str:
    return f"arn:{cdk.Aws.PARTITION}:s3:::{bucket_name}"


def objects_arn(bucket_name: str, prefix: str) -> str:
    return f"{bucket_arn(bucket_name)}/{prefix}*"


def grant_prefixes(
    grantee: iam.IGrantable,
    bucket_name: str,
    key: kms.IKey,
    *,
    read: tuple[str, ...] = (),
    write: tuple[str, ...] = (),
    nag_scope: IConstruct | None = None,
) -> None:
    """Grant GetObject on ``read`` prefixes, PutObject on ``write`` prefixes, ListBucket on both.

    ``nag_scope`` (the role) receives the acknowledgements of the ``<prefix>*`` object ARNs: object keys under a
    prefix cannot be named without a wildcard.
    """
    principal = grantee.grant_principal
    if read:
        principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[objects_arn(bucket_name, p) for p in read],
            )
        )
    if write:
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[objects_arn(bucket_name, p) for p in write])
        )
    prefixes = tuple(dict.fromkeys(read + write))
    principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket_arn(bucket_name)],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
        )
    )
    # Decrypt to read; GenerateDataKey to write SSE-KMS objects (bucket keys still need it per data key).
    kms_actions = ["kms:Decrypt"] + (["kms:GenerateDataKey"] if write else [])
    principal.add_to_principal_policy(iam.PolicyStatement(actions=kms_actions, resources=[key.key_arn]))
    if nag_scope is not None:
        acknowledge_prefixes(nag_scope, bucket_name, prefixes)


def nag_objects_finding(bucket_name: str, prefix: str) -> str:
    """How cdk-nag spells the ``<prefix>*`` object ARN in an IAM5 finding."""
    return f"Resource::arn:<AWS::Partition>:s3:::{bucket_name}/{prefix}*"


def acknowledge_prefixes(scope: IConstruct, bucket_name: str, prefixes: tuple[str, ...]) -> None:
    acknowledge(
        scope,
        "AwsSolutions-IAM5",
        "Object ARNs under one contract prefix of the data bucket; keys are created at run time.",
        applies_to=tuple(nag_objects_finding(bucket_name, p) for p in prefixes),
    )
