"""What each stack declares, per environment: rules wired to the contract's patterns, the GPU job definitions,
the Batch queue order, endpoint scaling and rollback, storage lifecycle."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from infra_assembly import Synthesized

from sim2cloud import contract
from stacks.endpoint_stack import MODEL_PACKAGE_PARAMETER_PATTERN

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bucket(env: Synthesized) -> str:
    return f"sim2cloud-{env.settings.name}-data-{env.settings.account}-{env.settings.region}"


def _canonical(pattern: dict[str, Any]) -> str:
    return json.dumps(pattern, sort_keys=True)


def _rules(env: Synthesized, *lifecycles: str) -> list[dict[str, Any]]:
    return [
        r["Properties"]
        for lifecycle in lifecycles
        for r in env.templates[lifecycle]["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
    ]


def _pipeline_rules(env: Synthesized) -> list[dict[str, Any]]:
    """The rules that feed the orchestration functions (the render launcher's are in Render, the rest in
    Training); Render's batch-failure rule (to the failure topic) is checked on its own below."""
    return [rule for rule in _rules(env, "Render", "Training") if rule["EventPattern"]["source"] != ["aws.batch"]]


def test_rule_patterns_equal_the_contract(env: Synthesized) -> None:
    bucket = _bucket(env)
    patterns = [rule["EventPattern"] for rule in _pipeline_rules(env)]
    expected = [
        contract.mesh_created_pattern(bucket),
        contract.batch_config_created_pattern(bucket),
        contract.dataset_manifest_created_pattern(bucket),
        contract.training_state_change_pattern(),
    ]
    assert sorted(map(_canonical, patterns)) == sorted(map(_canonical, expected))
    for rule in _pipeline_rules(env):
        (target,) = rule["Targets"]
        assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_batch_failure_rule_matches_contract_for_our_queue(env: Synthesized) -> None:
    (rule,) = [rule for rule in _rules(env, "Render") if rule["EventPattern"]["source"] == ["aws.batch"]]
    pattern = rule["EventPattern"]
    (queue_id,) = [
        lid for lid, r in env.templates["Render"]["Resources"].items() if r["Type"] == "AWS::Batch::JobQueue"
    ]
    queue_arn = {"Fn::GetAtt": [queue_id, "JobQueueArn"]}
    assert pattern == contract.batch_job_failed_pattern(queue_arn)  # type: ignore[arg-type]


def test_mesh_drops_wait_out_the_quiet_period(env: Synthesized) -> None:
    resources = env.templates["Render"]["Resources"]
    delayed = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::SQS::Queue" and "DelaySeconds" in r["Properties"]
    ]
    (queue,) = delayed
    assert queue["DelaySeconds"] == env.settings.quiet_period_seconds
    assert queue["RedrivePolicy"]["maxReceiveCount"] > 0
    (mapping,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_lambdas_use_contract_environment_names(env: Synthesized) -> None:
    functions = {
        r["Properties"]["FunctionName"]: r["Properties"]
        for lifecycle in ("Render", "Training")
        for r in env.templates[lifecycle]["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "FunctionName" in r["Properties"]
    }
    prefix = f"sim2cloud-{env.settings.name}-"
    assert set(functions) == {f"{prefix}render-launcher", f"{prefix}training-launcher", f"{prefix}model-gate"}
    known = {value for name, value in vars(contract.Env).items() if name.isupper()}
    for function in functions.values():
        assert function["Handler"] == "handler.handler" and function["Runtime"] == "python3.12"
        assert function["Architectures"] == ["arm64"]
        variables = function["Environment"]["Variables"]
        assert set(variables) <= known, set(variables) - known
        assert variables[contract.Env.DATA_BUCKET] == _bucket(env)
        assert "DeadLetterConfig" in function
    gate = functions[f"{prefix}model-gate"]["Environment"]["Variables"]
    assert float(gate[contract.Env.QUALITY_GATE_MAP50]) == env.settings.training.quality_gate_map50
    assert gate[contract.Env.MODEL_APPROVAL_MODE] == env.settings.training.approval_mode


def test_gpu_render_job_definition(env: Synthesized) -> None:
    definitions = {
        r["Properties"]["JobDefinitionName"]: r["Properties"]
        for r in env.templates["Render"]["Resources"].values()
        if r["Type"] == "AWS::Batch::JobDefinition"
    }
    render = definitions[f"sim2cloud-{env.settings.name}-render-shard"]
    container = render["ContainerProperties"]
    requirements = {item["Type"]: item["Value"] for item in container["ResourceRequirements"]}
    assert requirements["GPU"] == "1"
    assert container["LinuxParameters"]["SharedMemorySize"] == env.settings.render.shared_memory_mib
    variables = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert variables["ACCEPT_EULA"] == "Y"
    assert variables[contract.Env.RENDER_BACKEND] == "isaac"
    assert container["Command"] == ["shard"]  # progress on: a line every few seconds off a terminal
    mounts = {m["ContainerPath"] for m in container["MountPoints"]}
    assert {"/isaac-sim/kit/cache", "/isaac-sim/.cache", "/isaac-sim/.nv/ComputeCache"} <= mounts
    for volume in container["Volumes"]:
        assert volume["Host"]["SourcePath"].startswith("/mnt/isaac/")
    strategy = render["RetryStrategy"]
    assert strategy["Attempts"] == env.settings.render.retry_attempts
    assert strategy["EvaluateOnExit"] == [
        {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
        {"Action": "EXIT", "OnReason": "*"},
    ]
    finalize = definitions[f"sim2cloud-{env.settings.name}-render-finalize"]["ContainerProperties"]
    assert finalize["Command"] == ["finalize"]
    assert not any(item["Type"] == "GPU" for item in finalize["ResourceRequirements"])


def test_compute_environments_spot_then_on_demand(env: Synthesized) -> None:
    resources = env.templates["Render"]["Resources"]
    environments = {
        lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::Batch::ComputeEnvironment"
    }
    (queue,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Batch::JobQueue"]
    ordered = sorted(queue["ComputeEnvironmentOrder"], key=lambda item: item["Order"])
    kinds = [environments[item["ComputeEnvironment"]["Fn::GetAtt"][0]]["ComputeResources"]["Type"] for item in ordered]
    assert kinds == (["SPOT", "EC2"] if env.settings.render.use_spot else ["EC2"])
    for props in environments.values():
        resources_ = props["ComputeResources"]
        assert resources_["InstanceTypes"] == list(env.settings.render.instance_types)
        assert resources_["Ec2Configuration"] == [{"ImageType": "ECS_AL2_NVIDIA"}]
        assert resources_["MinvCpus"] == 0


def test_vpc_has_no_internet_path(env: Synthesized) -> None:
    resources = env.templates["Render"]["Resources"]
    types = {r["Type"] for r in resources.values()}
    assert "AWS::EC2::NatGateway" not in types and "AWS::EC2::InternetGateway" not in types
    services = {str(r["Properties"]["ServiceName"]) for r in resources.values() if r["Type"] == "AWS::EC2::VPCEndpoint"}
    for service in ("s3", "ecr.api", "ecr.dkr", "logs", "ecs", "ecs-agent", "ecs-telemetry"):
        assert any(s.endswith(f".{service}'") or f".{service}" in s for s in services), service


def test_endpoint_scaling_per_environment(env: Synthesized) -> None:
    resources = env.templates["Endpoint"]["Resources"]
    (target,) = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    ]
    assert target["MinCapacity"] == env.settings.endpoint.min_capacity
    assert target["MaxCapacity"] == env.settings.endpoint.max_capacity
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    (policy,) = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    ]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert tracking["TargetValue"] == env.settings.endpoint.invocations_per_instance_target


def test_endpoint_rolls_back_on_5xx_and_latency_alarms(env: Synthesized) -> None:
    resources = env.templates["Endpoint"]["Resources"]
    (endpoint,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::SageMaker::Endpoint"]
    config = endpoint["DeploymentConfig"]
    assert "BlueGreenUpdatePolicy" in config
    rollback = {a["AlarmName"]["Ref"] for a in config["AutoRollbackConfiguration"]["Alarms"]}
    alarms = {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert rollback == set(alarms)
    assert {a["MetricName"] for a in alarms.values()} == {"Invocation5XXErrors", "ModelLatency"}
    (model,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::SageMaker::Model"]
    assert model["Containers"] == [{"ModelPackageName": {"Ref": "ModelPackageArn"}}]


def test_model_package_parameter_is_empty_or_a_package_arn(env: Synthesized) -> None:
    parameter = env.templates["Endpoint"]["Parameters"]["ModelPackageArn"]
    assert parameter["Default"] == ""  # the first deploy has no approved model yet
    assert parameter["AllowedPattern"] == MODEL_PACKAGE_PARAMETER_PATTERN
    assert "approved model package" in parameter["ConstraintDescription"]
    pattern = re.compile(MODEL_PACKAGE_PARAMETER_PATTERN)
    for accepted in ("", "arn:aws:sagemaker:eu-west-1:123456789012:model-package/sim2cloud-dev-detector/3"):
        assert pattern.match(accepted)
    for wrong in (
        "placeholder",
        " ",
        "arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/sim2cloud-dev-detector",
    ):
        assert not pattern.match(wrong)


def test_storage_lifecycle_and_retention_per_environment(env: Synthesized) -> None:
    buckets = env.resources("AWS::S3::Bucket")
    (data,) = [b for _, b in buckets.values() if "LoggingConfiguration" in b["Properties"]]
    rules = {rule["Id"]: rule for rule in data["Properties"]["LifecycleConfiguration"]["Rules"]}
    storage = env.settings.storage
    assert rules["expire-renders"]["Prefix"] == contract.RENDERS_PREFIX
    assert rules["expire-renders"]["ExpirationInDays"] == storage.renders_expire_days
    assert rules["datasets-to-infrequent-access"]["Prefix"] == contract.DATASETS_PREFIX
    assert (
        rules["datasets-to-infrequent-access"]["Transitions"][0]["TransitionInDays"] == storage.datasets_transition_days
    )
    assert (
        rules["noncurrent-versions-and-uploads"]["NoncurrentVersionExpiration"]["NoncurrentDays"]
        == storage.noncurrent_expire_days
    )
    expected = "Retain" if env.settings.retain_data else "Delete"
    assert data["DeletionPolicy"] == expected and data["UpdateReplacePolicy"] == expected


_SETTINGS_CLASSES = {
    "render-launcher": ("render_launcher", "RenderLauncherSettings"),
    "training-launcher": ("training_launcher", "TrainingLauncherSettings"),
    "model-gate": ("model_gate", "ModelGateSettings"),
}


def _logic_module(folder: str) -> Any:
    """The function's logic module, importing ``shared`` and ``sim2cloud.contract`` as its bundle does."""
    lambda_root = REPO_ROOT / "lambda"
    name = f"{folder}_logic"
    before = set(sys.modules)
    sys.path.insert(0, str(lambda_root))
    try:
        spec = importlib.util.spec_from_file_location(name, lambda_root / folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(lambda_root))
        for added in set(sys.modules) - before:  # leave no Lambda module behind for other tests
            if added == name or added == "shared" or added.startswith("shared."):
                del sys.modules[added]


def test_each_lambda_accepts_the_environment_cdk_gives_it(env: Synthesized) -> None:
    """The settings parser of each function runs on exactly the variables its stack sets (values CloudFormation
    resolves at deploy time stand in as placeholders), so a renamed or missing variable fails here, not in AWS."""
    prefix = f"sim2cloud-{env.settings.name}-"
    for resource in env.templates["Training"]["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        properties = resource["Properties"]
        folder, class_name = _SETTINGS_CLASSES[properties["FunctionName"].removeprefix(prefix)]
        variables = {
            name: value if isinstance(value, str) else "resolved-at-deploy"
            for name, value in properties["Environment"]["Variables"].items()
        }
        settings = getattr(_logic_module(folder), class_name).from_env(variables)
        assert settings.bucket == _bucket(env)


def test_training_hyperparameters_set_by_cdk_are_valid_for_the_training_container(env: Synthesized) -> None:
    from sim2cloud.hyperparameters import parse_hyperparameters

    (launcher,) = [
        r["Properties"]
        for r in env.templates["Training"]["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["FunctionName"].endswith("training-launcher")
    ]
    raw = json.loads(launcher["Environment"]["Variables"][contract.Env.TRAINING_HYPERPARAMETERS])
    assert parse_hyperparameters(raw).model == raw["model"]


def test_images_are_pinned_to_the_configured_immutable_tag(env: Synthesized) -> None:
    tag = env.settings.image_tag
    assert tag and tag != "latest"
    rendered = json.dumps(env.templates["Render"]) + json.dumps(env.templates["Training"])
    assert ":latest" not in rendered
    assert f":{tag}" in json.dumps(env.templates["Render"])
    assert f":{tag}" in json.dumps(env.templates["Training"])


def test_a_moving_image_tag_is_refused() -> None:
    from stacks.config import load_settings

    assert load_settings("dev", {"image_tag": "3f2c1ab"}).image_tag == "3f2c1ab"
    with pytest.raises(ValueError, match="immutable tag"):
        load_settings("dev", {"image_tag": "latest"})
