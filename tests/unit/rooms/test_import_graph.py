"""The rooms hold: the base of ``sim2cloud`` (contract, environment reader, S3 transfers, hyperparameter table,
wiring, Lambda bundler) imports nothing but the standard library, so the Lambda bundles and the Isaac Sim
image ship those files as they are; and the render job imports only the part of ``sim2cloud`` its image holds."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sim2cloud.lambda_bundle import CONTRACT_FILES

REPO = Path(__file__).resolve().parents[3]
BASE_MODULES = (
    "sim2cloud",
    "sim2cloud.contract",
    "sim2cloud.env_reader",
    "sim2cloud.s3_transfer",
    "sim2cloud.hyperparameters",
    "sim2cloud.wiring",
    "sim2cloud.lambda_bundle",
)


def modules_loaded_by(module: str | None) -> set[str]:
    """Every module a fresh interpreter holds after importing ``module`` alone (None: nothing)."""
    code = f"import json, sys; {f'import {module}; ' if module else ''}print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", BASE_MODULES)
def test_the_base_imports_only_the_standard_library_and_itself(module: str) -> None:
    loaded = modules_loaded_by(module) - modules_loaded_by(None)  # the interpreter's own start-up modules
    outside = {
        name.partition(".")[0]
        for name in loaded
        if name.partition(".")[0] not in sys.stdlib_module_names and name.partition(".")[0] != "sim2cloud"
    }
    assert outside == set(), f"{module} pulls in {sorted(outside)}"
    ours = {name for name in loaded if name.startswith("sim2cloud")}
    assert ours <= set(BASE_MODULES), f"{module} pulls in {sorted(ours - set(BASE_MODULES))}"


def sim2cloud_imports(folder: Path) -> set[str]:
    """``sim2cloud`` modules imported anywhere under ``folder`` (at any depth, lazily or not)."""
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sim2cloud"):
                names = {f"{node.module}.{alias.name}" for alias in node.names}
                found |= {name for name in names if (REPO / f"{name.replace('.', '/')}.py").is_file()}
                found |= {node.module} if node.module != "sim2cloud" else set()
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("sim2cloud.")}
    return found


def test_the_isaac_image_ships_every_sim2cloud_module_the_render_job_imports() -> None:
    dockerfile = (REPO / "containers" / "isaac-sim" / "Dockerfile").read_text()
    copied = set(re.findall(r"\bsim2cloud/([\w/]+\.py)\b", dockerfile))
    shipped = {"sim2cloud." + name.removesuffix(".py").replace("/", ".") for name in copied}
    assert sim2cloud_imports(REPO / "isaac_jobs") <= shipped
    # The image holds the same stdlib-only base as the Lambda bundles, plus the hyperparameter table, batch.yaml's
    # rules and the job log format, no more.
    assert copied == {*CONTRACT_FILES, "hyperparameters.py", "batch_config.py", "job_log.py"}


def test_reading_environment_settings_loads_no_cdk() -> None:
    """The demo prices its run from stacks/config.py's settings; that must not start jsii's Node (slow, and on
    the runtime-only set-up a Node 20 banner in the demo's output)."""
    loaded = modules_loaded_by("stacks.config")
    assert "stacks.config" in loaded
    assert not {name.partition(".")[0] for name in loaded} & {"aws_cdk", "jsii", "constructs"}
