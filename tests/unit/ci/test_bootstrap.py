"""What each set-up installs: `make run` installs only what the pipeline runs on (requirements.txt, no test tools,
no CDK CLI), `make setup` / `make test` everything; each install happens once and a full one covers the runtime.

scripts/bootstrap.sh runs for real in a scratch copy of the repository's set-up files, with the programs it calls
(the venv's python, npm, dpkg-query, apt-get) replaced by recorders on PATH, so the test sees exactly what it would
have installed without installing anything.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SETUP_FILES = (
    "scripts/bootstrap.sh",
    "requirements.txt",
    "requirements-dev.txt",
    "pyproject.toml",
    "package.json",
    "package-lock.json",
)


def _recorder(path: Path, log: Path, output: str = "", then: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{path.name} $*" >> "{log}"\nprintf "%s" "{output}"\n{then}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    for name in SETUP_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    log = tmp_path / "calls.log"
    log.touch()
    _recorder(root / ".venv" / "bin" / "python", log)  # the venv exists: bootstrap only installs into it
    bin_dir = tmp_path / "bin"
    _recorder(bin_dir / "npm", log, then="mkdir -p node_modules")  # as npm ci leaves it
    _recorder(bin_dir / "apt-get", log)
    _recorder(bin_dir / "dpkg-query", log, output="install ok installed")  # the Debian packages are present
    return root


def _bootstrap(repo: Path, *args: str) -> list[str]:
    log = repo.parent / "calls.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{repo.parent / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    completed = subprocess.run(
        ["bash", "scripts/bootstrap.sh", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return [line for line in log.read_text().splitlines() if not line.startswith("dpkg-query")]


def test_the_runtime_setup_installs_requirements_txt_only_and_no_cdk_cli(repo: Path) -> None:
    calls = _bootstrap(repo, "--runtime")
    installs = [call for call in calls if " -r " in call]
    assert installs == ["python -m pip install -q -r requirements.txt"]
    assert not any(call.startswith(("npm", "apt-get")) for call in calls)
    assert "python -m pip install -q --no-deps -e ." in calls


def test_each_setup_installs_once_and_the_full_one_covers_the_runtime(repo: Path) -> None:
    _bootstrap(repo, "--runtime")
    assert _bootstrap(repo, "--runtime") == []  # nothing again
    full = _bootstrap(repo)
    assert "python -m pip install -q -r requirements.txt -r requirements-dev.txt" in full
    assert any(call.startswith("npm ci") for call in full)
    assert _bootstrap(repo, "--runtime") == []  # the full install holds everything the runtime needs
    (repo / "requirements.txt").write_text((repo / "requirements.txt").read_text() + "\n# changed\n")
    assert [call for call in _bootstrap(repo, "--runtime") if " -r " in call] == [
        "python -m pip install -q -r requirements.txt"
    ]  # a changed pin installs again


def test_an_unknown_option_is_refused(repo: Path) -> None:
    completed = subprocess.run(["bash", "scripts/bootstrap.sh", "--fast"], cwd=repo, capture_output=True, text=True)
    assert completed.returncode == 2 and "usage" in completed.stderr


def test_make_run_and_render_use_the_runtime_setup_and_make_test_the_full_one() -> None:
    def commands(target: str) -> str:
        completed = subprocess.run(["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    for target in ("run", "render"):
        assert "scripts/bootstrap.sh --runtime" in commands(target)
    test_commands = commands("test").splitlines()
    assert "scripts/bootstrap.sh" in test_commands  # the full set-up, with the test tools


def test_the_demo_server_is_a_runtime_requirement() -> None:
    # moto's server is the local pipeline's AWS: `make run` must install it without the test tools.
    runtime = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    dev = (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()
    assert any(line.startswith("moto[server]==") for line in runtime)
    assert not any(line.startswith("moto") for line in dev)


def test_the_cdk_libraries_come_with_the_full_setup_only() -> None:
    # The demo reads environment settings without aws_cdk (tests/unit/rooms), so `make run` does not install them.
    runtime = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    dev = (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()
    for package in ("aws-cdk-lib==", "constructs==", "cdk-nag=="):
        assert not any(line.startswith(package) for line in runtime), package
        assert any(line.startswith(package) for line in dev), package
