"""Render launcher against moto: batching, validation/quarantine, idempotency, key encodings, failures."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from lambda_test_support import (
    BUCKET,
    REGION,
    LambdaContext,
    eventbridge_object_created,
    put,
    s3_notification,
    sqs_event,
)

from sim2cloud import contract
from sim2cloud.contract import Env

QUEUE = "sim2cloud-render-queue"
FRAMES_PER_SHARD = 4
DEFAULT_FRAMES = 10


@pytest.fixture
def batch(aws: None) -> Any:
    """A Batch job queue and the render/finalize job definitions (moto's Docker-free Batch)."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = boto3.client("batch", region_name=REGION)
    env = client.create_compute_environment(
        computeEnvironmentName="render-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    client.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )
    for name in ("sim2cloud-render", "sim2cloud-finalize"):
        client.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={"image": "render:latest", "vcpus": 1, "memory": 512, "command": ["true"]},
        )
    return client


@pytest.fixture
def launcher_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def apply(quiet: int = 0, max_bytes: int = 1_000_000, queue: str = QUEUE) -> None:
        values = {
            Env.DATA_BUCKET: BUCKET,
            Env.JOB_QUEUE: queue,
            Env.RENDER_JOB_DEFINITION: "sim2cloud-render",
            Env.FINALIZE_JOB_DEFINITION: "sim2cloud-finalize",
            Env.FRAMES_PER_SHARD: str(FRAMES_PER_SHARD),
            Env.DEFAULT_FRAMES: str(DEFAULT_FRAMES),
            Env.QUIET_PERIOD_SECONDS: str(quiet),
            Env.MAX_MESH_BYTES: str(max_bytes),
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    apply()
    return apply


@pytest.fixture
def launcher(
    s3: Any, batch: Any, launcher_env: Callable[..., None], load_handler: Callable[[str], ModuleType]
) -> Callable[..., dict[str, Any]]:
    """Invoke a freshly loaded handler (so environment changes made by the test take effect)."""

    def invoke(event: dict[str, Any], **env: Any) -> dict[str, Any]:
        if env:
            launcher_env(**env)
        module = load_handler("render_launcher")
        return module.handler(event, LambdaContext("render-launcher"))

    return invoke


def submitted_jobs(batch: Any) -> list[dict[str, Any]]:
    """Parent jobs (array children, ``<id>:<index>``, left out) with their details."""
    summaries = batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["*"]}])["jobSummaryList"]
    ids = [s["jobId"] for s in summaries if ":" not in s["jobId"]]
    return batch.describe_jobs(jobs=ids)["jobs"] if ids else []


def environment_of(job: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in job["container"]["environment"]}


def status_of(s3: Any, run: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=contract.run_status_key(run))["Body"].read())


def quarantine_reason(s3: Any, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=contract.quarantine_reason_key(key))["Body"].read())


MESH = b"solid cube\nendsolid cube\n"


def test_quiet_batch_becomes_one_array_job_plus_finalize(s3: Any, batch: Any, launcher: Any) -> None:
    events = [
        put(s3, "meshes/drop1/mug/mug.obj", MESH),
        put(s3, "meshes/drop1/mug/mug.mtl", b"newmtl a\n"),
        put(s3, "meshes/drop1/box/box.stl", MESH),
    ]
    result = launcher(sqs_event(*events))

    assert result["batchItemFailures"] == []
    actions = sorted(outcome["action"] for outcome in result["outcomes"])
    assert actions == ["duplicate", "duplicate", "submitted"]
    jobs = {job["jobName"].split("-")[1]: job for job in submitted_jobs(batch)}
    assert set(jobs) == {"render", "finalize"}
    shards = math.ceil(DEFAULT_FRAMES / FRAMES_PER_SHARD)
    assert jobs["render"]["arrayProperties"]["size"] == shards
    assert jobs["finalize"]["dependsOn"] == [{"jobId": jobs["render"]["jobId"]}]
    render_env = environment_of(jobs["render"])
    run = render_env[Env.RUN_ID]
    assert run.startswith("drop1-")
    assert render_env[Env.DATA_BUCKET] == BUCKET
    assert render_env[Env.BATCH_ID] == "drop1"
    assert render_env[Env.SHARD_COUNT] == str(shards)
    assert render_env[Env.FRAMES] == str(DEFAULT_FRAMES)
    assert Env.RENDER_CONFIG_KEY not in render_env
    assert environment_of(jobs["finalize"])[Env.RUN_ID] == run
    status = status_of(s3, run)
    assert status["state"] == "submitted"
    assert status["render_job_id"] == jobs["render"]["jobId"]
    assert status["finalize_job_id"] == jobs["finalize"]["jobId"]
    assert sorted(status["meshes"]) == ["meshes/drop1/box/box.stl", "meshes/drop1/mug/mug.obj"]


def test_duplicate_and_redelivered_events_submit_once(s3: Any, batch: Any, launcher: Any) -> None:
    event = put(s3, "meshes/dup/mug/mug.glb", MESH)
    first = launcher(sqs_event(event))
    again = launcher(sqs_event(event, event))
    assert [o["action"] for o in first["outcomes"]] == ["submitted"]
    assert [o["action"] for o in again["outcomes"]] == ["duplicate", "duplicate"]
    assert len(submitted_jobs(batch)) == 2  # one render + one finalize


def test_batch_file_submits_at_once_and_delayed_events_do_not_resubmit(s3: Any, batch: Any, launcher: Any) -> None:
    mesh_event = put(s3, "meshes/b2/mug/mug.ply", MESH)
    config_event = put(s3, "meshes/b2/batch.yaml", b"# render settings\nframes: 9  # total\nclasses: {mug: mug}\n")

    # Within the quiet period, the delayed event of the mesh waits: more files may come.
    waiting = launcher(sqs_event(mesh_event), quiet=3600)
    assert [o["action"] for o in waiting["outcomes"]] == ["waiting"]
    assert submitted_jobs(batch) == []

    # batch.yaml (EventBridge, no delay) says the batch is complete: submit now, frames from the file.
    direct = launcher(config_event, quiet=3600)
    assert [o["action"] for o in direct["outcomes"]] == ["submitted"]
    render = next(job for job in submitted_jobs(batch) if "render" in job["jobName"])
    assert environment_of(render)[Env.FRAMES] == "9"
    assert render["arrayProperties"]["size"] == math.ceil(9 / FRAMES_PER_SHARD)
    # The shard job reads batch.yaml from the batch it downloads; no separate scene-spec file is passed.
    assert Env.RENDER_CONFIG_KEY not in environment_of(render)

    # Later the quiet period passes: the delayed events of the same content find the submission.
    late = launcher(sqs_event(config_event, mesh_event), quiet=0)
    assert [o["action"] for o in late["outcomes"]] == ["duplicate", "duplicate"]
    assert len(submitted_jobs(batch)) == 2


def test_new_content_after_a_submission_becomes_a_new_run(s3: Any, batch: Any, launcher: Any) -> None:
    first = launcher(sqs_event(put(s3, "meshes/grow/mug/a.obj", MESH)))
    second = launcher(sqs_event(put(s3, "meshes/grow/mug/b.obj", MESH)))
    runs = {first["outcomes"][0]["run"], second["outcomes"][0]["run"]}
    assert len(runs) == 2
    assert len(submitted_jobs(batch)) == 4


def test_changed_content_under_the_same_names_becomes_a_new_run(s3: Any, batch: Any, launcher: Any) -> None:
    """The run id covers each file's ETag, not only its key: a re-upload of edited meshes under the same
    names is new content and renders again (while an identical re-upload stays a duplicate)."""
    first = launcher(sqs_event(put(s3, "meshes/edit/mug/mug.obj", MESH)))
    same = launcher(sqs_event(put(s3, "meshes/edit/mug/mug.obj", MESH)))
    edited = launcher(sqs_event(put(s3, "meshes/edit/mug/mug.obj", MESH + b"# edited\n")))
    assert [o["action"] for o in first["outcomes"]] == ["submitted"]
    assert [o["action"] for o in same["outcomes"]] == ["duplicate"]
    assert [o["action"] for o in edited["outcomes"]] == ["submitted"]
    assert edited["outcomes"][0]["run"] != first["outcomes"][0]["run"]
    assert len(submitted_jobs(batch)) == 4
    etag = s3.head_object(Bucket=BUCKET, Key="meshes/edit/mug/mug.obj")["ETag"].strip('"')
    assert status_of(s3, edited["outcomes"][0]["run"])["content"] == [{"key": "meshes/edit/mug/mug.obj", "etag": etag}]


def test_invalid_files_are_quarantined_and_the_rest_is_submitted(s3: Any, batch: Any, launcher: Any) -> None:
    uploads = {
        "meshes/mixed/mug/good.glb": MESH,
        "meshes/mixed/mug/empty.obj": b"",
        "meshes/mixed/mug/notes.txt": b"hello",
        "meshes/mixed/mug/huge.stl": b"x" * 2000,
        "meshes/mixed/too/deep/x.obj": MESH,
        "meshes/mixed/loose.obj": MESH,
    }
    events = [put(s3, key, body) for key, body in uploads.items()]
    etags = {key: s3.head_object(Bucket=BUCKET, Key=key)["ETag"] for key in uploads}

    result = launcher(sqs_event(*events), max_bytes=1000)

    assert result["batchItemFailures"] == []
    reasons = {key: quarantine_reason(s3, key)["reason"] for key in uploads if key != "meshes/mixed/mug/good.glb"}
    assert "empty" in reasons["meshes/mixed/mug/empty.obj"]
    assert "'.txt' is not supported" in reasons["meshes/mixed/mug/notes.txt"]
    assert "2000 bytes, over the limit of 1000" in reasons["meshes/mixed/mug/huge.stl"]
    assert "does not follow" in reasons["meshes/mixed/too/deep/x.obj"]
    assert "does not follow" in reasons["meshes/mixed/loose.obj"]
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key=contract.quarantine_reason_key("meshes/mixed/mug/good.glb"))
    # Every upload is still where the user put it, unchanged.
    for key, body in uploads.items():
        stored = s3.get_object(Bucket=BUCKET, Key=key)
        assert stored["ETag"] == etags[key]
        assert stored["Body"].read() == body
    jobs = submitted_jobs(batch)
    assert len(jobs) == 2
    run = environment_of(jobs[0])[Env.RUN_ID]
    assert status_of(s3, run)["meshes"] == ["meshes/mixed/mug/good.glb"]
    assert len(status_of(s3, run)["rejected"]) == 5


def test_quarantine_reasons_identify_the_exact_upload(s3: Any, batch: Any, launcher: Any) -> None:
    """Each reason names the key, ETag and size of the bytes it judged (a later upload under the same key is
    a different file), also for a file dropped directly under meshes/, outside any batch folder."""
    uploads = {"meshes/loose.obj": MESH, "meshes/rec/mug/notes.txt": b"hello", "meshes/rec/mug/mug.obj": MESH}
    events = [put(s3, key, body) for key, body in uploads.items()]
    result = launcher(sqs_event(*events))
    assert result["batchItemFailures"] == []
    for key in ("meshes/loose.obj", "meshes/rec/mug/notes.txt"):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        record = quarantine_reason(s3, key)
        assert record["key"] == key
        assert record["etag"] == head["ETag"].strip('"')
        assert record["size"] == len(uploads[key]) == head["ContentLength"]
        assert record["rejected_by"] == "render-launcher"
    assert "not inside a batch folder" in quarantine_reason(s3, "meshes/loose.obj")["reason"]
    assert quarantine_reason(s3, "meshes/loose.obj")["batch"] is None
    notes = quarantine_reason(s3, "meshes/rec/mug/notes.txt")
    assert notes["batch"] == "rec" and notes["run"].startswith("rec-")
    assert s3.get_object(Bucket=BUCKET, Key="meshes/loose.obj")["Body"].read() == MESH  # never moved or deleted


def test_batch_without_a_valid_mesh_submits_nothing_and_records_why(s3: Any, batch: Any, launcher: Any) -> None:
    events = [put(s3, "meshes/bad/mug/readme.md", b"x"), put(s3, "meshes/bad/mug/tex.png", b"png")]
    result = launcher(sqs_event(*events))
    assert {o["action"] for o in result["outcomes"]} == {"rejected", "duplicate"}
    assert submitted_jobs(batch) == []
    assert "not supported" in quarantine_reason(s3, "meshes/bad/mug/readme.md")["reason"]
    run = next(o["run"] for o in result["outcomes"] if o["action"] == "rejected")
    status = status_of(s3, run)
    assert status["state"] == "rejected"
    assert "no valid mesh" in status["reason"]


def test_invalid_batch_file_stops_the_batch_with_a_reason(s3: Any, batch: Any, launcher: Any) -> None:
    put(s3, "meshes/cfg/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/cfg/batch.yaml", b"frames: lots\n"))
    assert result["outcomes"][0]["action"] == "rejected"
    assert submitted_jobs(batch) == []
    reason = quarantine_reason(s3, "meshes/cfg/batch.yaml")["reason"]
    assert reason == "batch.yaml: frames must be a positive integer, not 'lots'"


def test_an_oversized_batch_file_is_refused_unread(s3: Any, batch: Any, launcher: Any) -> None:
    put(s3, "meshes/big/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/big/batch.yaml", b"# padding\n" * 110_000), max_bytes=10_000_000)
    assert result["outcomes"][0]["action"] == "rejected"
    assert "over the limit of 1048576" in quarantine_reason(s3, "meshes/big/batch.yaml")["reason"]
    assert submitted_jobs(batch) == []


def test_a_batch_file_over_the_file_limit_stops_the_batch_and_an_empty_one_is_all_defaults(
    s3: Any, batch: Any, launcher: Any
) -> None:
    put(s3, "meshes/huge/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/huge/batch.yaml", b"frames: 4\n" + b"#" * 2000), max_bytes=1000)
    assert result["outcomes"][0]["action"] == "rejected"  # its settings are unknown: nothing is rendered
    assert "over the limit of 1000 bytes" in quarantine_reason(s3, "meshes/huge/batch.yaml")["reason"]
    put(s3, "meshes/plain/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/plain/batch.yaml", b""))
    assert result["outcomes"][0]["action"] == "submitted"


def test_training_typo_in_batch_file_is_quarantined_before_any_job(s3: Any, batch: Any, launcher: Any) -> None:
    """`--hp epoch=3` (or a wrong type) fails in the launcher with the training job's own message: no GPU hour."""
    put(s3, "meshes/typo/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/typo/batch.yaml", b"frames: 8\ntraining: {epoch: 3, imgsz: big}\nrender_:\n"))
    assert result["outcomes"][0]["action"] == "rejected"
    assert submitted_jobs(batch) == []
    record = quarantine_reason(s3, "meshes/typo/batch.yaml")
    assert record["rejected_by"] == "render-launcher"
    assert "unknown key 'render_'" in record["reason"]
    assert "unknown hyperparameter 'epoch'" in record["reason"]
    assert "hyperparameter imgsz='big'" in record["reason"]
    assert "batch.yaml is invalid" in status_of(s3, result["outcomes"][0]["run"])["reason"]


KEYS_THAT_NEED_CARE = [
    "meshes/odd/mug/cup 1+2:ü%20ß.glb",
    "meshes/odd/mug/a+b=c&d.obj",
    "meshes/odd/mug/日本 語.stl",
    "meshes/odd/mug/100%.ply",
]


@pytest.mark.parametrize("key", KEYS_THAT_NEED_CARE)
@pytest.mark.parametrize("shape", ["sqs+eventbridge", "s3-notification", "sqs+s3-notification"])
def test_every_delivery_path_finds_the_stored_object(s3: Any, batch: Any, launcher: Any, key: str, shape: str) -> None:
    response = s3.put_object(Bucket=BUCKET, Key=key, Body=MESH)
    etag = response["ETag"].strip('"')
    if shape == "sqs+eventbridge":
        event = sqs_event(eventbridge_object_created(BUCKET, key, size=len(MESH), etag=etag))
    elif shape == "s3-notification":
        event = s3_notification(BUCKET, key, size=len(MESH), etag=etag)
        assert event["Records"][0]["s3"]["object"]["key"] != key  # it really is encoded
    else:
        event = sqs_event(s3_notification(BUCKET, key, size=len(MESH), etag=etag))

    result = launcher(event)

    assert result.get("batchItemFailures", []) == []
    (outcome,) = result["outcomes"]
    assert outcome["action"] == "submitted", outcome
    assert status_of(s3, outcome["run"])["meshes"] == [key]


@pytest.mark.parametrize("shape", ["eventbridge", "sqs+s3-notification"])
def test_names_as_users_write_them_reach_the_render_job(s3: Any, batch: Any, launcher: Any, shape: str) -> None:
    """`kitchen set 2` / `coffee mug`: the job gets the names as written; AWS gets a derived id (job name, run)."""
    mesh_key = "meshes/kitchen set 2/coffee mug/mug 1.obj"
    put(s3, mesh_key, MESH)
    config_key = "meshes/kitchen set 2/batch.yaml"
    response = s3.put_object(Bucket=BUCKET, Key=config_key, Body=b"frames: 4\nclasses: {coffee mug: coffee mug}\n")
    etag = response["ETag"].strip('"')
    size = len(b"frames: 4\nclasses: {coffee mug: coffee mug}\n")
    if shape == "eventbridge":
        event = eventbridge_object_created(BUCKET, config_key, size=size, etag=etag)
    else:
        event = sqs_event(s3_notification(BUCKET, config_key, size=size, etag=etag))
        assert "kitchen+set+2" in json.dumps(event)  # the key really arrives form-encoded
    (outcome,) = launcher(event)["outcomes"]
    assert outcome["action"] == "submitted", outcome
    assert outcome["batch"] == "kitchen set 2"
    run = outcome["run"]
    assert contract.check_id(run) == run and run.startswith("kitchen-set-2-")
    assert status_of(s3, run)["batch"] == "kitchen set 2"
    assert status_of(s3, run)["meshes"] == [mesh_key]
    render = next(job for job in submitted_jobs(batch) if "render" in job["jobName"])
    assert environment_of(render)[Env.BATCH_ID] == "kitchen set 2"
    assert environment_of(render)[Env.RUN_ID] == run
    assert " " not in render["jobName"]


def test_names_that_cannot_be_carried_are_refused_with_the_reason(s3: Any, batch: Any, launcher: Any) -> None:
    put(s3, "meshes/names/coffee mug/mug.obj", MESH)
    put(s3, "meshes/names/bad\tclass/mug.obj", MESH)
    put(s3, f"meshes/names/{'x' * 129}/mug.obj", MESH)
    result = launcher(put(s3, "meshes/names/batch.yaml", b"frames: 4\n"))
    assert result["outcomes"][0]["action"] == "submitted"
    assert "holds a control character ('\\t')" in quarantine_reason(s3, "meshes/names/bad\tclass/mug.obj")["reason"]
    assert "over the limit of 128" in quarantine_reason(s3, f"meshes/names/{'x' * 129}/mug.obj")["reason"]
    assert status_of(s3, result["outcomes"][0]["run"])["meshes"] == ["meshes/names/coffee mug/mug.obj"]


def test_a_batch_name_that_cannot_be_carried_quarantines_every_file(s3: Any, batch: Any, launcher: Any) -> None:
    put(s3, "meshes/ kitchen/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/ kitchen/batch.yaml", b"frames: 4\n"))
    assert result["outcomes"][0]["action"] == "rejected"
    reason = quarantine_reason(s3, "meshes/ kitchen/mug/mug.obj")["reason"]
    assert reason == "invalid batch folder name ' kitchen': it starts or ends with a space"
    assert submitted_jobs(batch) == []


def test_placeholders_and_other_prefixes_are_ignored(s3: Any, batch: Any, launcher: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="meshes/new-folder/", Body=b"")
    placeholder = eventbridge_object_created(
        BUCKET, "meshes/new-folder/", size=0, etag="d41d8cd98f00b204e9800998ecf8427e"
    )
    elsewhere = put(s3, "renders/run/shard-0000/x.png", b"png")
    result = launcher(sqs_event(placeholder, elsewhere))
    assert [o["action"] for o in result["outcomes"]] == ["ignored", "ignored"]
    assert result["batchItemFailures"] == []
    assert submitted_jobs(batch) == []


def test_failed_submission_is_retried_by_sqs_and_then_succeeds(s3: Any, batch: Any, launcher: Any) -> None:
    event = sqs_event(put(s3, "meshes/retry/mug/mug.obj", MESH))
    failed = launcher(event, queue="no-such-queue")
    assert failed["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    # The claim was released, so the redelivered message submits.
    retried = launcher(event, queue=QUEUE)
    assert retried["batchItemFailures"] == []
    assert [o["action"] for o in retried["outcomes"]] == ["submitted"]
    assert len(submitted_jobs(batch)) == 2


def test_a_fresh_claim_of_another_invocation_makes_the_record_retry(s3: Any, batch: Any, launcher: Any) -> None:
    event = sqs_event(put(s3, "meshes/busy/mug/mug.obj", MESH))
    first = launcher(event)
    run = first["outcomes"][0]["run"]
    # Simulate an owner that claimed and has not finished yet.
    status = status_of(s3, run)
    s3.put_object(
        Bucket=BUCKET,
        Key=contract.run_status_key(run),
        Body=json.dumps({**status, "state": "claimed"}).encode(),
    )
    busy = launcher(event)
    assert busy["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert len(submitted_jobs(batch)) == 2


def test_an_abandoned_claim_is_taken_over_and_resumed(s3: Any, batch: Any, load_handler: Any) -> None:
    module = load_handler("render_launcher")
    logic = module.RenderLauncher
    settings = module.RenderLauncherSettings(
        bucket=BUCKET,
        job_queue=QUEUE,
        render_job_definition="sim2cloud-render",
        finalize_job_definition="sim2cloud-finalize",
        frames_per_shard=FRAMES_PER_SHARD,
        default_frames=DEFAULT_FRAMES,
        quiet_period_seconds=0,
        max_mesh_bytes=1_000_000,
    )
    launcher = logic(settings, s3, batch)
    s3.put_object(Bucket=BUCKET, Key="meshes/stale/mug/mug.obj", Body=MESH)
    now = datetime.now(UTC)
    done = launcher.evaluate_batch("stale", now, immediate=False)
    render_id = done.render_job_id
    # Pretend the owner crashed after the render job: only the render id is recorded.
    status = status_of(s3, done.run)
    partial = {k: v for k, v in status.items() if k != "finalize_job_id"} | {"state": "render_submitted"}
    s3.put_object(Bucket=BUCKET, Key=contract.run_status_key(done.run), Body=json.dumps(partial).encode())
    for job in submitted_jobs(batch):
        if "finalize" in job["jobName"]:
            batch.terminate_job(jobId=job["jobId"], reason="test: lost")

    later = now + timedelta(seconds=module.logic.CLAIM_TIMEOUT_SECONDS + 60)
    resumed = launcher.evaluate_batch("stale", later, immediate=False)

    assert resumed.action == "submitted"
    assert resumed.render_job_id == render_id  # the render job was not submitted again
    renders = [job for job in submitted_jobs(batch) if "render" in job["jobName"]]
    assert len(renders) == 1
    assert status_of(s3, done.run)["finalize_job_id"] == resumed.finalize_job_id


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch, load_handler: Any) -> None:
    for name in (Env.DATA_BUCKET, Env.JOB_QUEUE, Env.RENDER_JOB_DEFINITION, Env.FINALIZE_JOB_DEFINITION):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(Env.FRAMES_PER_SHARD, "zero")
    module = load_handler("render_launcher")
    with pytest.raises(ValueError, match=Env.JOB_QUEUE) as err:
        module.handler({"Records": []}, LambdaContext("render-launcher"))
    assert Env.DATA_BUCKET in str(err.value)
    assert f"{Env.FRAMES_PER_SHARD}='zero' is not an integer" in str(err.value)


def test_frames_from_batch_config(load_handler: Any) -> None:
    logic = load_handler("render_launcher").logic
    assert logic.frames_from_batch_config("classes: {a: b}\nframes: 120\n") == 120
    assert logic.frames_from_batch_config("frames: 64 # a comment\n") == 64
    assert logic.frames_from_batch_config("render:\n  width: 5\n") is None
    with pytest.raises(logic.BatchConfigError, match="frames must be a positive integer, not 0"):
        logic.frames_from_batch_config("frames: 0\n")
    with pytest.raises(logic.BatchConfigError, match="frames must be a positive integer, not '64'"):
        logic.frames_from_batch_config("frames: '64'\n")
    with pytest.raises(logic.BatchConfigError, match="not under render"):
        logic.frames_from_batch_config("render:\n  frames: 5\n")


@pytest.mark.parametrize(
    "text",
    [
        "frames: 120\n",
        "classes: {a: b}\nframes: 7 # seven\n",
        "render:\n  width: 320\n",
        "frames: '64'\n",
        "frames: -3\n",
        "training: {epoch: 3}\n",
        "training: {epochs: three}\n",
        "training: {imgsz: 100}\n",
        "training: {epochs: 3, imgsz: 96}\nframes: 12\n",
        "colour: red\n",
        "classes: {cups: coffee mug}\n",
        "classes: {cups: 'a/b'}\n",
        "scale: -1\n",
        "up_axis: x\n",
        "usd_labels: maybe\n",
        "render: {frames: 5}\n",
        "frames: [1\n",
        "- a list\n",
    ],
)
def test_launcher_and_render_job_read_the_same_frames(load_handler: Any, tmp_path: Path, text: str) -> None:
    """The launcher sizes the Batch job from batch.yaml; the render job renders what batch.yaml says. They agree
    on every file: the same frame count, or both refuse it (one rule set: keys, types, training: section)."""
    from isaac_jobs.batch import BatchConfigError, discover_batch

    logic = load_handler("render_launcher").logic
    (tmp_path / "a").mkdir()
    (tmp_path / "batch.yaml").write_text(text)
    try:
        job_frames: int | str | None = discover_batch(tmp_path).render_overrides.get("frames")
    except BatchConfigError:
        job_frames = "refused"
    try:
        launcher_frames: int | str | None = logic.frames_from_batch_config(text)
    except logic.BatchConfigError:
        launcher_frames = "refused"
    assert launcher_frames == job_frames


def test_every_log_line_is_json_with_request_batch_and_run(
    s3: Any, batch: Any, launcher: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [put(s3, "meshes/logged/mug/a.obj", MESH), put(s3, "meshes/logged/mug/notes.txt", b"x")]
    launcher(sqs_event(*events))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"rejected upload", "submitted render", "event handled"} <= {line["message"] for line in lines}
    for line in lines:
        assert "request_id" in line, line
        assert line["request_id"] and line["message_id"] and line["key"].startswith("meshes/logged/")
        assert line["batch"] == "logged"
        assert line["run"].startswith("logged-")


def test_documented_setting_defaults(load_handler: Any) -> None:
    """Only the four names are required; the rest take the defaults their docstrings promise."""
    logic = load_handler("render_launcher").logic
    required = {
        Env.DATA_BUCKET: BUCKET,
        Env.JOB_QUEUE: QUEUE,
        Env.RENDER_JOB_DEFINITION: "sim2cloud-render",
        Env.FINALIZE_JOB_DEFINITION: "sim2cloud-finalize",
    }
    settings = logic.RenderLauncherSettings.from_env(required)
    assert settings.frames_per_shard == 50
    assert settings.default_frames == 500
    assert settings.quiet_period_seconds == 300
    assert settings.max_mesh_bytes == 512 * 1024 * 1024
    zero_quiet = logic.RenderLauncherSettings.from_env({**required, Env.QUIET_PERIOD_SECONDS: "0"})
    assert zero_quiet.quiet_period_seconds == 0


def test_one_frame_is_a_valid_batch(load_handler: Any) -> None:
    logic = load_handler("render_launcher").logic
    assert logic.frames_from_batch_config("frames: 1\n") == 1
    assert logic.shard_count(1, 50) == 1
    assert logic.shard_count(101, 50) == 3


@pytest.mark.parametrize(
    ("code", "status", "lost_race"), [("Other", 409, True), ("Other", 412, True), ("Other", 500, False)]
)
def test_a_conditional_write_that_lost_the_race_is_told_by_status_too(
    load_handler: Any, code: str, status: int, lost_race: bool
) -> None:
    """Some S3 front ends answer a failed condition with only the HTTP status (409 conflict, 412 failed)."""
    logic = load_handler("render_launcher").logic
    error = ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")
    assert logic._is_precondition_failure(error) is lost_race


def test_a_one_shard_batch_is_a_plain_job_not_an_array(s3: Any, batch: Any, launcher: Any) -> None:
    """AWS Batch refuses array jobs of fewer than 2 children: one shard is submitted as a plain job."""
    put(s3, "meshes/single/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/single/batch.yaml", f"frames: {FRAMES_PER_SHARD}\n".encode()))
    assert result["outcomes"][0]["action"] == "submitted"
    render = next(job for job in submitted_jobs(batch) if "render" in job["jobName"])
    assert "size" not in render.get("arrayProperties", {})
    assert environment_of(render)[Env.SHARD_COUNT] == "1"


def test_more_shards_than_a_batch_array_allows_are_refused_with_a_reason(s3: Any, batch: Any, launcher: Any) -> None:
    put(s3, "meshes/huge/mug/mug.obj", MESH)
    frames = 10_001 * FRAMES_PER_SHARD  # one shard more than AWS Batch's largest array job
    result = launcher(put(s3, "meshes/huge/batch.yaml", f"frames: {frames}\n".encode()))
    outcome = result["outcomes"][0]
    assert outcome["action"] == "rejected"
    assert "10001 shards exceed the AWS Batch array limit of 10000" in outcome["detail"]
    assert submitted_jobs(batch) == []


def test_a_long_batch_name_is_cut_to_100_characters_in_the_run_id(load_handler: Any) -> None:
    logic = load_handler("render_launcher").logic
    name = "b" * 120
    run = logic.run_id_for(name, [])
    # Cut to 100 characters with the name's own hash (names sharing their first 100 characters stay apart).
    assert run.startswith("b" * 91 + "-") and len(run) == 100 + 1 + logic.RUN_HASH_CHARS
    assert run != logic.run_id_for("b" * 121, [])


def test_a_folder_placeholder_does_not_hide_the_files_listed_after_it(s3: Any, batch: Any, launcher: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="meshes/ph/mug/", Body=b"")  # what the S3 console's "Create folder" makes
    result = launcher(put(s3, "meshes/ph/batch.yaml", f"frames: {2 * FRAMES_PER_SHARD}\n".encode()))
    assert result["outcomes"][0]["action"] == "rejected"  # no mesh yet
    put(s3, "meshes/ph/mug/mug.obj", MESH)
    result = launcher(put(s3, "meshes/ph/batch.yaml", f"frames: {2 * FRAMES_PER_SHARD}\n".encode()))
    (outcome,) = result["outcomes"]
    assert outcome["action"] == "submitted"
    assert status_of(s3, outcome["run"])["meshes"] == ["meshes/ph/mug/mug.obj"]
    render = next(job for job in submitted_jobs(batch) if "render" in job["jobName"])
    assert render["arrayProperties"]["size"] == 2  # two shards: the smallest array job
