"""The deployed pipeline and the local one are wired alike: every Lambda environment variable, EventBridge rule
(pattern and target), quiet-period delivery, render job definition and the quality gate that the synthesized
stacks hold is one the local runner builds too (both read sim2cloud/wiring.py; this catches a stack or the
runner that adds something beside it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from infra_assembly import Synthesized

from sim2cloud import wiring
from sim2cloud.contract import Env
from sim2cloud.local import runner
from stacks.names import PipelineNames

LOCAL_RESOURCES = runner.LocalResources(
    bucket=runner.LOCAL_BUCKET,
    account="123456789012",
    job_queue_arn="arn:aws:batch:us-east-1:123456789012:job-queue/local",
    render_definition_arn="arn:aws:batch:us-east-1:123456789012:job-definition/render:1",
    finalize_definition_arn="arn:aws:batch:us-east-1:123456789012:job-definition/finalize:1",
    model_package_group=runner.MODEL_PACKAGE_GROUP,
    failure_topic_arn="arn:aws:sns:us-east-1:123456789012:failures",
    training_role_arn="arn:aws:iam::123456789012:role/training",
    kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/local",
    quiet_queue_arn="arn:aws:sqs:us-east-1:123456789012:quiet",
)
"""What create_resources returns, without a moto server (the names are the runner's own)."""
_LOGICAL_ID_HASH = re.compile(r"[0-9A-F]{8}$")


def resources(env: Synthesized, resource_type: str) -> dict[tuple[str, str], dict[str, Any]]:
    """``(stack, logical id) -> properties`` of every resource of that type in the environment."""
    return {
        (stack, logical_id): resource.get("Properties", {})
        for stack, template in env.templates.items()
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] == resource_type
    }


def deployed_functions(env: Synthesized) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """wiring function name -> (stack, logical id, properties), found by the fixed function names."""
    names = PipelineNames(env.settings)
    by_physical_name = {
        names.render_launcher_function: wiring.RENDER_LAUNCHER,
        names.training_launcher_function: wiring.TRAINING_LAUNCHER,
        names.model_gate_function: wiring.MODEL_GATE,
    }
    return {
        by_physical_name[props["FunctionName"]]: (stack, logical_id, props)
        for (stack, logical_id), props in resources(env, "AWS::Lambda::Function").items()
        if props.get("FunctionName") in by_physical_name
    }


def local_environments() -> dict[str, dict[str, str]]:
    return runner.function_environments(LOCAL_RESOURCES, frames_per_shard=4)


def test_every_function_gets_the_variables_the_local_runner_gives_it(env: Synthesized) -> None:
    deployed = deployed_functions(env)
    local = local_environments()
    assert set(deployed) == set(local) == set(wiring.FUNCTIONS)
    for name, (stack, _, props) in deployed.items():
        in_stack = set(props["Environment"]["Variables"])
        assert in_stack - set(local[name]) == set(), f"{stack} sets variables of {name} the local runner does not"
        local_only = set(local[name]) - in_stack
        assert local_only <= set(wiring.FUNCTIONS[name].optional), f"local-only variables of {name}: {local_only}"


def test_the_local_gate_is_the_gate_of_the_environment_it_names(synthesized: dict[str, Synthesized]) -> None:
    deployed = synthesized[wiring.LOCAL_GATE_OF]
    _, _, props = deployed_functions(deployed)[wiring.MODEL_GATE]
    in_stack = props["Environment"]["Variables"]
    local = local_environments()[wiring.MODEL_GATE]
    for variable in (Env.QUALITY_GATE_MAP50, Env.MODEL_APPROVAL_MODE):
        assert local[variable] == in_stack[variable], variable


def rule_target(env: Synthesized, stack: str, arn: Any) -> str:
    """The wiring target a rule target's ARN expression points at."""
    functions = {(s, logical_id): name for name, (s, logical_id, _) in deployed_functions(env).items()}
    if "Fn::GetStackOutput" in arn:  # a construct of another stack, published as an output
        output = arn["Fn::GetStackOutput"]
        owner = next(s for s, t in env.templates.items() if output["StackName"].endswith(f"-{s}"))
        stack, arn = owner, env.templates[owner]["Outputs"][output["OutputName"]]["Value"]
    logical_id = arn["Fn::GetAtt"][0] if "Fn::GetAtt" in arn else arn["Ref"]
    kind = env.templates[stack]["Resources"][logical_id]["Type"]
    if kind == "AWS::Lambda::Function":
        return functions[(stack, logical_id)]
    if kind == "AWS::SQS::Queue":
        sources = resources(env, "AWS::Lambda::EventSourceMapping")
        fed = [
            functions[(s, props["FunctionName"]["Ref"])]
            for (s, _), props in sources.items()
            if s == stack and props["EventSourceArn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
        ]
        assert fed == [wiring.RENDER_LAUNCHER], f"queue {logical_id} feeds {fed}"
        return wiring.QUIET_PERIOD_QUEUE
    assert kind == "AWS::SNS::Topic", f"rule target {logical_id} is a {kind}"
    return wiring.FAILURE_TOPIC


def deployed_rules(env: Synthesized) -> dict[str, tuple[dict[str, Any], str]]:
    """rule construct id -> (event pattern, wiring target)."""
    found = {}
    for (stack, logical_id), props in resources(env, "AWS::Events::Rule").items():
        if "EventPattern" not in props:
            continue
        (target,) = props["Targets"]
        found[_LOGICAL_ID_HASH.sub("", logical_id)] = (props["EventPattern"], rule_target(env, stack, target["Arn"]))
    return found


def test_every_rule_is_routed_locally_with_the_same_pattern_and_target(env: Synthesized) -> None:
    deployed = deployed_rules(env)
    delivered_to: list[str] = []

    def deliver(target: str) -> Any:
        delivered_to.append(target)
        return print

    local = {
        rule.name: (rule.pattern, target)
        for rule, target in zip(
            runner.local_rules(LOCAL_RESOURCES, deliver),
            wiring.RULES,
            strict=True,
        )
    }
    assert set(deployed) == set(local), "rules of the stacks and of the local runner differ"
    bucket = PipelineNames(env.settings).data_bucket
    for name, (pattern, target) in deployed.items():
        local_pattern, wired = local[name]
        assert target == wired.target, f"rule {name}: the stack targets {target}, the wiring {wired.target}"
        # The same pattern but for the deployment's own bucket and job queue.
        if "jobQueue" in pattern.get("detail", {}):
            local_pattern = json.loads(json.dumps(local_pattern))
            local_pattern["detail"]["jobQueue"] = pattern["detail"]["jobQueue"]
        assert json.loads(json.dumps(local_pattern).replace(runner.LOCAL_BUCKET, bucket)) == pattern, name
    assert sorted(delivered_to) == sorted(rule.target for rule in wiring.RULES)


def test_the_quiet_period_queue_delivers_batches_of_the_wired_size(env: Synthesized) -> None:
    (props,) = resources(env, "AWS::Lambda::EventSourceMapping").values()
    assert props["BatchSize"] == wiring.QUIET_PERIOD_BATCH_SIZE


def test_render_job_definitions_carry_the_variables_and_commands_of_the_local_ones(env: Synthesized) -> None:
    names = PipelineNames(env.settings)
    deployed = {
        props["JobDefinitionName"]: props["ContainerProperties"]
        for props in resources(env, "AWS::Batch::JobDefinition").values()
    }
    local = runner.local_job_definitions(Path("/tmp/work"))
    for cloud_name, local_name in (
        (names.render_job_definition, runner.RENDER_DEFINITION),
        (names.finalize_job_definition, runner.FINALIZE_DEFINITION),
    ):
        cloud, here = deployed[cloud_name], local[local_name]
        cloud_variables = {item["Name"] for item in cloud["Environment"]}
        local_variables = {item["name"] for item in here["environment"]}
        assert local_variables == cloud_variables - {"ACCEPT_EULA"}, cloud_name
        assert cloud["Command"] == here["command"], cloud_name


@pytest.mark.parametrize("function", list(wiring.FUNCTIONS))
def test_an_undeclared_or_missing_variable_is_refused(function: str) -> None:
    declared = local_environments()[function]
    with pytest.raises(wiring.WiringError, match="not declared"):
        wiring.function_environment(function, {**declared, "SIM2CLOUD_SOMETHING_NEW": "1"})
    some_required = sorted(wiring.FUNCTIONS[function].variables)[0]
    with pytest.raises(wiring.WiringError, match="missing"):
        wiring.function_environment(function, {k: v for k, v in declared.items() if k != some_required})
