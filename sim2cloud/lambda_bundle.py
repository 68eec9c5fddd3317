"""Lambda code bundling without Docker: copy the handler's modules plus the shared packages into a staging
folder that ``lambda_.Code.from_asset`` hashes (stacks/constructs/pipeline_function.py) and that the local
runner imports its handlers from. Stdlib only, in the installed package, so both import it by name.

The bundle holds only what the handlers import: ``lambda/<function>/*.py`` at the root (``handler.handler``),
``lambda/shared/*.py`` as package ``shared/`` and the stdlib-only base of ``sim2cloud`` (:data:`CONTRACT_FILES`:
the contract, the environment reader, the S3 transfers; the rest of sim2cloud pulls heavy libraries) as package
``sim2cloud/``. boto3 comes from the runtime.
The render launcher also carries batch.yaml's rules (``sim2cloud/batch_config.py`` and the hyperparameter
table it checks ``training:`` with) and PyYAML's pure-Python modules from the pinned install (the Lambda
runtime has no YAML library; the optional C accelerator is platform-specific and left out).
The model gate also carries the run report and the price table (``sim2cloud/report/``, ``sim2cloud/pricing.py``,
stdlib only).
Copies keep content only (no timestamps or permissions) so the asset hash changes only when code does.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout: the Lambda sources (lambda/) are not part of the installed package."""
LAMBDA_ROOT = REPO_ROOT / "lambda"
SHARED_PACKAGE = "shared"
CONTRACT_FILES = ("__init__.py", "contract.py", "env_reader.py", "s3_transfer.py")
"""The stdlib-only base of ``sim2cloud`` the handlers import (the Isaac Sim image copies the same files)."""
FUNCTION_EXTRA_FILES: dict[str, tuple[str, ...]] = {
    "render_launcher": (
        "sim2cloud/batch_config.py",
        "sim2cloud/hyperparameters.py",
    ),
    # The gate assembles runs/<run>/report.html after its decision: the report and the price table (stdlib).
    "model_gate": (
        "sim2cloud/pricing.py",
        "sim2cloud/report/__init__.py",
        "sim2cloud/report/collect.py",
        "sim2cloud/report/render.py",
        "sim2cloud/report/stored.py",
    ),
}
"""Repository files (beyond the contract) a function's bundle carries, at the same relative path."""
FUNCTION_VENDORED_PACKAGES: dict[str, tuple[str, ...]] = {"render_launcher": ("yaml",)}
"""Installed pure-Python packages a function's bundle carries (their ``*.py`` files only)."""


def _installed_package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pinned in requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_modules(source_dir: Path, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    for module in sorted(source_dir.glob("*.py")):
        # write_bytes (not copy2): the staged file carries no mtime/mode, so the hash depends on content only.
        (target_dir / module.name).write_bytes(module.read_bytes())


def build_lambda_bundle(function_name: str, out_root: Path) -> Path:
    """Stage the bundle of ``lambda/<function_name>`` under ``out_root/<function_name>`` and return that folder.

    Raises FileNotFoundError naming the missing folder or handler when the function's code is absent, so a
    stack can never deploy an empty Lambda.
    """
    source = LAMBDA_ROOT / function_name
    if not LAMBDA_ROOT.is_dir():
        raise FileNotFoundError(f"{LAMBDA_ROOT}: Lambda bundles are built from a checkout of the repository")
    if not (source / "handler.py").is_file():
        raise FileNotFoundError(f"Lambda {function_name!r}: expected {source / 'handler.py'} (entry handler.handler)")
    staging = out_root / function_name
    # Rebuilt from scratch each synth: a module deleted from the source must vanish from the bundle.
    if staging.exists():
        shutil.rmtree(staging)
    _copy_modules(source, staging)
    shared = LAMBDA_ROOT / SHARED_PACKAGE
    if shared.is_dir():
        _copy_modules(shared, staging / SHARED_PACKAGE)
        (staging / SHARED_PACKAGE / "__init__.py").touch()
    contract_target = staging / "sim2cloud"
    contract_target.mkdir()
    for name in CONTRACT_FILES:
        (contract_target / name).write_bytes((REPO_ROOT / "sim2cloud" / name).read_bytes())
    for relative in FUNCTION_EXTRA_FILES.get(function_name, ()):
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes((REPO_ROOT / relative).read_bytes())
    for package in FUNCTION_VENDORED_PACKAGES.get(function_name, ()):
        _copy_modules(_installed_package_dir(package), staging / package)
    return staging
