"""Monitoring lifecycle: the failure topic every other stack reports to, and the pipeline dashboard.

The topic is deployed before the stacks that publish to it; the dashboard names their resources by the fixed
physical names from ``EnvironmentSettings.resource_name`` so it needs no reference back to them (no cycle).
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.base import PipelineStack
from stacks.config import EnvironmentSettings
from stacks.constructs.arns import arn
from stacks.constructs.encryption import allow_service_on_behalf_of_this_account, customer_key
from stacks.names import PipelineNames


class MonitoringStack(PipelineStack):
    topic: sns.Topic
    key: kms.Key

    def __init__(self, scope: Construct, construct_id: str, *, settings: EnvironmentSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, settings=settings, **kwargs)
        names = PipelineNames(settings)
        self.key = customer_key(
            self,
            "AlertsKey",
            alias=f"alias/{settings.resource_name('alerts')}",
            description=f"Sim2Cloud {settings.name}: failure notifications",
            removal_policy=settings.removal_policy,
        )
        # Services that publish to the encrypted topic need the key: EventBridge (the render stack's Batch
        # failure rule, by its fixed name) and CloudWatch (this account's alarms). Lambda publishes with its own
        # role's grant.
        failure_rule = arn("events", f"rule/{names.batch_failure_rule}")
        allow_service_on_behalf_of_this_account(
            self.key, "events.amazonaws.com", failure_rule, sid="AllowRenderFailureRule"
        )
        allow_service_on_behalf_of_this_account(
            self.key, "cloudwatch.amazonaws.com", arn("cloudwatch", "alarm:*"), sid="AllowAlarmsOfThisAccount"
        )
        self.topic = sns.Topic(
            self,
            "Failures",
            topic_name=names.failure_topic,
            display_name=f"Sim2Cloud {settings.name} failures",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowRenderFailureRule",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnEquals": {"aws:SourceArn": failure_rule},
                },
            )
        )
        self._dashboard(settings, names)
        cdk.CfnOutput(self, "FailureTopicArn", value=self.topic.topic_arn)

    def _dashboard(self, settings: EnvironmentSettings, names: PipelineNames) -> None:
        period = cdk.Duration.minutes(5)

        def metric(namespace: str, name: str, dimensions: dict[str, str], statistic: str = "Sum") -> cw.Metric:
            return cw.Metric(
                namespace=namespace, metric_name=name, dimensions_map=dimensions, statistic=statistic, period=period
            )

        # AWS Batch publishes no job metrics; the EventBridge rules on its state changes do (matched = jobs).
        render_widgets = [
            cw.GraphWidget(
                title="Render jobs: submitted batches and failed jobs",
                left=[
                    metric("AWS/Lambda", "Invocations", {"FunctionName": names.render_launcher_function}),
                    metric("AWS/Events", "MatchedEvents", {"RuleName": names.batch_failure_rule}),
                ],
            ),
            cw.GraphWidget(
                title="Pipeline handler errors",
                left=[metric("AWS/Lambda", "Errors", {"FunctionName": function}) for function in names.functions],
            ),
        ]
        training_widgets = [
            cw.GraphWidget(
                title="Training jobs (SageMaker)",
                left=[
                    metric("AWS/Lambda", "Invocations", {"FunctionName": names.training_launcher_function}),
                    metric("AWS/Lambda", "Invocations", {"FunctionName": names.model_gate_function}),
                ],
            ),
            cw.LogQueryWidget(
                title="Training metrics (mAP50 per epoch)",
                log_group_names=["/aws/sagemaker/TrainingJobs"],
                query_lines=[
                    "fields @timestamp, @logStream, @message",
                    f"filter @message like /{names.metric_line_prefix}/",
                    "sort @timestamp desc",
                    "limit 50",
                ],
            ),
        ]
        endpoint = {"EndpointName": names.endpoint, "VariantName": names.variant}
        endpoint_widgets = [
            cw.GraphWidget(title="Endpoint invocations", left=[metric("AWS/SageMaker", "Invocations", endpoint)]),
            cw.GraphWidget(
                title="Endpoint latency (µs)",
                left=[
                    metric("AWS/SageMaker", "ModelLatency", endpoint, "Average"),
                    metric("AWS/SageMaker", "ModelLatency", endpoint, "p90"),
                ],
            ),
            cw.GraphWidget(
                title="Endpoint errors",
                left=[
                    metric("AWS/SageMaker", "Invocation4XXErrors", endpoint),
                    metric("AWS/SageMaker", "Invocation5XXErrors", endpoint),
                ],
            ),
        ]
        cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=names.dashboard,
            widgets=[render_widgets, training_widgets, endpoint_widgets],
        )
