"""The Batch render entrypoints (``python -m isaac_jobs.cloud shard|finalize``) against a real moto S3 server."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import yaml

from isaac_jobs import cloud
from sim2cloud import contract
from sim2cloud.contract import Env

BATCH = "batch-a"
SMALL_RENDER = {"frames": 6, "width": 96, "height": 96, "objects_per_frame": [1, 2], "distractors_per_frame": [0, 1]}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """boto3 pointed at moto with dummy credentials, and the job settings shared by every job of a run."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", Env.ARRAY_INDEX, Env.FRAMES):
        monkeypatch.delenv(name, raising=False)
    bucket = f"data-{uuid.uuid4().hex[:12]}"
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "OPENBLAS_NUM_THREADS": "1",
        Env.DATA_BUCKET: bucket,
        Env.BATCH_ID: BATCH,
        Env.RUN_ID: "run-1",
        Env.SHARD_COUNT: "2",
        Env.RENDER_BACKEND: "gl",
        Env.WORK_DIR: str(tmp_path / "work"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket=bucket)
    return env


def upload_batch(s3: Any, bucket: str, tmp_path: Path) -> None:
    """Two classes of small meshes made with trimesh, one broken file, and a render config object."""
    import trimesh

    folder = tmp_path / "upload"
    folder.mkdir()
    trimesh.creation.box(extents=(0.2, 0.1, 0.15)).export(folder / "crate.stl")
    trimesh.creation.icosphere(subdivisions=2, radius=0.1).export(folder / "ball.ply")
    s3.upload_file(str(folder / "crate.stl"), bucket, contract.mesh_key(BATCH, "box", "crate.stl"))
    s3.upload_file(str(folder / "ball.ply"), bucket, contract.mesh_key(BATCH, "ball", "ball.ply"))
    s3.put_object(Bucket=bucket, Key=contract.mesh_key(BATCH, "ball", "broken.stl"), Body=b"solid broken\nnot stl")


def use_render_config(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, run: str = "run-1") -> None:
    key = contract.run_prefix(run) + "render.yaml"
    s3.put_object(Bucket=bucket, Key=key, Body=yaml.safe_dump(SMALL_RENDER).encode())
    monkeypatch.setenv(Env.RENDER_CONFIG_KEY, key)


def snapshot(s3: Any, bucket: str, prefix: str) -> dict[str, tuple[str, int]]:
    return {o["Key"]: (o["ETag"], o["Size"]) for o in cloud.iter_objects(s3, bucket, prefix)}


def recording_client(log: list[str]) -> Any:
    """A real boto3 S3 client that notes the key of every object write, in order."""
    client = boto3.client("s3")

    def note(params: dict[str, Any], **_: Any) -> None:
        log.append(params["Key"])

    client.meta.events.register("before-parameter-build.s3.PutObject", note)
    client.meta.events.register("before-parameter-build.s3.CreateMultipartUpload", note)
    return client


def test_two_shards_then_finalize(aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3")
    bucket = aws_env[Env.DATA_BUCKET]
    upload_batch(s3, bucket, tmp_path)
    use_render_config(s3, bucket, monkeypatch)
    meshes_before = snapshot(s3, bucket, contract.MESHES_PREFIX)

    # Shard 0 the way Batch runs it: settings from the environment, the index from AWS_BATCH_JOB_ARRAY_INDEX.
    monkeypatch.setenv(Env.ARRAY_INDEX, "0")
    assert cloud.main(["shard", "--no-progress"]) == 0
    # Shard 0 found no prepared batch: it converted the meshes and uploaded the USD assets, the plan last.
    assets = snapshot(s3, bucket, contract.asset_batch_prefix(BATCH))
    assert set(assets) == {
        contract.asset_key(BATCH, "ball", "ball"),
        contract.asset_key(BATCH, "box", "crate"),
        contract.asset_plan_key(BATCH),
    }

    # Shard 1 through an instrumented client, to see the order of the writes (it reuses the assets: none of
    # its writes is under assets/).
    writes: list[str] = []
    monkeypatch.setenv(Env.ARRAY_INDEX, "1")
    cloud.run_shard_job(cloud.ShardSettings.from_env(), s3=recording_client(writes), progress=False)
    marker_key = contract.shard_marker_key("run-1", 1)
    shard_prefix = contract.render_shard_prefix("run-1", 1)
    assert writes[-1] == marker_key
    assert writes.count(marker_key) == 1
    assert all(key.startswith(shard_prefix) for key in writes)

    for k in (0, 1):
        prefix = contract.render_shard_prefix("run-1", k)
        objects = snapshot(s3, bucket, prefix)
        marker = json.loads(s3.get_object(Bucket=bucket, Key=contract.shard_marker_key("run-1", k))["Body"].read())
        listed = {entry["key"]: entry["bytes"] for entry in marker[cloud.MARKER_FILES_KEY]}
        assert {prefix + key for key in listed} == set(objects) - {contract.shard_marker_key("run-1", k)}
        assert all(objects[prefix + key][1] == size for key, size in listed.items())
        assert marker["shard"] == k and marker["shards"] == 2
        assert marker["class_names"] == ["ball", "box"]
        assert len(marker["frames"]) == 3
        assert {src["key"] for src in marker[cloud.MARKER_SOURCES_KEY]} == set(meshes_before)
        assert any("broken.stl" in error["path"] for error in marker["mesh_errors"])
        assert marker["spec"]["width"] == 96

    # A Batch retry of a finished shard writes nothing.
    retry_writes: list[str] = []
    cloud.run_shard_job(cloud.ShardSettings.from_env(), s3=recording_client(retry_writes), progress=False)
    assert retry_writes == []

    finalize_writes: list[str] = []
    manifest = cloud.run_finalize_job(cloud.FinalizeSettings.from_env(), s3=recording_client(finalize_writes))
    manifest_key = contract.dataset_manifest_key("run-1")
    assert finalize_writes[-1] == manifest_key
    assert finalize_writes.count(manifest_key) == 1
    dataset = snapshot(s3, bucket, contract.dataset_prefix("run-1"))
    assert contract.dataset_prefix("run-1") + contract.DATA_YAML_NAME in dataset
    stored = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert stored == manifest
    assert stored["class_names"] == ["ball", "box"]
    assert stored["totals"]["images"] == 6
    # The manifest lists the batch's USD assets where they are on S3, each with the hash of the stored object.
    assert stored["assets"]["root"] == f"s3://{bucket}/{contract.asset_batch_prefix(BATCH)}"
    for asset in stored["assets"]["files"]:
        body = s3.get_object(Bucket=bucket, Key=contract.asset_batch_prefix(BATCH) + asset["path"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == asset["sha256"]
    assert sorted(a["path"] for a in stored["assets"]["files"]) == ["ball/ball.usd", "box/crate.usd"]
    # Lineage: the manifest names the exact uploads (key + ETag) the dataset was rendered from.
    assert stored["run"] == "run-1"
    assert {src["key"] for src in stored[cloud.MARKER_SOURCES_KEY]} == set(meshes_before)
    assert all(src.get("etag") for src in stored[cloud.MARKER_SOURCES_KEY])
    images = [k for k in dataset if f"/{contract.IMAGES_DIR}/" in k]
    labels = [k for k in dataset if f"/{contract.LABELS_DIR}/" in k]
    assert len(images) == len(labels) == 6
    assert {k.split("/")[-2] for k in images} == set(contract.SPLITS)

    # Finalize again (a retry): the dataset is already final, nothing is rewritten.
    again: list[str] = []
    assert cloud.run_finalize_job(cloud.FinalizeSettings.from_env(), s3=recording_client(again)) == manifest
    assert again == []
    assert cloud.main(["finalize", "--no-progress"]) == 0

    # What the user uploaded is exactly as it was.
    assert snapshot(s3, bucket, contract.MESHES_PREFIX) == meshes_before


def test_finalize_refuses_while_a_shard_is_missing(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = boto3.client("s3")
    bucket = aws_env[Env.DATA_BUCKET]
    upload_batch(s3, bucket, tmp_path)
    use_render_config(s3, bucket, monkeypatch)
    monkeypatch.setenv(Env.ARRAY_INDEX, "0")
    assert cloud.main(["shard", "--no-progress"]) == 0

    with pytest.raises(cloud.MissingShardsError) as err:
        cloud.run_finalize_job(cloud.FinalizeSettings.from_env(), progress=False)
    message = str(err.value)
    assert "1 of 2 shards are not complete" in message
    assert contract.shard_name(1) in message
    assert contract.shard_marker_key("run-1", 1) in message
    assert contract.shard_name(0) + " " not in message

    assert cloud.main(["finalize", "--no-progress"]) == 1
    assert contract.shard_name(1) in caplog.text
    assert snapshot(s3, bucket, contract.DATASETS_PREFIX) == {}


def test_a_partial_upload_without_marker_is_not_a_shard(aws_env: dict[str, str]) -> None:
    s3 = boto3.client("s3")
    bucket = aws_env[Env.DATA_BUCKET]
    prefix = contract.render_shard_prefix("run-1", 0)
    s3.put_object(Bucket=bucket, Key=prefix + "images/000000.jpg", Body=b"partial")
    assert cloud.missing_shards(s3, bucket, "run-1", 2) == [0, 1]


def test_a_missing_batch_fails_the_shard_job_clearly(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(Env.BATCH_ID, "no-such-batch")
    assert cloud.main(["shard", "--no-progress"]) == 1
    assert "meshes/no-such-batch/ holds no objects" in caplog.text
    assert snapshot(boto3.client("s3"), aws_env[Env.DATA_BUCKET], contract.RENDERS_PREFIX) == {}


def test_uploads_never_target_the_meshes_prefix(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="outside renders/, datasets/ or assets/"):
        cloud.upload_tree(None, "bucket", tmp_path, contract.mesh_batch_prefix("b"), last="a.txt")  # type: ignore[arg-type]


def test_stale_objects_of_an_earlier_attempt_are_replaced(aws_env: dict[str, str], tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    bucket = aws_env[Env.DATA_BUCKET]
    prefix = contract.render_shard_prefix("run-1", 0)
    s3.put_object(Bucket=bucket, Key=prefix + "images/999999.jpg", Body=b"left by a failed attempt")
    source = tmp_path / "shard"
    (source / "images").mkdir(parents=True)
    (source / "images" / "000000.jpg").write_bytes(np.zeros(4, np.uint8).tobytes())
    (source / contract.SHARD_COMPLETE_MARKER).write_text("{}")
    written = cloud.upload_tree(s3, bucket, source, prefix, last=contract.SHARD_COMPLETE_MARKER, progress=False)
    assert written == ["images/000000.jpg", contract.SHARD_COMPLETE_MARKER]
    assert set(snapshot(s3, bucket, prefix)) == {prefix + "images/000000.jpg", prefix + contract.SHARD_COMPLETE_MARKER}


def test_isaac_backend_without_isaac_sim_fails_with_the_reason(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = boto3.client("s3")
    upload_batch(s3, aws_env[Env.DATA_BUCKET], tmp_path)
    monkeypatch.setenv(Env.RENDER_BACKEND, "isaac")
    assert cloud.main(["shard", "--no-progress"]) == 1
    assert "needs NVIDIA Isaac Sim" in caplog.text
    assert snapshot(s3, aws_env[Env.DATA_BUCKET], contract.RENDERS_PREFIX) == {}


def _log_lines(text: str) -> list[dict[str, Any]]:
    assert "\r" not in text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_off_a_terminal_the_shard_job_logs_json_lines_with_progress(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CloudWatch gets JSON lines of the Lambdas' shape (progress on, as Batch runs it), never a redrawn bar."""
    s3 = boto3.client("s3")
    upload_batch(s3, aws_env[Env.DATA_BUCKET], tmp_path)
    monkeypatch.setenv(Env.RUN_ID, "run-json")
    monkeypatch.setenv(Env.ARRAY_INDEX, "0")
    assert cloud.main(["shard"]) == 0
    captured = capsys.readouterr()
    lines = _log_lines(captured.out) + _log_lines(captured.err)
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert {line["logger"] for line in lines} >= {"shard-job", "isaac_jobs.cloud"}
    assert any(line["message"].startswith("render shard-0000: 100%") for line in lines)  # the bar's last line


def test_a_training_typo_in_batch_yaml_fails_the_render_job_in_one_line(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3")
    bucket = aws_env[Env.DATA_BUCKET]
    upload_batch(s3, bucket, tmp_path)
    s3.put_object(Bucket=bucket, Key=contract.batch_config_key(BATCH), Body=b"training: {epoch: 3}\n")
    monkeypatch.setenv(Env.RUN_ID, "run-typo")
    monkeypatch.setenv(Env.ARRAY_INDEX, "0")
    try:
        assert cloud.main(["shard", "--no-progress"]) == 1
    finally:
        s3.delete_object(Bucket=bucket, Key=contract.batch_config_key(BATCH))
    lines = _log_lines(capsys.readouterr().out)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1 and "unknown hyperparameter 'epoch'" in errors[0]["message"]
    assert not any("Traceback" in line["message"] for line in lines)
