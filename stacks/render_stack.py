"""Render lifecycle: the private network, the AWS Batch GPU fleet, the job definitions for the render array job
and its finalize job, and the render launcher that submits them (its quiet-period queue and its rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
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
    encrypted_log_group,
)
from stacks.constructs.event_patterns import event_pattern
from stacks.constructs.gpu_fleet import GpuFleet
from stacks.constructs.nag import acknowledge
from stacks.constructs.pipeline_function import FUNCTION_TIMEOUT, PipelineFunction, wired_function
from stacks.constructs.private_network import PrivateNetwork
from stacks.constructs.rule_targets import PreauthorizedTopic
from stacks.constructs.secure_queue import dead_letter_queue, work_queue
from stacks.constructs.wired_rules import add_wired_rules, alarm_on_dead_letters, function_target, queue_target
from stacks.names import PipelineNames
from stacks.registries_stack import repository_named

IMAGE_ENTRYPOINT = "/opt/sim2cloud/entrypoint.sh"
"""Our image (containers/isaac-sim) replaces Isaac Sim's streaming-app entrypoint with this script, which runs
``/isaac-sim/python.sh -m isaac_jobs.cloud <mode>``. Batch job definitions have no entrypoint field, so the
job's ``command`` overrides the image's CMD: the mode of that script."""
RENDER_COMMAND = wiring.job_command(wiring.RENDER_JOB)
"""Progress on: off a terminal it is a line every few seconds (sim2cloud.job_log), not a redrawn bar."""
FINALIZE_COMMAND = wiring.job_command(wiring.FINALIZE_JOB)
ISAAC_CACHE_PATHS = {
    # container path -> folder under the instance-store mount (shader/kit caches survive between jobs on a host)
    "/isaac-sim/kit/cache": "kit-cache",
    "/isaac-sim/.cache": "ov-cache",
    "/isaac-sim/.nv/ComputeCache": "compute-cache",
}
ISAAC_VARIABLES = {"ACCEPT_EULA": "Y"}
"""The Isaac Sim image starts only with its EULA accepted."""
WORK_DIR = "/scratch"
"""SIM2CLOUD_WORK_DIR in the image; mounted from the instance store below."""


class RenderStack(PipelineStack):
    job_queue: batch.JobQueue
    render_job: batch.EcsJobDefinition
    finalize_job: batch.EcsJobDefinition
    render_launcher: PipelineFunction

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
        render = settings.render
        key = customer_key(
            self,
            "RenderKey",
            alias=f"alias/{settings.resource_name('render')}",
            description=f"Sim2Cloud {settings.name}: render logs",
            removal_policy=settings.removal_policy,
        )
        allow_cloudwatch_logs(key)
        # EventBridge delivers to the encrypted queues (quiet-period queue and rule DLQs), for this account's
        # rules only.
        allow_service_on_behalf_of_this_account(
            key, "events.amazonaws.com", arn("events", "rule/*"), sid="AllowEventBridgeRulesOfThisAccount"
        )
        network = PrivateNetwork(
            self,
            "Network",
            availability_zone_count=settings.availability_zone_count,
            flow_log_group=encrypted_log_group(
                self,
                "FlowLogs",
                key=key,
                retention_days=settings.log_retention_days,
                removal_policy=settings.removal_policy,
            ),
        )
        fleet = GpuFleet(self, "Fleet", vpc=network.vpc, settings=render, queue_name=names.job_queue)
        self.job_queue = fleet.queue

        log_group = encrypted_log_group(
            self,
            "JobLogs",
            key=key,
            retention_days=settings.log_retention_days,
            removal_policy=settings.removal_policy,
        )
        logging = ecs.LogDrivers.aws_logs(stream_prefix="render", log_group=log_group)
        repository = repository_named(self, "IsaacSimImage", names.isaac_sim_repository)
        image = ecs.ContainerImage.from_ecr_repository(repository, tag=settings.image_tag)
        common_env = wiring.common_environment(names.data_bucket, settings.name)

        render_role = iam.Role(self, "RenderJobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        grant_prefixes(
            render_role,
            names.data_bucket,
            data_key,
            # assets/ is read too: a shard reuses the USD assets an earlier shard of the batch prepared.
            read=(contract.MESHES_PREFIX, contract.ASSETS_PREFIX),
            write=(contract.RENDERS_PREFIX, contract.ASSETS_PREFIX),
            nag_scope=render_role,
        )
        volumes = [
            batch.EcsVolume.host(
                name=f"isaac-{folder}",
                host_path=f"{GpuFleet.INSTANCE_STORE_MOUNT}/{folder}",
                container_path=container_path,
            )
            for container_path, folder in ISAAC_CACHE_PATHS.items()
        ] + [
            batch.EcsVolume.host(
                name="work", host_path=f"{GpuFleet.INSTANCE_STORE_MOUNT}/work", container_path=WORK_DIR
            )
        ]
        render_container = batch.EcsEc2ContainerDefinition(
            self,
            "RenderContainer",
            image=image,
            cpu=render.job_vcpus,
            memory=cdk.Size.mebibytes(render.job_memory_mib),
            gpu=1,
            # Overrides the image's CMD; its ENTRYPOINT (IMAGE_ENTRYPOINT) replaced the streaming app.
            command=RENDER_COMMAND,
            environment=wiring.job_environment(
                wiring.RENDER_JOB, common_env, WORK_DIR, render_backend="isaac", image_variables=ISAAC_VARIABLES
            ),
            job_role=render_role,
            linux_parameters=batch.LinuxParameters(
                self, "RenderLinux", shared_memory_size=cdk.Size.mebibytes(render.shared_memory_mib)
            ),
            volumes=volumes,
            logging=logging,
        )
        retry = [
            # Retry only when the host went away (spot reclaim, instance failure); our own errors exit at once.
            batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason="Host EC2*")),
            batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
        ]
        self.render_job = batch.EcsJobDefinition(
            self,
            "RenderShardJob",
            job_definition_name=names.render_job_definition,
            container=render_container,
            retry_attempts=render.retry_attempts,
            retry_strategies=retry,
            timeout=cdk.Duration.minutes(render.job_timeout_minutes),
            propagate_tags=True,
        )

        finalize_role = iam.Role(self, "FinalizeJobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        grant_prefixes(
            finalize_role,
            names.data_bucket,
            data_key,
            read=(contract.RENDERS_PREFIX,),
            write=(contract.DATASETS_PREFIX,),
            nag_scope=finalize_role,
        )
        finalize_container = batch.EcsEc2ContainerDefinition(
            self,
            "FinalizeContainer",
            image=image,
            cpu=render.finalize_vcpus,
            memory=cdk.Size.mebibytes(render.finalize_memory_mib),
            # Same image (it holds isaac_jobs), no GPU: merging shards is file work.
            command=FINALIZE_COMMAND,
            environment=wiring.job_environment(
                wiring.FINALIZE_JOB, common_env, WORK_DIR, render_backend="isaac", image_variables=ISAAC_VARIABLES
            ),
            job_role=finalize_role,
            logging=logging,
        )
        self.finalize_job = batch.EcsJobDefinition(
            self,
            "FinalizeJob",
            job_definition_name=names.finalize_job_definition,
            container=finalize_container,
            retry_attempts=render.retry_attempts,
            retry_strategies=retry,
            timeout=cdk.Duration.minutes(60),
            propagate_tags=True,
        )

        # Render failures reach people: every FAILED job of our queue goes to the failure topic.
        failed = wiring.rule("RenderJobFailed")
        events.Rule(
            self,
            failed.name,
            rule_name=names.batch_failure_rule,
            event_pattern=event_pattern(
                failed.pattern(
                    wiring.RuleInputs(data_bucket=names.data_bucket, job_queue_arn=self.job_queue.job_queue_arn)
                )
            ),
            # The Monitoring stack's topic policy lets exactly this rule (by its fixed name) publish.
            targets=[PreauthorizedTopic(failure_topic)],
        )
        for role in (render_container.execution_role, finalize_container.execution_role):
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "CDK's ECS execution-role grant: ecr:GetAuthorizationToken has no resource-level permissions.",
                applies_to=("Resource::*",),
            )
        self._render_launcher(settings, names, key, data_key, failure_topic, bundle_root)

    def _render_launcher(
        self,
        settings: EnvironmentSettings,
        names: PipelineNames,
        key: kms.Key,
        data_key: kms.IKey,
        failure_topic: sns.ITopic,
        bundle_root: Path,
    ) -> None:
        """The render launcher: mesh drops wait out the quiet period in SQS (DeliveryDelay) before it sees them,
        so one drop of many files becomes one submission; the batch config file reaches it at once."""
        bucket = names.data_bucket
        launcher = wired_function(
            self,
            wiring.RENDER_LAUNCHER,
            function_name=names.render_launcher_function,
            environment={
                **wiring.common_environment(bucket, settings.name),
                contract.Env.JOB_QUEUE: self.job_queue.job_queue_arn,
                contract.Env.RENDER_JOB_DEFINITION: self.render_job.job_definition_arn,
                contract.Env.FINALIZE_JOB_DEFINITION: self.finalize_job.job_definition_arn,
                contract.Env.QUIET_PERIOD_SECONDS: str(settings.quiet_period_seconds),
            },
            key=key,
            bundle_root=bundle_root,
            log_retention_days=settings.log_retention_days,
            removal_policy=settings.removal_policy,
        )
        self.render_launcher = launcher
        grant_prefixes(
            launcher.grantable,
            bucket,
            data_key,
            read=(contract.MESHES_PREFIX, contract.RUNS_PREFIX),
            write=(contract.RUNS_PREFIX, contract.QUARANTINE_PREFIX),
            nag_scope=launcher.role,
        )
        # Releasing its own claim (runs/<run>/status.json) after a failed submit; nothing else is deleted.
        launcher.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:DeleteObject"],
                resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{contract.RUNS_PREFIX}*"],
            )
        )
        launcher.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["batch:SubmitJob"],
                resources=[
                    self.job_queue.job_queue_arn,
                    # SubmitJob authorizes the definition by name with any revision.
                    _any_revision(names.render_job_definition),
                    _any_revision(names.finalize_job_definition),
                ],
            )
        )
        acknowledge(
            launcher.role,
            "AwsSolutions-IAM5",
            "Job definitions are authorized as name:* because every deployment registers a new revision.",
            applies_to=tuple(
                nag_resource("batch", f"job-definition/{n}:*")
                for n in (names.render_job_definition, names.finalize_job_definition)
            ),
        )

        quiet_dlq = dead_letter_queue(self, "QuietPeriodDlq", key=key)
        quiet_queue = work_queue(
            self,
            "QuietPeriodQueue",
            key=key,
            dead_letter=quiet_dlq,
            max_receive_count=5,
            # AWS guidance: at least 6x the function timeout, so a slow batch is not redelivered mid-flight.
            visibility_timeout=cdk.Duration.seconds(FUNCTION_TIMEOUT.to_seconds() * 6),
            delivery_delay=cdk.Duration.seconds(settings.quiet_period_seconds),
        )
        launcher.function.add_event_source(
            sources.SqsEventSource(
                quiet_queue, batch_size=wiring.QUIET_PERIOD_BATCH_SIZE, report_batch_item_failures=True
            )
        )
        inputs = wiring.RuleInputs(data_bucket=bucket, job_queue_arn=self.job_queue.job_queue_arn)
        targets_here = {
            wiring.QUIET_PERIOD_QUEUE: queue_target(quiet_queue),
            wiring.RENDER_LAUNCHER: function_target(launcher.function),
        }
        rule_dlqs = add_wired_rules(self, inputs, targets_here, key=key)
        alarm_on_dead_letters([launcher.dlq, quiet_dlq, *rule_dlqs], failure_topic)
        cdk.CfnOutput(self, contract.RENDER_LAUNCHER_OUTPUT, value=names.render_launcher_function)


def _any_revision(job_definition_name: str) -> str:
    return arn("batch", f"job-definition/{job_definition_name}:*")
