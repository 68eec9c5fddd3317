"""Train -> serve -> evaluate on a tiny generated dataset, with real Ultralytics, ONNX Runtime and gunicorn.

One module-scoped training run is interrupted like a spot reclaim (SIGKILL right after the epoch-1
checkpoint) and restarted with the same command; it must resume at epoch 2. Its artifacts feed the rest.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.tiny_data import yolo_test_helpers
from sim2cloud import contract
from sim2cloud.local.runner import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SIM2CLOUD = [sys.executable, "-m", "sim2cloud.cli"]
IMGSZ = 96
EPOCHS = 2


_SCRATCH: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _scratch(tmp_path_factory: pytest.TempPathFactory) -> None:
    _SCRATCH[:] = [tmp_path_factory.mktemp("scratch")]


def _scratch_root() -> Path:
    return _SCRATCH[0]


def _env(**extra: str) -> dict[str, str]:
    # Scratch (temp dirs of the jobs, also of the deliberately killed one) stays inside pytest's tmp dir.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="2", TMPDIR=str(_scratch_root()), **extra)
    env.pop(contract.Env.SM_BASE_DIR, None)
    return env


def _train_command(dataset: Path, out: Path) -> list[str]:
    # Pinned (cache and threads too, not left to the instance): a 2-epoch model's top detections sit at tied
    # confidences near 0.001, so the ONNX/PyTorch comparison needs the same weights on every machine.
    hp = [f"epochs={EPOCHS}", f"imgsz={IMGSZ}", "batch=8", "workers=0", "seed=1", "cache=false", "threads=1"]
    return [*SIM2CLOUD, "train", "--dataset", str(dataset), "--out", str(out), "--no-progress"] + [
        arg for item in hp for arg in ("--hp", item)
    ]


class TrainedRun:
    def __init__(self, root: Path) -> None:
        self.dataset = yolo_test_helpers().build_tiny_dataset(root / "dataset")
        self.out = root / "train"
        self.paths = contract.SageMakerPaths(base=str(self.out))
        self.first_lines: list[str] = []
        self.second_lines: list[str] = []
        self.second_returncode: int | None = None


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    run = TrainedRun(tmp_path_factory.mktemp("yolo"))
    log = (run.out.parent / "first.stderr").open("w")
    first = subprocess.Popen(
        _train_command(run.dataset, run.out), stdout=subprocess.PIPE, stderr=log, text=True, env=_env(), cwd=REPO
    )
    assert first.stdout is not None
    for line in first.stdout:
        run.first_lines.append(line)
        if line.startswith(contract.METRIC_LINE_PREFIX):
            first.send_signal(signal.SIGKILL)  # the epoch-1 checkpoint is complete before its line is printed
            break
    first.wait(timeout=60)
    second = subprocess.run(
        _train_command(run.dataset, run.out), capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600
    )
    run.second_lines = second.stdout.splitlines()
    run.second_returncode = second.returncode
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return run


def _metric_lines(lines: list[str]) -> list[dict[str, float]]:
    parsed = [contract.parse_metric_line(line.strip()) for line in lines]
    return [p for p in parsed if p is not None]


def test_interrupted_run_resumes_where_it_stopped(trained: TrainedRun) -> None:
    assert [m["epoch"] for m in _metric_lines(trained.first_lines)] == [1.0]
    assert [m["epoch"] for m in _metric_lines(trained.second_lines)] == [2.0]  # not restarted at epoch 1
    assert any("resuming from checkpoint" in line for line in trained.second_lines)
    card = json.loads((Path(trained.paths.model_dir) / contract.MODEL_JSON_NAME).read_text())
    assert card["epochs_trained"] == EPOCHS
    assert (trained.out / "output" / "data" / "metrics.jsonl").is_file()
    with Image.open(trained.out / "output" / "data" / "training_curves.png") as curves:
        assert curves.format == "PNG" and curves.width > curves.height > 100
    assert [m["epoch"] for m in card["metrics_history"]] == [1.0, 2.0]


def test_a_rerun_after_training_finished_exports_and_succeeds(trained: TrainedRun, tmp_path: Path) -> None:
    """SageMaker retries a job whose export failed (or a user runs the command again): the completion marker in
    checkpoints/ says training is done, so the rerun exports the finished weights and exits 0 without training
    again (Ultralytics refuses to resume a finished run)."""
    out = tmp_path / "train"
    shutil.copytree(trained.out, out, symlinks=True)
    shutil.rmtree(out / "model")
    rerun = subprocess.run(
        _train_command(trained.dataset, out), capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    lines = rerun.stdout.splitlines()
    assert any("training already complete" in line for line in lines)
    assert _metric_lines(lines) == []  # no epoch was trained
    card = json.loads((out / "model" / contract.MODEL_JSON_NAME).read_text())
    assert card["epochs_trained"] == EPOCHS
    assert (out / "model" / contract.MODEL_ONNX_NAME).is_file()


def test_metric_lines_match_the_job_metric_definitions(trained: TrainedRun) -> None:
    lines = [line for line in trained.second_lines if line.startswith(contract.METRIC_LINE_PREFIX)]
    assert len(lines) == 1
    for definition in contract.metric_definitions():
        match = re.search(definition["Regex"], lines[0])
        assert match, definition["Name"]
        assert np.isfinite(float(match.group(1)))
    values = contract.parse_metric_line(lines[0])
    assert values is not None
    assert set(values) == set(contract.METRIC_NAMES)
    assert values["train_images_per_s"] > 0


def test_model_dir_and_sagemaker_style_archive(trained: TrainedRun, tmp_path: Path) -> None:
    model_dir = Path(trained.paths.model_dir)
    names = {contract.MODEL_ONNX_NAME, contract.MODEL_PT_NAME, contract.MODEL_JSON_NAME}
    assert names <= {p.name for p in model_dir.iterdir()}
    archive = tmp_path / contract.MODEL_ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:  # what SageMaker does with /opt/ml/model
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    with tarfile.open(archive) as tar:
        assert names <= set(tar.getnames())
    card = json.loads((model_dir / contract.MODEL_JSON_NAME).read_text())
    assert card["class_names"] == ["square", "disc", "triangle"]
    assert card["imgsz"] == IMGSZ
    assert card["lineage"]["dataset_run"] == "tiny-test-run"
    assert len(card["lineage"]["manifest_sha256"]) == 64
    assert len(card["lineage"]["source_meshes"]) == 3
    assert card["contract_version"] == contract.CONTRACT_VERSION
    assert card["hyperparameters"]["epochs"] == EPOCHS
    assert {"ultralytics", "torch"} <= set(card["versions"])
    assert set(card["metrics"]) >= {"mAP50", "mAP50-95", "precision", "recall"}
    assert not (trained.dataset / "labels" / "train.cache").exists()  # the channel is never written to


def test_onnx_detections_match_pytorch(trained: TrainedRun) -> None:
    """Tolerance: same classes, box IoU > 0.9 and confidence within 0.02 for the top detections."""
    from sim2cloud.evaluation.metrics import box_iou
    from sim2cloud.serving.model import OnnxDetector, Thresholds, decode_image

    model_dir = Path(trained.paths.model_dir)
    detector = OnnxDetector(model_dir)
    thresholds = Thresholds(conf=0.001, iou=0.7, max_det=20)
    images = sorted((trained.dataset / "images" / "val").glob("*.jpg"))[:4]
    # PyTorch runs in a child (tests/integration/ultralytics_child.py says why), with the same thresholds.
    child = Path(__file__).with_name("ultralytics_child.py")
    completed = subprocess.run(
        [sys.executable, str(child), "predict", str(model_dir / contract.MODEL_PT_NAME), str(IMGSZ), *map(str, images)],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    theirs_all = json.loads(completed.stdout.strip().splitlines()[-1])["predictions"]
    compared = 0
    for image_path, theirs in zip(images, theirs_all, strict=True):
        ours = detector.detect(decode_image(image_path.read_bytes()), thresholds)
        their_boxes = np.array(theirs["boxes"]).reshape(-1, 4)
        their_classes = np.array(theirs["classes"], dtype=int)
        their_conf = np.array(theirs["conf"])
        assert len(ours) > 0
        for detection in ours[:5]:
            same_class = their_classes == detection.class_id
            ious = box_iou(np.array([detection.box]), their_boxes)[0]
            candidates = np.where(same_class & (ious > 0.9) & (np.abs(their_conf - detection.confidence) < 0.02))[0]
            assert len(candidates) > 0, (detection, their_boxes[:5], their_conf[:5])
            compared += 1
    assert compared >= 4


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Server:
    def __init__(self, model: Path, max_body: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra = {contract.Env.SERVING_MAX_BODY_BYTES: str(max_body)} if max_body else {}
        self.process = subprocess.Popen(
            [
                *SIM2CLOUD,
                "serve",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "2",
                "--threads",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(**extra),
            cwd=REPO,
        )

    def ping(self) -> int | None:
        try:
            return _request(self.url + contract.PING_PATH)[0]
        except (ConnectionError, urllib.error.URLError):
            return None

    def wait_until(self, wanted: int, seconds: float = 60) -> list[int | None]:
        seen = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen.append(self.ping())
            if seen[-1] == wanted:
                return seen
            assert self.process.poll() is None, "server exited"
            time.sleep(0.05)
        raise AssertionError(f"/ping never answered {wanted}: {seen[-5:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


MAX_BODY = 300_000


@pytest.fixture(scope="module")
def server(trained: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    archive = tmp_path_factory.mktemp("artifact") / contract.MODEL_ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:
        for path in Path(trained.paths.model_dir).iterdir():
            tar.add(path, arcname=path.name)
    running = Server(archive, max_body=MAX_BODY)  # served from the archive, as SageMaker hands it over
    try:
        running.wait_until(200)
        yield running
    finally:
        running.stop()


def _encoded(trained: TrainedRun, fmt: str = "JPEG") -> bytes:
    image_path = sorted((trained.dataset / "images" / "val").glob("*.jpg"))[0]
    if fmt == "JPEG":
        return image_path.read_bytes()
    buffer = io.BytesIO()
    Image.open(image_path).save(buffer, format=fmt)
    return buffer.getvalue()


def test_ping_is_503_until_a_model_is_loaded(trained: TrainedRun, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / contract.MODEL_JSON_NAME).write_text(
        (Path(trained.paths.model_dir) / contract.MODEL_JSON_NAME).read_text()
    )
    (broken / contract.MODEL_ONNX_NAME).write_bytes(b"not an onnx model")
    server = Server(broken)
    try:
        seen = server.wait_until(503)
        assert 200 not in seen
        time.sleep(0.5)
        assert server.ping() == 503
        status, body = _request(server.url + contract.INVOCATIONS_PATH, b"x", {"Content-Type": "image/jpeg"})
        assert status == 503
        assert "model not loaded" in body["error"]
    finally:
        server.stop()


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/x-image"])
def test_raw_image_content_types(server: Server, trained: TrainedRun, content_type: str) -> None:
    data = _encoded(trained, "PNG" if content_type == "image/png" else "JPEG")
    status, body = _request(
        server.url + contract.INVOCATIONS_PATH,
        data,
        {"Content-Type": content_type, contract.CUSTOM_ATTRIBUTES_HEADER: "conf=0.001,max_det=5"},
    )
    assert status == 200
    (prediction,) = body["predictions"]
    assert (prediction["width"], prediction["height"]) == (128, 128)
    assert 0 < len(prediction["detections"]) <= 5
    detection = prediction["detections"][0]
    assert detection["class_name"] in ("square", "disc", "triangle")
    assert ["square", "disc", "triangle"][detection["class_id"]] == detection["class_name"]
    x1, y1, x2, y2 = detection["box"]
    assert 0 <= x1 <= x2 <= 128
    assert 0 <= y1 <= y2 <= 128
    assert (
        body["model_version"] == json.loads((Path(trained.paths.model_dir) / "model.json").read_text())["model_version"]
    )


def test_json_bodies(server: Server, trained: TrainedRun) -> None:
    encoded = base64.b64encode(_encoded(trained)).decode()
    url = server.url + contract.INVOCATIONS_PATH
    headers = {"Content-Type": "application/json", contract.CUSTOM_ATTRIBUTES_HEADER: "conf=0.001"}
    for document, count in (
        ({"image": encoded}, 1),
        ({"images": [encoded, encoded]}, 2),
        ([{"image": encoded}] * 3, 3),
    ):
        status, body = _request(url, json.dumps(document).encode(), headers)
        assert status == 200
        assert len(body["predictions"]) == count
    # Thresholds change the answer: a strict confidence leaves fewer detections.
    _, loose = _request(url, json.dumps({"image": encoded}).encode(), headers)
    _, strict = _request(
        url, json.dumps({"image": encoded}).encode(), {**headers, contract.CUSTOM_ATTRIBUTES_HEADER: "conf=0.99"}
    )
    assert len(strict["predictions"][0]["detections"]) < len(loose["predictions"][0]["detections"])


def test_client_errors_never_500_and_server_stays_up(server: Server, trained: TrainedRun) -> None:
    url = server.url + contract.INVOCATIONS_PATH
    jpeg = _encoded(trained)
    cases = [
        (jpeg[: len(jpeg) // 2], {"Content-Type": "image/jpeg"}, 400),  # truncated
        (b"\x89PNG not really", {"Content-Type": "image/png"}, 400),  # malformed
        (b'{"image": "***"}', {"Content-Type": "application/json"}, 400),  # bad base64
        (b"{", {"Content-Type": "application/json"}, 400),  # bad JSON
        (jpeg, {"Content-Type": "image/jpeg", contract.CUSTOM_ATTRIBUTES_HEADER: "conf=high"}, 400),
        (jpeg, {"Content-Type": "text/csv"}, 415),
        (b"\xff" * (MAX_BODY + 1), {"Content-Type": "image/jpeg"}, 413),
    ]
    for data, headers, expected in cases:
        status, body = _request(url, data, headers)
        assert status == expected, (headers, body)
        assert isinstance(body["error"], str)
        assert body["error"]
    assert server.ping() == 200
    status, _ = _request(url, jpeg, {"Content-Type": "image/jpeg"})
    assert status == 200
    assert server.process.poll() is None


def test_a_body_of_exactly_the_default_limit_is_served(trained: TrainedRun) -> None:
    """contract.SERVING_DEFAULT_MAX_BODY_BYTES is the largest accepted body: exactly that many bytes are served,
    one byte more is a 413."""
    limit = contract.SERVING_DEFAULT_MAX_BODY_BYTES
    document = json.dumps({"image": base64.b64encode(_encoded(trained)).decode()}).encode()
    exactly = document + b" " * (limit - len(document))  # trailing whitespace: still valid JSON
    assert len(exactly) == limit
    server = Server(Path(trained.paths.model_dir))  # no SIM2CLOUD_MAX_BODY_BYTES: the contract's default
    try:
        server.wait_until(200)
        url = server.url + contract.INVOCATIONS_PATH
        status, body = _request(url, exactly, {"Content-Type": "application/json"})
        assert status == 200, body
        assert len(body["predictions"]) == 1
        status, body = _request(url, exactly + b" ", {"Content-Type": "application/json"})
        assert status == 413, body
        assert server.ping() == 200
    finally:
        server.stop()


def test_evaluation_on_model_file_and_endpoint_agree(server: Server, trained: TrainedRun, tmp_path: Path) -> None:
    results = {}
    for name, extra in (("file", []), ("endpoint", ["--endpoint", server.url])):
        out = tmp_path / name
        completed = subprocess.run(
            [
                *SIM2CLOUD,
                "evaluate",
                "--model",
                trained.paths.model_dir,
                "--data",
                str(trained.dataset),
                "--out",
                str(out),
                "--no-progress",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=REPO,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        results[name] = json.loads((out / "evaluation.json").read_text())
        with Image.open(out / "detections.png") as picture:
            assert picture.format == "PNG"
            assert picture.width >= 320
    file_result, endpoint_result = results["file"], results["endpoint"]
    assert set(file_result["per_class"]) == {"square", "disc", "triangle"}
    assert 0.0 <= file_result["mAP50-95"] <= file_result["mAP50"] <= 1.0
    assert endpoint_result["mAP50"] == pytest.approx(file_result["mAP50"], abs=1e-6)
    assert endpoint_result["mAP50-95"] == pytest.approx(file_result["mAP50-95"], abs=1e-6)
    for name, per_class in file_result["per_class"].items():
        assert endpoint_result["per_class"][name]["AP50-95"] == pytest.approx(per_class["AP50-95"], abs=1e-6)


@pytest.mark.parametrize(
    ("model_file", "rect"),
    # The .pt of the same weights with Ultralytics' rect batching off: on by default for a .pt, it pads each
    # batch by half a stride (a 96 px image is seen at 128 px with a grey border), an input the fixed-size
    # exported model never gets.
    [(contract.MODEL_ONNX_NAME, "true"), (contract.MODEL_PT_NAME, "false")],
)
def test_evaluate_agrees_with_ultralytics_val_on_the_same_model_file(
    trained: TrainedRun, tmp_path: Path, model_file: str, rect: str
) -> None:
    """The project's one mAP: `sim2cloud evaluate` (model.onnx, the served model) and Ultralytics' val on the same
    file and val split within 0.005, per class too; model.json's gate metrics are that same number. The
    2-epoch model scores near 0, so this guards the path (file, split, thresholds, class order); the definition
    itself is pinned against Ultralytics' own functions in tests/unit/yolo/test_metrics.py (AP) and
    test_multi_label_nms.py (NMS), and a demo run's model reads the same number both ways (README)."""
    model_dir = Path(trained.paths.model_dir)
    completed = subprocess.run(
        [*SIM2CLOUD, "evaluate", "--model", str(model_dir), "--data", str(trained.dataset), "--out", str(tmp_path),
         "--no-progress"],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    ours = json.loads((tmp_path / "evaluation.json").read_text())
    data_yaml = tmp_path / "data.yaml"  # absolute path: Ultralytics resolves a relative one under its datasets dir
    data_yaml.write_text(
        json.dumps({"path": str(trained.dataset), "train": "images/train", "val": "images/val",
                    "names": dict(enumerate(["square", "disc", "triangle"]))})
    )  # fmt: skip
    child = Path(__file__).with_name("ultralytics_child.py")
    completed = subprocess.run(
        [sys.executable, str(child), "val", str(model_dir / model_file), str(data_yaml), str(IMGSZ), rect],
        capture_output=True, text=True, env=_env(YOLO_CONFIG_DIR=str(tmp_path / "yolo-config")), cwd=tmp_path,
        timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    theirs = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"{model_file}: evaluate mAP50 {ours['mAP50']:.4f}, Ultralytics val {theirs['mAP50']:.4f}")
    assert ours["mAP50"] == pytest.approx(theirs["mAP50"], abs=0.005)
    assert ours["mAP50-95"] == pytest.approx(theirs["mAP50-95"], abs=0.005)
    for name, ap50 in theirs["per_class"].items():
        assert ours["per_class"][name]["AP50"] == pytest.approx(ap50, abs=0.005)
    card = json.loads((model_dir / contract.MODEL_JSON_NAME).read_text())
    assert card["metrics"]["mAP50"] == pytest.approx(ours["mAP50"], abs=1e-9)
    assert card["metrics_source"]["model_file"] == contract.MODEL_ONNX_NAME
    assert card["metrics_source"]["split"] == contract.VAL_SPLIT


def test_fine_tuning_from_a_weights_file(trained: TrainedRun, tmp_path: Path) -> None:
    """`train --weights FILE` starts from those weights (here the module's trained model.pt, standing in for a
    COCO-pretrained yolov8n.pt): the job loads them from the weights channel, downloads nothing, and records
    the file as the model it started from."""
    weights = tmp_path / "start.pt"
    shutil.copy(Path(trained.paths.model_dir) / contract.MODEL_PT_NAME, weights)
    out = tmp_path / "tuned"
    command = _train_command(trained.dataset, out)
    command[command.index(f"epochs={EPOCHS}")] = "epochs=1"
    completed = subprocess.run(
        [*command, "--weights", str(weights)],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    card = json.loads((out / "model" / contract.MODEL_JSON_NAME).read_text())
    assert card["hyperparameters"]["model"] == "start.pt"
    assert card["class_names"] == ["square", "disc", "triangle"]
    assert weights.read_bytes() == (Path(trained.paths.model_dir) / contract.MODEL_PT_NAME).read_bytes()


NETWORK_GUARD = """
import socket, sys
attempts = []
def refuse_lookup(*args, **kwargs):
    attempts.append(args[:2])
    raise socket.gaierror("network disabled by the test")
real_connect = socket.socket.connect
def refuse_connect(self, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        attempts.append(address)
        raise OSError("network disabled by the test")
    return real_connect(self, address)
socket.getaddrinfo = refuse_lookup
socket.socket.connect = refuse_connect
from sim2cloud.cli import main
code = main(sys.argv[1:])
print("NETWORK_ATTEMPTS", repr(attempts))
sys.exit(code)
"""


def test_training_and_export_never_touch_the_network(tmp_path: Path) -> None:
    """No weights, fonts, settings sync or update checks: every lookup or outside connection is refused and
    recorded (in the job's own process, where Ultralytics runs)."""
    dataset = yolo_test_helpers().build_tiny_dataset(tmp_path / "dataset", train_images=8, val_images=4)
    command = [sys.executable, "-c", NETWORK_GUARD, "train", "--dataset", str(dataset), "--out", str(tmp_path / "o")]
    command += ["--hp", "epochs=1", "--hp", "imgsz=64", "--hp", "batch=4", "--hp", "workers=0", "--no-progress"]
    completed = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "NETWORK_ATTEMPTS []" in completed.stdout
    assert (tmp_path / "o" / "model" / contract.MODEL_ONNX_NAME).is_file()
