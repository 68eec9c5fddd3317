"""The container's ``train`` exit status tells SageMaker and the user whose fault a failure is: 1 with a reason in
output/failure for bad input the user can fix, 2 for an internal error (a bug or the machine). Both fail before
Ultralytics is imported, so they run the real CLI in-process."""

from __future__ import annotations

from pathlib import Path

from sim2cloud import contract
from sim2cloud.cli import main


def _train(dataset: Path, out: Path) -> tuple[int, str]:
    code = main(["train", "--dataset", str(dataset), "--out", str(out), "--no-progress"])
    failure = Path(contract.SageMakerPaths(base=str(out.resolve())).failure_file)
    return code, failure.read_text()


def test_bad_input_exits_1_with_the_reason_alone(tiny_dataset: Path, tmp_path: Path) -> None:
    (tiny_dataset / contract.DATA_YAML_NAME).unlink()
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code == 1
    assert "data.yaml is missing" in reason
    assert not reason.startswith("internal error")


def test_an_internal_error_exits_2_and_says_so(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoints").write_text("a file where the checkpoint folder belongs")  # mkdir fails: not the user's data
    code, reason = _train(tiny_dataset, out)
    assert code == 2
    assert reason.startswith("internal error: FileExistsError")
