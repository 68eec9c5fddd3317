"""Costs against the synthesized environments: every instance type a stack can launch has a list price, and the
README's standing monthly cost is what the templates keep running."""

from __future__ import annotations

from pathlib import Path

from infra_assembly import Synthesized

from sim2cloud import pricing

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_configured_instance_type_has_a_price(env: Synthesized) -> None:
    settings = env.settings
    assert set(settings.render.instance_types) <= set(pricing.EC2_HOURLY)
    assert settings.training.instance_type in pricing.SAGEMAKER_TRAINING_HOURLY
    assert settings.endpoint.instance_type in pricing.SAGEMAKER_HOSTING_HOURLY


def standing_row(env: Synthesized) -> str:
    """The README table's row for ``env``: idle (no model served) and serving, from its templates."""
    idle = pricing.standing_resources(env.templates, serving=False)
    serving = pricing.standing_resources(env.templates, serving=True)
    idle_cost, serving_cost = pricing.standing_monthly_cost(idle), pricing.standing_monthly_cost(serving)
    return (
        f"| `{env.settings.name}` | {idle.interface_endpoints} x {idle.availability_zones} AZ: "
        f"${idle_cost['VPC interface endpoints']:.2f} | {idle.kms_keys}: ${idle_cost['KMS keys']:.2f} | "
        f"${idle_cost['CloudWatch dashboard'] + idle_cost['CloudWatch alarms']:.2f} | "
        f"**${sum(idle_cost.values()):.2f}** | "
        f"{serving.endpoint_min_instances} x {serving.endpoint_instance_type}: "
        f"${serving_cost['endpoint minimum instances']:.2f} | **${sum(serving_cost.values()):.2f}** |"
    )


def test_the_readme_states_the_standing_cost_of_each_environment(env: Synthesized) -> None:
    idle = pricing.standing_resources(env.templates, serving=False)
    serving = pricing.standing_resources(env.templates, serving=True)
    assert idle.interface_endpoints > 0 and idle.kms_keys > 0 and idle.endpoint_min_instances == 0
    assert serving.endpoint_instance_type == env.settings.endpoint.instance_type
    assert serving.endpoint_min_instances == env.settings.endpoint.min_capacity
    row = standing_row(env)
    assert row in README.read_text(), f"README's standing-cost row for {env.settings.name} should be:\n{row}"
    assert f"as of {pricing.PRICES_AS_OF}" in README.read_text()
