"""The whole app synthesizes for every environment with cdk-nag and no AWS access; cdk-nag really gates it;
the Lambda bundles hold exactly the handler, the shared helpers and the contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import aws_sqs as sqs
from infra_assembly import Synthesized

from sim2cloud.lambda_bundle import (
    CONTRACT_FILES,
    FUNCTION_EXTRA_FILES,
    FUNCTION_VENDORED_PACKAGES,
    LAMBDA_ROOT,
    build_lambda_bundle,
)
from stacks.config import ENVIRONMENTS, load_settings
from stacks.pipeline import build_app

LIFECYCLES = ("Storage", "Monitoring", "Registries", "Render", "Training", "Endpoint", "CiAccess")
FUNCTIONS = ("render_launcher", "training_launcher", "model_gate")


def test_every_environment_synthesizes_all_stacks_without_lookups(env: Synthesized) -> None:
    manifest = json.loads((env.assembly / "manifest.json").read_text())
    assert not manifest.get("missing"), "a context lookup would need AWS credentials at synth"
    stacks = {
        name for name, artifact in manifest["artifacts"].items() if artifact["type"] == "aws:cloudformation:stack"
    }
    assert stacks == {f"Sim2Cloud-{env.settings.name}-{lifecycle}" for lifecycle in LIFECYCLES}
    for name in stacks:
        environment = manifest["artifacts"][name]["environment"]
        assert environment == f"aws://{env.settings.account}/{env.settings.region}"
    report = (
        json.loads((env.assembly / "validation-report.json").read_text())
        if (env.assembly / "validation-report.json").exists()
        else {}
    )
    assert all(plugin.get("conclusion") != "failure" for plugin in report.get("pluginReports", []))


def test_acknowledgements_name_the_finding_and_say_why(env: Synthesized) -> None:
    seen = 0
    for template in env.templates.values():
        for resource in template["Resources"].values():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                if rule["id"].startswith("CloudFormation-Validate::"):
                    continue  # acknowledged by CDK itself for its own CloudFormation-spec quirks
                assert rule["id"].startswith("AwsSolutions-") and len(rule["reason"]) > 20, rule
                seen += 1
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert skip["id"].startswith("CKV") and len(skip["comment"]) > 20, skip
    assert seen


def test_cdk_nag_fails_synth_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    app, stacks = build_app("dev", outdir=str(tmp_path), context={"account": "123456789012", "region": "eu-west-1"})
    sqs.Queue(stacks["Storage"], "PlainQueue")  # no KMS, no TLS policy, no DLQ
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_unknown_environment_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown environment 'staging'.*dev, prod"):
        load_settings("staging")
    assert ENVIRONMENTS == ("dev", "prod")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_lambda_bundle_holds_only_what_its_handler_imports(function: str, tmp_path: Path) -> None:
    staged = build_lambda_bundle(function, tmp_path)
    files = {path.relative_to(staged).as_posix() for path in staged.rglob("*") if path.is_file()}
    own = {f"{p.name}" for p in (LAMBDA_ROOT / function).glob("*.py")}
    shared = {f"shared/{p.name}" for p in (LAMBDA_ROOT / "shared").glob("*.py")} | {"shared/__init__.py"}
    assert "handler.py" in files
    extras = set(FUNCTION_EXTRA_FILES.get(function, ()))
    vendored = {path for path in files if path.split("/")[0] in FUNCTION_VENDORED_PACKAGES.get(function, ())}
    assert files == own | shared | {f"sim2cloud/{name}" for name in CONTRACT_FILES} | extras | vendored
    assert all(path.endswith(".py") for path in vendored)  # pure Python: no platform-specific accelerator
    # Deterministic: a rebuild gives byte-identical files (so the asset hash only moves with the code).
    again = build_lambda_bundle(function, tmp_path / "again")
    for name in files:
        assert (staged / name).read_bytes() == (again / name).read_bytes()


def test_missing_lambda_code_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no_such_function"):
        build_lambda_bundle("no_such_function", tmp_path)


def test_render_launcher_bundle_checks_batch_yaml_with_its_own_pure_python_yaml(tmp_path: Path) -> None:
    """The Lambda runtime has no PyYAML: the bundle's copy (no C accelerator) parses batch.yaml on its own."""
    import subprocess
    import sys

    staged = build_lambda_bundle("render_launcher", tmp_path)
    # boto3 comes from the runtime; everything batch.yaml's rules need must come from the bundle alone.
    script = (
        "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; sys.path.insert(0, '.')\n"
        "from sim2cloud.batch_config import BatchConfigProblem, parse_batch_config\n"
        "import yaml\n"
        "assert yaml.__file__.startswith(sys.path[0]) or not yaml.__file__.count('site-packages'), yaml.__file__\n"
        "assert not yaml.__with_libyaml__\n"
        "print(parse_batch_config('frames: 12\\ntraining: {epochs: 3}\\n')['frames'])\n"
        "try:\n    parse_batch_config('training: {epoch: 3}\\n')\n"
        "except BatchConfigProblem as err:\n    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=staged, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    frames, refusal = result.stdout.splitlines()
    assert frames == "12"
    assert "unknown hyperparameter 'epoch'" in refusal
