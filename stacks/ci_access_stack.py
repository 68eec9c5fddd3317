"""CI access: GitHub Actions assumes roles through OIDC (no long-lived keys), only for the repository the
deploying user named (``-c github_repository``; without it this stack is not in the app at all).

* The deploy role trusts jobs of that repository running in this environment's GitHub environment. It may
  assume the CDK bootstrap roles (which CloudFormation and the CDK CLI use for the actual deployment), push
  the pipeline's images to this environment's repositories (and pull the mirrored Isaac Sim base), and read
  model packages (promote.yml checks approval).
* The diff role trusts pull-request jobs of that repository (GitHub gives fork pull requests no OIDC token)
  and may only assume the CDK lookup role, which is read-only: enough for ``cdk diff``, nothing that changes.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.base import PipelineStack
from stacks.config import EnvironmentSettings
from stacks.constructs.arns import arn, nag_resource
from stacks.constructs.nag import acknowledge
from stacks.names import PipelineNames

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
CDK_QUALIFIER = "hnb659fds"
"""The default bootstrap qualifier (``cdk bootstrap`` without --qualifier)."""
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


class CiAccessStack(PipelineStack):
    deploy_role: iam.Role
    diff_role: iam.Role

    def __init__(self, scope: Construct, construct_id: str, *, settings: EnvironmentSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, settings=settings, **kwargs)
        ci = settings.ci
        if ci.create_oidc_provider:
            provider: iam.IOidcProvider = iam.OidcProviderNative(
                self, "GitHubOidc", url=f"https://{GITHUB_OIDC_HOST}", client_ids=["sts.amazonaws.com"]
            )
        else:
            provider = iam.OidcProviderNative.from_oidc_provider_arn(
                self,
                "GitHubOidc",
                f"arn:{cdk.Aws.PARTITION}:iam::{cdk.Aws.ACCOUNT_ID}:oidc-provider/{GITHUB_OIDC_HOST}",
            )
        self.deploy_role = iam.Role(
            self,
            "DeployRole",
            role_name=settings.resource_name("github-deploy"),
            description=f"GitHub Actions deploys of {ci.github_repository} ({ci.github_environment})",
            max_session_duration=cdk.Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        # Only jobs running in this GitHub environment (with its protection rules) of this repo.
                        f"{GITHUB_OIDC_HOST}:sub": ci.subject,
                    }
                },
            ),
        )
        account, region = cdk.Aws.ACCOUNT_ID, cdk.Aws.REGION
        bootstrap_roles = f"arn:{cdk.Aws.PARTITION}:iam::{account}:role/cdk-{CDK_QUALIFIER}-*-{account}-{region}"
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(actions=["sts:AssumeRole", "sts:TagSession"], resources=[bootstrap_roles])
        )
        acknowledge(
            self.deploy_role,
            "AwsSolutions-IAM5",
            "The CDK bootstrap roles (deploy, file/image publishing, lookup) of this account and region only.",
            applies_to=(
                f"Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/cdk-{CDK_QUALIFIER}-*-<AWS::AccountId>-<AWS::Region>",
            ),
        )
        # promote.yml checks that the package it is asked to serve is Approved before updating the endpoint.
        packages = f"model-package/{PipelineNames(settings).model_package_group}/*"  # any version
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[arn("sagemaker", packages)])
        )
        acknowledge(
            self.deploy_role,
            "AwsSolutions-IAM5",
            "Read-only DescribeModelPackage on any version of this environment's model package group.",
            applies_to=(nag_resource("sagemaker", packages),),
        )
        names = PipelineNames(settings)
        # The images workflow: push our two images (tags are immutable: a pushed tag is never replaced), pull
        # the Isaac Sim base a person mirrored once.
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=list(ECR_PUSH_ACTIONS),
                resources=[arn("ecr", f"repository/{name}") for name in names.image_repositories],
            )
        )
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=list(ECR_PULL_ACTIONS),
                resources=[arn("ecr", f"repository/{names.isaac_sim_base_repository}")],
            )
        )
        self.deploy_role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        acknowledge(
            self.deploy_role,
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken (docker login to the registry) has no resource-level permissions.",
            applies_to=("Resource::*",),
        )

        self.diff_role = iam.Role(
            self,
            "DiffRole",
            role_name=settings.resource_name("github-diff"),
            description=f"Read-only cdk diff from pull requests of {ci.github_repository}",
            max_session_duration=cdk.Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": ci.pull_request_subject,
                    }
                },
            ),
        )
        lookup_role = f"arn:{cdk.Aws.PARTITION}:iam::{account}:role/cdk-{CDK_QUALIFIER}-lookup-role-{account}-{region}"
        self.diff_role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[lookup_role]))
        cdk.CfnOutput(self, "DeployRoleArn", value=self.deploy_role.role_arn)
        cdk.CfnOutput(self, "DiffRoleArn", value=self.diff_role.role_arn)
