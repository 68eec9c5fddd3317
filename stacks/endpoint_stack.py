"""Endpoint lifecycle: the real-time SageMaker endpoint serving the approved model package.

The model package is a deploy-time input (CloudFormation parameter ``ModelPackageArn``), so every environment
synthesizes (and is checked) before any model exists.

No model yet: a fresh account has no approved package when it is first deployed, so the parameter defaults to
empty and every resource here carries the condition ``HasModelPackage``. Deployed without a package (the first
``cdk deploy --all``), the stack holds only a free placeholder: no endpoint, no instance, no key, nothing that
costs while idle. promote.yml later updates the same stack with an approved package's ARN and the endpoint
appears; ``cdk deploy`` of the stack without ``--parameters`` keeps the previous package. We chose this over
leaving the stack out of ``--all`` because the deploy stays one command in a fixed order, the workflows need
no "does the endpoint exist yet" branch, and CloudFormation owns the endpoint from its first day. A value that
is neither empty nor a model package ARN still fails at parameter validation, before anything changes.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from sim2cloud import contract
from stacks.base import PipelineStack
from stacks.config import EnvironmentSettings
from stacks.constructs.arns import arn, nag_resource
from stacks.constructs.bucket_access import grant_prefixes
from stacks.constructs.encryption import customer_key
from stacks.constructs.nag import acknowledge
from stacks.names import PipelineNames
from stacks.registries_stack import repository_named

MODEL_PACKAGE_PARAMETER = "ModelPackageArn"
MODEL_PACKAGE_ARN_PATTERN = r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/[A-Za-z0-9-]{1,63}/[0-9]+$"
NO_MODEL_PACKAGE = ""
"""The parameter's default: no approved model yet, so the stack holds no endpoint."""
MODEL_PACKAGE_PARAMETER_PATTERN = f"^$|{MODEL_PACKAGE_ARN_PATTERN}"
HAS_MODEL_PACKAGE_CONDITION = "HasModelPackage"
NO_MODEL_PLACEHOLDER = "NoModelPackageYet"
"""The one resource without the condition (a CloudFormation stack must hold at least one): a wait-condition
handle, which costs nothing and does nothing."""
INVOCATION_5XX_ALARM_PERIODS = 2
ROLLBACK_WAIT = cdk.Duration.minutes(10)
"""How long the old fleet stays up (baking) while the alarms watch the new one."""


class EndpointStack(PipelineStack):
    endpoint: sagemaker.CfnEndpoint
    scalable_target: appscaling.ScalableTarget
    model_package_arn: cdk.CfnParameter

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        data_key: kms.IKey,
        failure_topic: sns.ITopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, settings=settings, **kwargs)
        names = PipelineNames(settings)
        endpoint_settings = settings.endpoint
        self.model_package_arn = cdk.CfnParameter(
            self,
            MODEL_PACKAGE_PARAMETER,
            type="String",
            description=(
                "ARN of an APPROVED model package of the detector group (set by promote.yml); empty until one "
                "exists: the stack then holds no endpoint"
            ),
            default=NO_MODEL_PACKAGE,
            allowed_pattern=MODEL_PACKAGE_PARAMETER_PATTERN,
            constraint_description=(
                f"set {MODEL_PACKAGE_PARAMETER} to an approved model package ARN "
                f"(arn:aws:sagemaker:<region>:<account>:model-package/{names.model_package_group}/<version>) "
                "or leave it empty for no endpoint yet"
            ),
        )
        has_model = cdk.CfnCondition(
            self,
            HAS_MODEL_PACKAGE_CONDITION,
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(self.model_package_arn.value_as_string, NO_MODEL_PACKAGE)
            ),
        )
        key = customer_key(
            self,
            "EndpointKey",
            alias=f"alias/{settings.resource_name('endpoint')}",
            description=f"Sim2Cloud {settings.name}: endpoint ML storage volumes",
            removal_policy=settings.removal_policy,
        )

        role = iam.Role(self, "ModelRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
        grant_prefixes(
            role,
            names.data_bucket,
            data_key,
            read=(contract.MODELS_PREFIX,),
            write=(contract.DATA_CAPTURE_PREFIX,) if endpoint_settings.data_capture else (),
            nag_scope=role,
        )
        repository_named(self, "YoloImage", names.yolo_repository).grant_pull(role)
        key.grant_encrypt_decrypt(role)
        log_groups = arn("logs", f"log-group:/aws/sagemaker/Endpoints/{names.endpoint}")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_groups, f"{log_groups}:*"],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken (image pull) has no resource-level permissions.",
            applies_to=("Resource::*",),
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Container log streams are named per instance under the endpoint's own fixed log group.",
            applies_to=(nag_resource("logs", f"log-group:/aws/sagemaker/Endpoints/{names.endpoint}:*"),),
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "CDK's grant_encrypt_decrypt: GenerateDataKey*/ReEncrypt* on this stack's endpoint key only.",
            applies_to=("Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"),
        )

        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            # The serving container needs no network: SageMaker fetches the artifact and image for it.
            enable_network_isolation=True,
            containers=[
                sagemaker.CfnModel.ContainerDefinitionProperty(
                    model_package_name=self.model_package_arn.value_as_string
                )
            ],
        )
        model.node.add_dependency(role)
        capture = None
        if endpoint_settings.data_capture:
            capture = sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                destination_s3_uri=f"s3://{names.data_bucket}/{contract.DATA_CAPTURE_PREFIX}{names.endpoint}",
                initial_sampling_percentage=100,
                kms_key_id=data_key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
                enable_capture=True,
            )
        config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            # Instance types with local NVMe storage reject KmsKeyId (see EndpointSettings.instance_type).
            kms_key_id=key.key_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=names.variant,
                    model_name=model.attr_model_name,
                    initial_instance_count=endpoint_settings.min_capacity,
                    instance_type=endpoint_settings.instance_type,
                    initial_variant_weight=1.0,
                )
            ],
            data_capture_config=capture,
        )

        alarms = self._rollback_alarms(settings, names, failure_topic)
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=names.endpoint,
            endpoint_config_name=config.attr_endpoint_config_name,
            # Blue/green: the new fleet takes all traffic while the old one waits ROLLBACK_WAIT; either alarm
            # firing in that window rolls traffic back to the old fleet.
            deployment_config=sagemaker.CfnEndpoint.DeploymentConfigProperty(
                blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                    traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                        type="ALL_AT_ONCE", wait_interval_in_seconds=0
                    ),
                    termination_wait_in_seconds=int(ROLLBACK_WAIT.to_seconds()),
                    maximum_execution_timeout_in_seconds=3600,
                ),
                auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                    alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name) for alarm in alarms]
                ),
            ),
        )
        self.endpoint.apply_removal_policy(settings.removal_policy)

        self.scalable_target = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{names.endpoint}/variant/{names.variant}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=endpoint_settings.min_capacity,
            max_capacity=endpoint_settings.max_capacity,
        )
        self.scalable_target.node.add_dependency(self.endpoint)
        self.scalable_target.scale_to_track_metric(
            "InvocationsPerInstance",
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            target_value=endpoint_settings.invocations_per_instance_target,
            scale_in_cooldown=cdk.Duration.seconds(endpoint_settings.scale_in_cooldown_seconds),
            scale_out_cooldown=cdk.Duration.seconds(endpoint_settings.scale_out_cooldown_seconds),
        )
        output = cdk.CfnOutput(self, "EndpointName", value=names.endpoint)
        output.condition = has_model
        self._only_with_a_model(has_model)

    def _only_with_a_model(self, has_model: cdk.CfnCondition) -> None:
        """Every resource of the stack exists only with a model package; a free placeholder keeps the stack
        valid (CloudFormation needs one resource) when there is none."""
        for child in self.node.find_all():
            if isinstance(child, cdk.CfnResource) and child.cfn_options.condition is None:
                child.cfn_options.condition = has_model
        cdk.CfnWaitConditionHandle(self, NO_MODEL_PLACEHOLDER)

    def _rollback_alarms(
        self, settings: EnvironmentSettings, names: PipelineNames, topic: sns.ITopic
    ) -> list[cw.Alarm]:
        dimensions = {"EndpointName": names.endpoint, "VariantName": names.variant}
        errors = cw.Alarm(
            self,
            "Invocation5xxAlarm",
            alarm_name=settings.resource_name("endpoint-5xx"),
            metric=cw.Metric(
                namespace="AWS/SageMaker",
                metric_name="Invocation5XXErrors",
                dimensions_map=dimensions,
                statistic="Sum",
                period=cdk.Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=INVOCATION_5XX_ALARM_PERIODS,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="Endpoint 5xx errors: rolls back a blue/green deployment",
        )
        latency = cw.Alarm(
            self,
            "ModelLatencyAlarm",
            alarm_name=settings.resource_name("endpoint-latency"),
            metric=cw.Metric(
                namespace="AWS/SageMaker",
                metric_name="ModelLatency",
                dimensions_map=dimensions,
                statistic="Average",
                period=cdk.Duration.minutes(1),
            ),
            threshold=settings.endpoint.latency_alarm_microseconds,
            evaluation_periods=3,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="Endpoint model latency: rolls back a blue/green deployment",
        )
        for alarm in (errors, latency):
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return [errors, latency]
