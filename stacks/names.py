"""Fixed physical names, defined once: the stacks that create these resources and the ones that only name them
(dashboard, alarms, workflows) read them here instead of referencing each other."""

from __future__ import annotations

from dataclasses import dataclass

from sim2cloud import contract
from stacks.config import EnvironmentSettings


@dataclass(frozen=True)
class PipelineNames:
    settings: EnvironmentSettings

    def _name(self, suffix: str) -> str:
        return self.settings.resource_name(suffix)

    @property
    def data_bucket(self) -> str:
        """Globally unique, so account and region are part of it; fixed so every stack can build its ARNs."""
        return self._name(f"data-{self.settings.account}-{self.settings.region}")

    @property
    def failure_topic(self) -> str:
        return self._name("failures")

    @property
    def dashboard(self) -> str:
        return self._name("pipeline")

    @property
    def job_queue(self) -> str:
        return self._name("render")

    @property
    def render_job_definition(self) -> str:
        return self._name("render-shard")

    @property
    def finalize_job_definition(self) -> str:
        return self._name("render-finalize")

    @property
    def batch_failure_rule(self) -> str:
        return self._name("render-job-failed")

    @property
    def render_launcher_function(self) -> str:
        return self._name("render-launcher")

    @property
    def training_launcher_function(self) -> str:
        return self._name("training-launcher")

    @property
    def model_gate_function(self) -> str:
        return self._name("model-gate")

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.render_launcher_function, self.training_launcher_function, self.model_gate_function)

    @property
    def isaac_sim_repository(self) -> str:
        return self._name("isaac-sim")

    @property
    def isaac_sim_base_repository(self) -> str:
        return self._name("isaac-sim-base")

    @property
    def yolo_repository(self) -> str:
        return self._name("yolo")

    @property
    def image_repositories(self) -> tuple[str, ...]:
        """The repositories the images workflow pushes to (the base mirror is pushed by a person, once)."""
        return (self.isaac_sim_repository, self.yolo_repository)

    @property
    def model_package_group(self) -> str:
        return self._name("detector")

    @property
    def endpoint(self) -> str:
        return self._name("detector")

    @property
    def variant(self) -> str:
        return "AllTraffic"

    @property
    def training_job_prefix(self) -> str:
        """The launcher names jobs ``<contract prefix>...``; SageMaker ARNs for IAM use this prefix."""
        return contract.TRAINING_JOB_NAME_PREFIX

    @property
    def metric_line_prefix(self) -> str:
        return contract.METRIC_LINE_PREFIX
