"""A fresh account, as a new user deploys it: nothing trusts a GitHub repository the user did not name, and the
first ``cdk deploy --all`` works before any model exists (the Endpoint stack holds no endpoint until then)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from infra_assembly import Synthesized

from stacks.config import ENVIRONMENTS, load_settings
from stacks.endpoint_stack import HAS_MODEL_PACKAGE_CONDITION, NO_MODEL_PLACEHOLDER
from stacks.pipeline import DEPLOY_ORDER, build_app, ci_access_left_out

NO_REPOSITORY_CONTEXT = {"account": "123456789012", "region": "eu-west-1"}
OIDC_HOST = "token.actions.githubusercontent.com"
PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/sim2cloud-dev-detector/1"


@pytest.fixture(scope="module")
def without_repository(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every environment synthesized (cdk-nag on) with no ``github_repository``: environment -> templates."""
    out = {}
    for name in ENVIRONMENTS:
        assembly = tmp_path_factory.mktemp(f"cdk-{name}-no-repository")
        app, built = build_app(name, outdir=str(assembly), context=NO_REPOSITORY_CONTEXT)
        app.synth()
        out[name] = {
            lifecycle: json.loads((assembly / f"{stack.stack_name}.template.json").read_text())
            for lifecycle, stack in built.items()
        }
    return out


def _web_identity_subjects(templates: dict[str, dict[str, Any]]) -> list[str]:
    """The ``sub`` claim of every statement, in any template, that a web identity (GitHub OIDC) may assume."""
    subjects = []
    for template in templates.values():
        for resource in template["Resources"].values():
            document = resource.get("Properties", {}).get("AssumeRolePolicyDocument", {})
            for statement in document.get("Statement", []):
                if "AssumeRoleWithWebIdentity" in str(statement.get("Action")) or "Federated" in str(
                    statement.get("Principal")
                ):
                    subjects.append(str(statement.get("Condition", {}).get("StringEquals", {}).get(f"{OIDC_HOST}:sub")))
    return subjects


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_no_repository_named_means_no_ci_stack_and_no_trust(
    name: str, without_repository: dict[str, dict[str, Any]]
) -> None:
    templates = without_repository[name]
    assert "CiAccess" not in templates
    assert set(templates) == {"Storage", "Monitoring", "Registries", "Render", "Training", "Endpoint"}
    assert _web_identity_subjects(templates) == []
    assert OIDC_HOST not in json.dumps(templates)
    settings = load_settings(name, NO_REPOSITORY_CONTEXT)
    assert settings.ci.github_repository is None
    message = ci_access_left_out(settings)
    assert "-c github_repository=" in message and f"Sim2Cloud-{name}-CiAccess" in message


def test_left_out_message_is_printed_at_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_app("dev", outdir=str(tmp_path), context=NO_REPOSITORY_CONTEXT, with_nag=False)
    assert ci_access_left_out(load_settings("dev", NO_REPOSITORY_CONTEXT)) in capsys.readouterr().err


def test_named_repository_is_the_only_one_trusted(env: Synthesized) -> None:
    ci = env.settings.ci
    assert ci.github_repository == "example/sim2cloud"  # tests/infra/conftest.py TEST_CONTEXT
    subjects = _web_identity_subjects(env.templates)
    assert sorted(subjects) == sorted(
        [f"repo:example/sim2cloud:environment:{ci.github_environment}", "repo:example/sim2cloud:pull_request"]
    )
    # No other repository (such as a project default) appears anywhere in any template.
    text = json.dumps(env.templates)
    assert text.count("repo:") == len(subjects)


@pytest.mark.parametrize(
    "wrong", ["sim2cloud", "owner/name/extra", "owner/*", "*/*", "owner/", "/name", "own er/name", "-owner/name"]
)
def test_a_malformed_repository_is_refused(wrong: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        load_settings("dev", {"github_repository": wrong})


def test_immutable_subject_claim_needs_the_repository() -> None:
    settings = load_settings(
        "prod", {"github_repository": "acme/sim2cloud", "github_subject_repository": "acme@1234/sim2cloud@5678"}
    )
    assert settings.ci.subject == "repo:acme@1234/sim2cloud@5678:environment:prod"
    assert settings.ci.pull_request_subject == "repo:acme@1234/sim2cloud@5678:pull_request"
    with pytest.raises(ValueError, match="github_repository"):
        load_settings("prod", {"github_subject_repository": "acme@1234/sim2cloud@5678"})


# --- the endpoint stack before and after a model exists --------------------------------------------------------
def _condition_value(template: dict[str, Any], name: str, parameters: dict[str, str]) -> bool:
    """Evaluate one of the template's conditions (Fn::Not / Fn::Equals over Ref parameters) as CloudFormation
    would for these parameter values (defaults where not given)."""

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            parameter = template["Parameters"][node["Ref"]]
            return parameters.get(node["Ref"], parameter.get("Default"))
        if isinstance(node, dict) and "Fn::Equals" in node:
            left, right = node["Fn::Equals"]
            return value(left) == value(right)
        if isinstance(node, dict) and "Fn::Not" in node:
            return not value(node["Fn::Not"][0])
        if isinstance(node, dict) and "Condition" in node:
            return _condition_value(template, node["Condition"], parameters)
        if isinstance(node, str):
            return node
        raise AssertionError(f"condition form not handled here: {node}")

    return bool(value(template["Conditions"][name]))


def _created(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource or _condition_value(template, resource["Condition"], parameters)
    }


def _references(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set()
        if "Ref" in node:
            found.add(str(node["Ref"]))
        if "Fn::GetAtt" in node:
            found.add(str(node["Fn::GetAtt"][0]))
        for child in node.values():
            found |= _references(child)
        return found
    if isinstance(node, list):
        return set().union(*(_references(child) for child in node)) if node else set()
    return set()


def test_endpoint_stack_without_a_model_holds_only_a_free_placeholder(env: Synthesized) -> None:
    template = env.templates["Endpoint"]
    created = _created(template, {})
    assert list(created) == [NO_MODEL_PLACEHOLDER]
    assert created[NO_MODEL_PLACEHOLDER]["Type"] == "AWS::CloudFormation::WaitConditionHandle"
    assert all(
        output.get("Condition") == HAS_MODEL_PACKAGE_CONDITION for output in template.get("Outputs", {}).values()
    )


def test_endpoint_stack_with_an_approved_package_creates_the_endpoint(env: Synthesized) -> None:
    template = env.templates["Endpoint"]
    created = _created(template, {"ModelPackageArn": PACKAGE})
    assert len(created) == len(template["Resources"])
    types = {resource["Type"] for resource in created.values()}
    assert {"AWS::SageMaker::Model", "AWS::SageMaker::Endpoint", "AWS::ApplicationAutoScaling::ScalableTarget"} <= types
    # Whichever set exists, nothing refers to a resource that does not (CloudFormation would refuse it).
    for parameters in ({}, {"ModelPackageArn": PACKAGE}):
        existing = _created(template, parameters)
        known = set(existing) | set(template.get("Parameters", {})) | {"AWS::AccountId", "AWS::Region"}
        for logical_id, resource in existing.items():
            dangling = {ref for ref in _references(resource) if not ref.startswith("AWS::") and ref not in known} | {
                dep for dep in resource.get("DependsOn", []) if dep not in existing
            }
            assert not dangling, f"{logical_id} refers to {dangling} which is not created for {parameters}"


def test_deploy_order_covers_every_stack_once(env: Synthesized) -> None:
    ordered = [lifecycle for wave in DEPLOY_ORDER for lifecycle in wave]
    assert sorted(ordered) == sorted(env.templates)
    # A stack reads outputs of, and depends on, stacks of its own wave (cdk orders those) or earlier ones.
    wave_of = {lifecycle: index for index, wave in enumerate(DEPLOY_ORDER) for lifecycle in wave}
    prefix = f"Sim2Cloud-{env.settings.name}-"
    manifest = json.loads((env.assembly / "manifest.json").read_text())
    for lifecycle, template in env.templates.items():
        nodes = [node for node in _walk(template) if isinstance(node, dict)]
        producers = {str(node["Fn::GetStackOutput"]["StackName"]) for node in nodes if "Fn::GetStackOutput" in node}
        producers |= {str(node["Fn::ImportValue"]).split(":")[0] for node in nodes if "Fn::ImportValue" in node}
        producers |= set(manifest["artifacts"][prefix + lifecycle].get("dependencies", []))
        for producer in producers:
            name = producer.removeprefix(prefix).split(".")[0]  # "<stack>.assets": the stack's own assets
            if not producer.startswith(prefix) or name == lifecycle:
                continue
            assert wave_of[name] <= wave_of[lifecycle], f"{lifecycle} needs {name}, of a later wave"


def _walk(node: Any) -> list[Any]:
    out = [node]
    if isinstance(node, dict):
        for child in node.values():
            out.extend(_walk(child))
    elif isinstance(node, list):
        for child in node:
            out.extend(_walk(child))
    return out
