"""Infra test fixtures: each environment is synthesized ONCE per test session (jsii start-up and synth cost
seconds), with cdk-nag registered, and every test reads the same cloud assembly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The stacks package lives at the repository root (not installed; importing it selects the pinned Node 22
# for jsii); infra_assembly sits beside this file.
for path in (REPO_ROOT, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import stacks  # noqa: E402, F401  (first: it selects the pinned Node 22 before anything imports aws_cdk)

# isort: split
from infra_assembly import Synthesized  # noqa: E402

from stacks.config import ENVIRONMENTS, load_settings  # noqa: E402
from stacks.pipeline import build_app  # noqa: E402

TEST_CONTEXT = {"account": "123456789012", "region": "eu-west-1", "github_repository": "example/sim2cloud"}
"""Fixed so templates (and snapshots) do not depend on the caller's CDK_DEFAULT_* variables."""
LIFECYCLES = ("Storage", "Monitoring", "Registries", "Render", "Training", "Endpoint", "CiAccess")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesized]:
    """Every environment, synthesized with cdk-nag: synth raises if any finding is unacknowledged."""
    out: dict[str, Synthesized] = {}
    for name in ENVIRONMENTS:
        assembly = tmp_path_factory.mktemp(f"cdk-{name}")
        app, built = build_app(name, outdir=str(assembly), context=TEST_CONTEXT)
        app.synth()
        settings = load_settings(name, TEST_CONTEXT)
        templates = {
            lifecycle: json.loads((assembly / f"{stack.stack_name}.template.json").read_text())
            for lifecycle, stack in built.items()
        }
        out[name] = Synthesized(settings, assembly, templates)
    return out


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    """One synthesized environment per test parameter (dev, prod, ...)."""
    return synthesized[request.param]
