"""cdk-nag 3 acknowledgements in one shape: every one names the finding and says why.

cdk-nag 3 reports through CDK's ``Validations`` API; a finding on a specific IAM wildcard is acknowledged by
its full id ``AwsSolutions-IAM5[Resource::...]`` (v2's ``appliesTo``), so other wildcards still fail.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str, *, applies_to: tuple[str, ...] = ()) -> None:
    """Acknowledge ``rule_id`` on ``scope`` (and its children). With ``applies_to``, only those findings
    (``Action::...``, ``Resource::...``, ``Policy::...``) are acknowledged, each on its own."""
    if not reason.strip():
        raise ValueError(f"acknowledgement of {rule_id} on {scope.node.path} needs a reason")
    ids = [f"{rule_id}[{finding}]" for finding in applies_to] or [rule_id]
    for finding_id in ids:
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding_id, reason=reason))


def skip_checkov(resource: IConstruct, check_id: str, comment: str) -> None:
    """Record a checkov skip (``Metadata.checkov.skip``) with its reason on the L1 resource behind ``resource``."""
    cfn = resource if isinstance(resource, cdk.CfnResource) else resource.node.default_child
    if not isinstance(cfn, cdk.CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to annotate for {check_id}")
    metadata = cfn.get_metadata("checkov") or {"skip": []}
    metadata["skip"].append({"id": check_id, "comment": comment})
    cfn.add_metadata("checkov", metadata)


def suppress_cfn_lint(resource: IConstruct, rule_id: str) -> None:
    """Ignore a cfn-lint rule on one resource (``Metadata.cfn-lint.config.ignore_checks``); say why at the call."""
    cfn = resource if isinstance(resource, cdk.CfnResource) else resource.node.default_child
    if not isinstance(cfn, cdk.CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to annotate for {rule_id}")
    metadata = cfn.get_metadata("cfn-lint") or {"config": {"ignore_checks": []}}
    metadata["config"]["ignore_checks"].append(rule_id)
    cfn.add_metadata("cfn-lint", metadata)
