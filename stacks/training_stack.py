"""Training lifecycle: the training launcher and the model gate with their rules, the SageMaker execution role
and the model package group the gate registers models in (the YOLO image's repository is in the Registries
stack; the render launcher is in the Render stack, which owns rendering)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sim2cloud import contract, wiring
from stacks.base import PipelineStack
from stacks.config import EnvironmentSettings
from stacks.constructs.arns import arn, nag_resource
from stacks.constructs.bucket_access import grant_prefixes
from stacks.constructs.encryption import (
    allow_cloudwatch_logs,
    allow_service_on_behalf_of_this_account,
    customer_key,
)
from stacks.constructs.nag import acknowledge
from stacks.constructs.pipeline_function import PipelineFunction, wired_function
from stacks.constructs.wired_rules import add_wired_rules, alarm_on_dead_letters, function_target
from stacks.names import PipelineNames
from stacks.registries_stack import repository_named

SAGEMAKER_TRAINING_LOG_GROUP = "log-group:/aws/sagemaker/TrainingJobs"
"""SageMaker's fixed log group for training jobs (streams are named per job)."""


class TrainingStack(PipelineStack):
    execution_role: iam.Role
    repository: ecr.IRepository
    model_package_group: sagemaker.CfnModelPackageGroup
    functions: dict[str, PipelineFunction]
    dead_letter_queues: list[sqs.Queue]

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        data_key: kms.IKey,
        failure_topic: sns.ITopic,
        bundle_root: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, settings=settings, **kwargs)
        names = PipelineNames(settings)
        bucket = names.data_bucket
        self.key = customer_key(
            self,
            "PipelineKey",
            alias=f"alias/{settings.resource_name('pipeline')}",
            description=f"Sim2Cloud {settings.name}: orchestration queues, Lambda logs and environment",
            removal_policy=settings.removal_policy,
        )
        allow_cloudwatch_logs(self.key)
        # EventBridge delivers to the encrypted rule DLQs, for this account's
        # rules only.
        allow_service_on_behalf_of_this_account(
            self.key, "events.amazonaws.com", arn("events", "rule/*"), sid="AllowEventBridgeRulesOfThisAccount"
        )
        self.dead_letter_queues = []

        self.repository = repository_named(self, "YoloImage", names.yolo_repository)
        self.execution_role = self._execution_role(settings, names, data_key)
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=names.model_package_group,
            model_package_group_description=f"Sim2Cloud {settings.name}: YOLO detectors trained on synthetic data",
        )
        self.model_package_group.apply_removal_policy(settings.removal_policy)

        common = wiring.common_environment(bucket, settings.name)

        def function(folder: str, name: str, environment: dict[str, str]) -> PipelineFunction:
            created = wired_function(
                self,
                folder,
                function_name=name,
                environment={**common, **environment},
                key=self.key,
                bundle_root=bundle_root,
                log_retention_days=settings.log_retention_days,
                removal_policy=settings.removal_policy,
            )
            self.dead_letter_queues.append(created.dlq)
            return created

        training_launcher = function(
            wiring.TRAINING_LAUNCHER,
            names.training_launcher_function,
            {
                contract.Env.TRAINING_IMAGE_URI: self.repository.repository_uri_for_tag(settings.image_tag),
                contract.Env.TRAINING_ROLE_ARN: self.execution_role.role_arn,
                contract.Env.TRAINING_INSTANCE_TYPE: settings.training.instance_type,
                contract.Env.TRAINING_USE_SPOT: str(settings.training.use_spot).lower(),
                contract.Env.TRAINING_MAX_RUNTIME_SECONDS: str(settings.training.max_runtime_seconds),
                contract.Env.TRAINING_HYPERPARAMETERS: wiring.training_hyperparameters_variable(),
                contract.Env.KMS_KEY_ARN: data_key.key_arn,
                **(
                    {contract.Env.TRAINING_WEIGHTS_S3_URI: settings.training.weights_s3_uri}
                    if settings.training.weights_s3_uri
                    else {}
                ),
            },
        )
        model_gate = function(
            wiring.MODEL_GATE,
            names.model_gate_function,
            {
                contract.Env.MODEL_PACKAGE_GROUP: names.model_package_group,
                contract.Env.QUALITY_GATE_MAP50: str(settings.training.quality_gate_map50),
                contract.Env.MODEL_APPROVAL_MODE: settings.training.approval_mode,
                contract.Env.FAILURE_TOPIC_ARN: failure_topic.topic_arn,
            },
        )
        self.functions = {wiring.TRAINING_LAUNCHER: training_launcher, wiring.MODEL_GATE: model_gate}

        # --- permissions, each scoped to what the handler calls --------------------------------------------
        grant_prefixes(
            training_launcher.grantable,
            bucket,
            data_key,
            read=(contract.DATASETS_PREFIX,),
            write=(contract.QUARANTINE_PREFIX,),
            nag_scope=training_launcher.role,
        )
        training_jobs = arn("sagemaker", f"training-job/{names.training_job_prefix}*")
        training_launcher.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:AddTags"],
                resources=[training_jobs],
            )
        )
        training_launcher.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        nag_training_jobs = nag_resource("sagemaker", f"training-job/{names.training_job_prefix}*")
        acknowledge(
            training_launcher.role,
            "AwsSolutions-IAM5",
            "Training jobs are named per dataset run at run time; only our name prefix is allowed.",
            applies_to=(nag_training_jobs,),
        )

        grant_prefixes(
            model_gate.grantable,
            bucket,
            data_key,
            read=(contract.MODELS_PREFIX, contract.DATASETS_PREFIX),  # the run report: manifest and preview
            write=(contract.RUNS_PREFIX,),
            nag_scope=model_gate.role,
        )
        group_arn = self.model_package_group.attr_model_package_group_arn
        packages = arn("sagemaker", f"model-package/{names.model_package_group}/*")
        model_gate.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeTrainingJob", "sagemaker:ListTags"], resources=[training_jobs]
            )
        )
        model_gate.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:ListModelPackages",
                    "sagemaker:AddTags",
                ],
                resources=[group_arn, packages],
            )
        )
        failure_topic.grant_publish(model_gate.role)
        acknowledge(
            model_gate.role,
            "AwsSolutions-IAM5",
            "CDK's grant_publish on a KMS-encrypted topic: kms:GenerateDataKey* on that topic's key only.",
            applies_to=("Action::kms:GenerateDataKey*",),
        )
        acknowledge(
            model_gate.role,
            "AwsSolutions-IAM5",
            "Model packages get version numbers at registration; the gate acts on any version in our group only.",
            applies_to=(nag_resource("sagemaker", f"model-package/{names.model_package_group}/*"),),
        )
        acknowledge(
            model_gate.role,
            "AwsSolutions-IAM5",
            "The gate reads training jobs named at run time; only our name prefix is allowed.",
            applies_to=(nag_training_jobs,),
        )

        # --- events: a dataset manifest starts training, a training job's end reaches the gate ------------
        inputs = wiring.RuleInputs(data_bucket=bucket, job_queue_arn="")
        targets_here = {name: function_target(created.function) for name, created in self.functions.items()}
        self.dead_letter_queues += add_wired_rules(self, inputs, targets_here, key=self.key)
        alarm_on_dead_letters(self.dead_letter_queues, failure_topic)

        cdk.CfnOutput(self, contract.MODEL_PACKAGE_GROUP_OUTPUT, value=names.model_package_group)

    def _execution_role(self, settings: EnvironmentSettings, names: PipelineNames, data_key: kms.IKey) -> iam.Role:
        """The role SageMaker training jobs run as: datasets and weights in, models out, nothing else."""
        role = iam.Role(self, "SageMakerExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
        grant_prefixes(
            role,
            names.data_bucket,
            data_key,
            read=(contract.DATASETS_PREFIX, contract.MODELS_PREFIX),
            write=(contract.MODELS_PREFIX,),
            nag_scope=role,
        )
        self.repository.grant_pull(role)
        if settings.training.weights_s3_uri:
            # The weights channel: read-only, that one object (the data bucket's key grant above covers it there).
            bucket_and_key = settings.training.weights_s3_uri.removeprefix("s3://")
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"], resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket_and_key}"]
                )
            )
        # Training volumes and output encrypted with the data key (VolumeKmsKeyId/KmsKeyId): SageMaker creates
        # grants on the key for the job's resources only.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[data_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        log_groups = arn("logs", SAGEMAKER_TRAINING_LOG_GROUP)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_groups, f"{log_groups}:*"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (namespace-conditioned) have no resource-level"
            " permissions.",
            applies_to=("Resource::*",),
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Training log streams are named per job at run time, under SageMaker's fixed training log group only.",
            applies_to=(nag_resource("logs", f"{SAGEMAKER_TRAINING_LOG_GROUP}:*"),),
        )
        return role
