"""A synthesized environment as the infra tests see it (built once per session by conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import assertions

from stacks.config import EnvironmentSettings


@dataclass(frozen=True)
class Synthesized:
    settings: EnvironmentSettings
    assembly: Path
    templates: dict[str, dict[str, Any]]
    """Lifecycle name -> template JSON."""

    def template(self, lifecycle: str) -> assertions.Template:
        return assertions.Template.from_json(self.templates[lifecycle])

    def resources(self, cfn_type: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """Every resource of ``cfn_type`` in every stack: logical id -> (lifecycle, resource)."""
        return {
            logical_id: (lifecycle, resource)
            for lifecycle, template in self.templates.items()
            for logical_id, resource in template.get("Resources", {}).items()
            if resource["Type"] == cfn_type
        }
