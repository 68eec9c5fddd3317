"""``sim2cloud submit`` and ``sim2cloud status`` end to end against a moto server set up as the local demo sets
it up (the stacks' resources, the real Lambda handlers from their bundles): a batch the render launcher would
refuse is refused before upload with every reason; an accepted batch is uploaded batch.yaml last under the run
id the launcher then gives it; status follows the run through render and training, and shows a launcher
rejection with its reasons."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim2cloud import cli, contract
from sim2cloud.local import events, runner

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "meshes"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto server holding the demo's resources, and the launchers as the demo invokes them."""
    root = tmp_path_factory.mktemp("submit-status")
    with runner.moto_server() as endpoint:
        import boto3

        # moto's state lives in the process, shared by every server it starts: begin and end empty, so this
        # module neither sees nor leaves another test's resources.
        _reset_moto(endpoint)
        resources = runner.create_resources(root / "work")
        environments = runner.function_environments(resources, frames_per_shard=4)
        functions = {
            name: runner.LocalFunction(
                name,
                runner.import_handler(runner.build_bundle(name, root / "bundles")),
                environments[name],
                root / "logs" / f"{name}.log",
            )
            for name in ("render_launcher", "training_launcher")
        }
        try:
            yield {"endpoint": endpoint, "resources": resources, "functions": functions, "s3": boto3.client("s3")}
        finally:
            _reset_moto(endpoint)


def _reset_moto(endpoint: str) -> None:
    """moto's documented reset endpoint; its Batch settings are set again after it."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    runner.configure_moto(endpoint)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _deliver_new_objects(local: dict[str, Any], before: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """Object Created events for what appeared since ``before``, delivered to ``function`` when a rule of the
    wiring targets it (the direct rules: batch.yaml -> render launcher, manifest -> training launcher)."""
    resources = local["resources"]
    after = runner.bucket_snapshot(local["s3"], resources.bucket)
    rules = runner.local_rules(resources, lambda target: target)  # each rule's target: the wiring's name
    outcomes: list[dict[str, Any]] = []
    for event in runner.created_events(before, after, resources.bucket, resources.account):
        if any(rule.target == function for rule in events.matching_rules(rules, event)):
            outcomes += local["functions"][function].invoke(event)["outcomes"]
    return outcomes


def _batch(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    for class_name in ("mug", "can"):
        (folder / class_name).mkdir(parents=True)
        (mesh,) = sorted((SAMPLES / class_name).iterdir())[:1]
        shutil.copy(mesh, folder / class_name / mesh.name)
    (folder / contract.BATCH_CONFIG_NAME).write_text("frames: 8\n")
    return folder


def test_a_batch_the_launcher_would_refuse_is_not_uploaded(
    local: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _batch(tmp_path, "refused")
    (folder / "mug" / "empty.obj").write_bytes(b"")
    (folder / "mug" / "notes.txt").write_text("not a mesh")
    (folder / contract.BATCH_CONFIG_NAME).write_text("frames: '8'\ntraining: {epoch: 3}\n")
    code, output = _cli(capsys, "submit", str(folder), "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 2
    assert "nothing was uploaded" in output
    assert re.search(r"empty\.obj: file is empty", output)
    assert re.search(r"notes\.txt: extension '\.txt' is not supported", output)
    assert re.search(r"batch\.yaml: batch\.yaml: frames must be a positive integer, not '8'", output)
    assert "unknown hyperparameter 'epoch'" in output  # the training job's own table, before any upload
    listed = local["s3"].list_objects_v2(Bucket=local["resources"].bucket, Prefix=contract.mesh_batch_prefix("refused"))
    assert "Contents" not in listed


def test_submitted_batch_runs_under_the_printed_id_and_status_follows_it(
    local: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, bucket = local["s3"], local["resources"].bucket
    folder = _batch(tmp_path, "accepted")
    before = runner.bucket_snapshot(s3, bucket)
    code, output = _cli(capsys, "submit", str(folder), "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 0, output
    (run,) = re.findall(r"^run (\S+)$", output, re.MULTILINE)
    # batch.yaml is the last upload (its event closes the batch): printed last and written last.
    uploads = re.findall(r"\[\d+/\d+\] (\S+)", output)
    assert uploads[-1] == contract.batch_config_key("accepted") and len(uploads) == 3
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=contract.mesh_batch_prefix("accepted"))["Contents"]
    times = {item["Key"]: item["LastModified"] for item in listed}
    assert times[contract.batch_config_key("accepted")] == max(times.values())

    # The real render launcher, given the upload's events, submits under exactly that run id.
    (outcome,) = _deliver_new_objects(local, before, "render_launcher")
    assert outcome["action"] == "submitted" and outcome["run"] == run

    code, output = _cli(capsys, "status", run, "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 0, output
    assert f"run {run} (batch accepted)" in output
    assert re.search(rf"render .*Batch job {outcome['render_job_id']}", output)
    assert re.search(r"training +not started", output)

    # The finalize job's manifest starts the training launcher: status now shows the training job.
    before = runner.bucket_snapshot(s3, bucket)
    s3.put_object(Bucket=bucket, Key=contract.dataset_manifest_key(run), Body=json.dumps({"run": run}).encode())
    (created,) = _deliver_new_objects(local, before, "training_launcher")
    assert created["action"] == "created"
    code, output = _cli(capsys, "status", run, "--env", "local", "--aws-endpoint", local["endpoint"], "--json")
    assert code == 0, output
    (report,) = json.loads(output)
    stages = {stage["name"]: stage for stage in report["stages"]}
    assert list(stages) == ["render", "finalize", "training", "gate", "package"]
    assert stages["finalize"]["state"] == "done" and f"datasets/{run}/" in stages["finalize"]["detail"]
    assert created["training_job_name"] in stages["training"]["detail"]
    assert stages["training"]["state"] not in ("not started", "failed")
    assert stages["package"]["state"] == "not started" and report["report"] is None

    # Without a run: the newest runs, this one among them.
    code, output = _cli(capsys, "status", "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 0 and f"run {run} " in output


def test_status_shows_a_launcher_rejection_with_its_reasons(
    local: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch uploaded without submit (e.g. by the console) that the launcher refuses."""
    s3, bucket = local["s3"], local["resources"].bucket
    before = runner.bucket_snapshot(s3, bucket)
    s3.put_object(Bucket=bucket, Key=contract.mesh_key("console", "mug", "splat.ply"), Body=b"")
    s3.put_object(Bucket=bucket, Key=contract.batch_config_key("console"), Body=b"frames: 8\n")
    (outcome,) = _deliver_new_objects(local, before, "render_launcher")
    assert outcome["action"] == "rejected"
    code, output = _cli(capsys, "status", outcome["run"], "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 3
    assert re.search(r"render +rejected .*no valid mesh", output)
    assert "meshes/console/mug/splat.ply: file is empty (0 bytes)" in output


def test_status_of_an_unknown_run_or_environment_says_so(
    local: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _cli(capsys, "status", "no-such-run", "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 1 and "no run 'no-such-run'" in output
    code, output = _cli(capsys, "status", "--env", "local")
    assert code == 1 and "--aws-endpoint" in output


def test_a_deployed_environment_is_found_from_its_stack_outputs(
    local: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--env <name>`` reads the bucket, the package group and the render launcher from the stacks' outputs, and
    judges with the limits the deployed launcher has (here a 100-byte mesh limit in its environment)."""
    import io
    import zipfile

    import boto3

    resources, name = local["resources"], "staging"
    role = boto3.client("iam").create_role(RoleName="staging-launcher", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    boto3.client("lambda").create_function(
        FunctionName="sim2cloud-staging-render-launcher",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": bundle.getvalue()},
        Environment={"Variables": {"SIM2CLOUD_MAX_MESH_BYTES": "100"}},
    )
    outputs = {
        "Storage": {contract.DATA_BUCKET_OUTPUT: resources.bucket},
        "Render": {contract.RENDER_LAUNCHER_OUTPUT: "sim2cloud-staging-render-launcher"},
        "Training": {contract.MODEL_PACKAGE_GROUP_OUTPUT: resources.model_package_group},
    }
    for lifecycle, values in outputs.items():
        template = {
            "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {key: {"Value": value} for key, value in values.items()},
        }
        boto3.client("cloudformation").create_stack(
            StackName=contract.stack_name(name, lifecycle), TemplateBody=json.dumps(template)
        )
    folder = _batch(tmp_path, "limited")
    code, output = _cli(capsys, "submit", str(folder), "--env", name, "--aws-endpoint", local["endpoint"])
    assert code == 2, output
    assert "over the limit of 100 bytes (SIM2CLOUD_MAX_MESH_BYTES)" in output
    code, output = _cli(capsys, "status", "--env", "nowhere", "--aws-endpoint", local["endpoint"])
    assert code == 1 and "Sim2Cloud-nowhere-Storage" in output


def test_a_batch_named_as_users_write_it_is_submitted_and_followed(
    local: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Folder 'kitchen set 2' with class 'coffee mug': uploaded under those names, run id derived from them."""
    s3, bucket = local["s3"], local["resources"].bucket
    folder = _batch(tmp_path, "kitchen set 2")
    (folder / "mug").rename(folder / "coffee mug")
    before = runner.bucket_snapshot(s3, bucket)
    code, output = _cli(capsys, "submit", str(folder), "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 0, output
    (run,) = re.findall(r"^run (\S+)$", output, re.MULTILINE)
    assert run.startswith("kitchen-set-2-") and contract.check_id(run) == run
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix="meshes/kitchen set 2/")["Contents"]]
    assert any(key.startswith("meshes/kitchen set 2/coffee mug/") for key in keys)
    (outcome,) = _deliver_new_objects(local, before, "render_launcher")
    assert outcome["action"] == "submitted" and outcome["run"] == run
    code, output = _cli(capsys, "status", run, "--env", "local", "--aws-endpoint", local["endpoint"])
    assert code == 0, output
    assert f"run {run} (batch kitchen set 2)" in output
