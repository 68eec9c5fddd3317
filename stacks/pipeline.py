"""Builds the whole CDK app for one environment; ``app.py`` and the infra tests both call ``build_app``."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.ci_access_stack import CiAccessStack
from stacks.config import EnvironmentSettings, load_settings
from stacks.endpoint_stack import EndpointStack
from stacks.monitoring_stack import MonitoringStack
from stacks.registries_stack import RegistriesStack
from stacks.render_stack import RenderStack
from stacks.storage_stack import StorageStack
from stacks.training_stack import TrainingStack

REPO_ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = REPO_ROOT / "cdk.json"


CONTEXT_KEYS = (
    "account",
    "region",
    "github_repository",
    "github_subject_repository",
    "create_oidc_provider",
    "image_tag",
    "training_weights_s3_uri",
)
"""Context values (``-c key=value``) that override environment settings; see stacks.config.load_settings."""


def cdk_json_context() -> dict[str, Any]:
    """The feature flags and defaults from cdk.json, so an app built outside the CLI (tests) matches it."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return context


def bundle_root(app: cdk.App) -> Path:
    """Lambda bundles are staged beside the cloud assembly (cdk.out/ or a test's outdir), never in the repo."""
    return Path(app.outdir) / "lambda-bundles"


DEPLOY_ORDER: tuple[tuple[str, ...], ...] = (
    ("Storage", "Monitoring", "Registries", "CiAccess"),
    ("Render", "Training"),
    ("Endpoint",),
)
"""The first deploy of a fresh account, wave by wave (README "Deploy to your account"): the images are pushed
to the Registries repositories between the first wave and the second, whose job definitions and training
launcher name them. The Endpoint stack deploys without an endpoint until a model package is approved."""


def ci_access_left_out(settings: EnvironmentSettings) -> str:
    """Why CiAccess is missing from the app, and how to add it."""
    return (
        f"{settings.stack_name('CiAccess')} left out: no GitHub repository named, so no deploy role trusts one. "
        "Add it with -c github_repository=<owner>/<name> (or a github_repository entry in cdk.json's context)."
    )


def add_stacks(app: cdk.App, settings: EnvironmentSettings) -> dict[str, cdk.Stack]:
    """Every stack of one environment, wired by passing constructs (CDK turns them into exports/imports).
    CiAccess exists only when the user named the GitHub repository to trust (never a default one)."""
    storage = StorageStack(
        app, settings.stack_name("Storage"), settings=settings, description="Sim2Cloud data bucket and key"
    )
    monitoring = MonitoringStack(
        app, settings.stack_name("Monitoring"), settings=settings, description="Sim2Cloud failure topic and dashboard"
    )
    registries = RegistriesStack(
        app, settings.stack_name("Registries"), settings=settings, description="Sim2Cloud image repositories (ECR)"
    )
    render = RenderStack(
        app,
        settings.stack_name("Render"),
        settings=settings,
        data_key=storage.key,
        failure_topic=monitoring.topic,
        bundle_root=bundle_root(app),
        description="Sim2Cloud render fleet (AWS Batch GPU) and job definitions",
    )
    # Stacks that name the bucket or a repository through PipelineNames hold no token of it: order them
    # explicitly.
    render.add_stack_dependency(storage)
    render.add_stack_dependency(registries)
    training = TrainingStack(
        app,
        settings.stack_name("Training"),
        settings=settings,
        data_key=storage.key,
        failure_topic=monitoring.topic,
        bundle_root=bundle_root(app),
        description="Sim2Cloud orchestration Lambdas, rules, SageMaker role and model registry",
    )
    training.add_stack_dependency(storage)
    training.add_stack_dependency(registries)
    # Render after Training: an environment deployed before the render launcher moved into the Render stack must
    # first lose it from Training (its fixed function name, and Training's imports of the job queue and job
    # definition exports), then get it back from Render; a fresh environment does not mind the order.
    render.add_stack_dependency(training)
    endpoint = EndpointStack(
        app,
        settings.stack_name("Endpoint"),
        settings=settings,
        data_key=storage.key,
        failure_topic=monitoring.topic,
        description="Sim2Cloud SageMaker endpoint serving the approved model package",
    )
    endpoint.add_stack_dependency(storage)
    endpoint.add_stack_dependency(registries)
    stacks: dict[str, cdk.Stack] = {
        "Storage": storage,
        "Monitoring": monitoring,
        "Registries": registries,
        "Render": render,
        "Training": training,
        "Endpoint": endpoint,
    }
    if settings.ci.github_repository is not None:
        stacks["CiAccess"] = CiAccessStack(
            app,
            settings.stack_name("CiAccess"),
            settings=settings,
            description="Sim2Cloud GitHub OIDC deploy, image push and read-only diff roles",
        )
    else:
        print(ci_access_left_out(settings), file=sys.stderr)
    return stacks


def build_app(
    environment: str | None = None,
    *,
    outdir: str | None = None,
    context: Mapping[str, Any] | None = None,
    with_nag: bool = True,
) -> tuple[cdk.App, dict[str, cdk.Stack]]:
    """The app for ``environment`` (else context ``env``), with cdk-nag AwsSolutions checks registered."""
    merged = {**cdk_json_context(), **(context or {})}
    if environment is not None:
        merged["env"] = environment
    app = cdk.App(outdir=outdir, context=merged)
    name = str(app.node.try_get_context("env") or "dev")
    settings = load_settings(
        name,
        {key: app.node.try_get_context(key) for key in CONTEXT_KEYS},
    )
    if with_nag:
        # cdk-nag 3 runs as a CDK policy-validation plugin: unacknowledged findings fail synth.
        cdk.Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
        )
    return app, add_stacks(app, settings)
