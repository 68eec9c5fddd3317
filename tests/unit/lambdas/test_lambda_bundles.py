"""The Lambda bundles: self-sufficient, small, nothing heavy imported, no AWS client created at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lambda_test_support import FUNCTIONS

from sim2cloud.lambda_bundle import CONTRACT_FILES, FUNCTION_EXTRA_FILES, FUNCTION_VENDORED_PACKAGES

MAX_BUNDLE_BYTES = 120 * 1024
"""Each bundle is a few dozen KiB of source; this bound catches an accidental copy of anything larger."""
MAX_VENDORED_BYTES = 320 * 1024
"""The render launcher's pure-Python PyYAML is about 215 KiB of source."""
HEAVY_MODULES = ("numpy", "torch", "ultralytics", "pxr", "moderngl", "aws_cdk", "yaml", "PIL", "trimesh")

_PROBE = """
import json, sys
import botocore.session
created = []
original = botocore.session.Session.create_client
def spy(self, *args, **kwargs):
    created.append(args[0] if args else kwargs.get("service_name"))
    return original(self, *args, **kwargs)
botocore.session.Session.create_client = spy
import handler
at_import = list(created)
heavy = sorted(name for name in {heavy} if name in sys.modules)
from shared import aws_clients
aws_clients.client("s3")  # the spy sees a client once one is really asked for
print(json.dumps({
    "heavy": heavy,
    "clients": at_import,
    "clients_after_first_use": created,
    "sim2cloud": sys.modules["sim2cloud"].__file__,
    "shared": sys.modules["shared"].__file__,
    "has_handler": callable(getattr(handler, "handler", None)),
}))
"""


def bundle_files(bundle: Path) -> dict[str, int]:
    return {str(path.relative_to(bundle)): path.stat().st_size for path in bundle.rglob("*") if path.is_file()}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundle_holds_only_the_handler_its_logic_shared_and_the_contract(
    bundles: dict[str, Path], function: str
) -> None:
    files = bundle_files(bundles[function])
    packages = FUNCTION_VENDORED_PACKAGES.get(function, ())
    vendored = {name: size for name, size in files.items() if name.split("/")[0] in packages}
    own = set(files) - set(vendored)
    assert own == {
        "handler.py",
        f"{function}_logic.py",
        "shared/__init__.py",
        "shared/aws_clients.py",
        "shared/outcome.py",
        "shared/quarantine.py",
        "shared/s3_events.py",
        "shared/structured_log.py",
        *(f"sim2cloud/{name}" for name in CONTRACT_FILES),
        *FUNCTION_EXTRA_FILES.get(function, ()),
    }
    total = sum(files[name] for name in own)
    print(f"{function} bundle: {total} bytes in {len(own)} files, + {sum(vendored.values())} vendored")
    assert total < MAX_BUNDLE_BYTES
    assert all(name.endswith(".py") for name in vendored)  # pure Python only: no platform-specific binary
    assert sum(vendored.values()) < MAX_VENDORED_BYTES


@pytest.mark.parametrize("function", FUNCTIONS)
def test_importing_the_handler_is_light_and_creates_no_client(bundles: dict[str, Path], function: str) -> None:
    bundle = bundles[function]
    # cwd = bundle root and -c put the bundle first on sys.path, as the Lambda runtime does (/var/task).
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("{heavy}", repr(HEAVY_MODULES))],
        cwd=bundle,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["clients"] == []
    assert report["clients_after_first_use"] == ["s3"]
    assert report["has_handler"]
    assert Path(report["sim2cloud"]).parent == bundle / "sim2cloud"
    assert Path(report["shared"]).parent == bundle / "shared"
