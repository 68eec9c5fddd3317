"""The base of every Sim2Cloud stack: environment, tags and availability zones from the settings."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from stacks.config import EnvironmentSettings


class PipelineStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: EnvironmentSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, env=settings.cdk_environment, **kwargs)
        self.settings = settings
        for key, value in settings.tags.items():
            cdk.Tags.of(self).add(key, value)

    @property
    def availability_zones(self) -> list[str]:
        # CDK's default asks the account (a context lookup, which needs credentials at synth). Fn::GetAZs picks
        # them at deploy time instead, in whatever region the stack lands, so no AZ name is hard-coded.
        return [cdk.Fn.select(index, cdk.Fn.get_azs()) for index in range(self.settings.availability_zone_count)]
