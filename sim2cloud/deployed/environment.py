"""Which environment the ``submit`` and ``status`` commands talk to, and the Lambdas' own logic they reuse.

A cloud environment is found from its deployed stacks' outputs (the contract names them), never from naming
rules copied here: the data bucket from ``Sim2Cloud-<env>-Storage``, the model package group and the render
launcher from ``Sim2Cloud-<env>-Training``, and the limits the launcher applies from that function's own
environment. ``--env local`` is the local demo's moto server (``--aws-endpoint``), with the demo's names.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sim2cloud import contract
from sim2cloud.local import runner

LOCAL: str = runner.LOCAL_ENVIRONMENT


class EnvironmentNotFound(RuntimeError):
    """The environment's stacks (or the local server) cannot be read; the message says what to do."""


@dataclass(frozen=True)
class DeployedEnvironment:
    name: str
    bucket: str
    model_package_group: str
    launcher_environment: dict[str, str] = field(default_factory=dict)
    """The render launcher's environment variables (its limits); empty locally: the launcher's defaults."""
    endpoint_url: str | None = None


def add_environment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env",
        required=True,
        help=f"environment name as deployed (dev, prod: the Sim2Cloud-<env>-* stacks), or '{LOCAL}' for the demo",
    )
    parser.add_argument(
        "--aws-endpoint",
        default=None,
        help=f"AWS endpoint URL (required with --env {LOCAL}: the moto server a demo ran against)",
    )


@contextlib.contextmanager
def aws_session(args: argparse.Namespace) -> Iterator[DeployedEnvironment]:
    """The environment with boto3 pointed at it: the moto server (dummy credentials) for ``local``, else the
    caller's own credentials and region."""
    if args.env == LOCAL:
        if not args.aws_endpoint:
            raise EnvironmentNotFound(f"--env {LOCAL} needs --aws-endpoint http://127.0.0.1:<port> (a moto server)")
        with runner.patched_environ(
            {"AWS_ENDPOINT_URL": args.aws_endpoint, **runner.DUMMY_CREDENTIALS}, runner._CLEARED_AWS_VARIABLES
        ):
            yield DeployedEnvironment(LOCAL, runner.LOCAL_BUCKET, runner.MODEL_PACKAGE_GROUP, {}, args.aws_endpoint)
        return
    contract.check_id(args.env, "--env")
    with runner.patched_environ({"AWS_ENDPOINT_URL": args.aws_endpoint} if args.aws_endpoint else {}):
        yield _from_stacks(args.env, args.aws_endpoint)


def _outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as err:
        raise EnvironmentNotFound(
            f"cannot read stack {stack}: {err.response.get('Error', {}).get('Message', err)} "
            "(deployed in this account and region? see README 'Deploy to your account')"
        ) from err
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def _from_stacks(name: str, endpoint_url: str | None) -> DeployedEnvironment:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cloudformation = boto3.client("cloudformation")
        storage = _outputs(cloudformation, contract.stack_name(name, "Storage"))
        render = _outputs(cloudformation, contract.stack_name(name, "Render"))
        training = _outputs(cloudformation, contract.stack_name(name, "Training"))
        launcher = render[contract.RENDER_LAUNCHER_OUTPUT]
        configuration = boto3.client("lambda").get_function_configuration(FunctionName=launcher)
    except KeyError as err:
        raise EnvironmentNotFound(f"environment {name!r}: its stacks have no output {err} (deploy them again)") from err
    except (BotoCoreError, ClientError) as err:
        raise EnvironmentNotFound(f"environment {name!r}: {err} (AWS credentials and region for its account?)") from err
    environment = dict(configuration.get("Environment", {}).get("Variables", {}))
    return DeployedEnvironment(
        name,
        storage[contract.DATA_BUCKET_OUTPUT],
        training[contract.MODEL_PACKAGE_GROUP_OUTPUT],
        environment,
        endpoint_url,
    )


def lambda_logic(function: str) -> ModuleType:
    """``lambda/<function>/<function>_logic.py`` as its Lambda bundle holds it (the code that runs in the
    cloud, imported the way the demo imports it), so the CLI applies the handlers' own rules."""
    with tempfile.TemporaryDirectory(prefix="sim2cloud-bundle-") as root:
        (module,) = runner.import_from_bundle(runner.build_bundle(function, Path(root)), f"{function}_logic")
    return module
