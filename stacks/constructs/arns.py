"""ARNs of this stack's account and region, and how cdk-nag spells the same ARN in a finding id."""

from __future__ import annotations

import aws_cdk as cdk


def arn(service: str, resource: str) -> str:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` for the deploying stack."""
    return f"arn:{cdk.Aws.PARTITION}:{service}:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:{resource}"


def nag_resource(service: str, resource: str) -> str:
    """The cdk-nag IAM5 finding (``Resource::...``) for :func:`arn` of the same arguments."""
    return f"Resource::arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
