"""The dated price table and the cost estimates."""

from __future__ import annotations

import pytest

from sim2cloud import pricing


def test_a_training_job_costs_its_billable_time_at_the_list_price() -> None:
    line = pricing.training_job_cost("ml.g5.xlarge", billable_seconds=1800, spot=True)
    assert line.usd == pytest.approx(pricing.SAGEMAKER_TRAINING_HOURLY["ml.g5.xlarge"].usd / 2)
    assert "net of the spot saving" in line.note
    two = pricing.training_job_cost("ml.g5.xlarge", billable_seconds=1800, spot=False, instances=2)
    assert two.usd == pytest.approx(2 * line.usd)


def test_a_run_estimate_adds_its_lines_and_names_its_prices() -> None:
    estimate = pricing.run_cost(
        [
            pricing.batch_job_cost("render", "g6.2xlarge", 3600, spot=True),
            pricing.training_job_cost("ml.g5.xlarge", 3600, spot=False),
        ]
    )
    assert estimate["total_usd"] == pytest.approx(0.9776 + 1.408)
    assert estimate["lines"][0]["note"].startswith("spot: at most")
    assert estimate["prices"] == {
        "region": pricing.PRICES_REGION,
        "as_of": pricing.PRICES_AS_OF,
        "kind": "AWS list prices, on-demand, USD",
    }


def test_an_unlisted_instance_type_says_where_to_add_it() -> None:
    with pytest.raises(pricing.UnknownPrice, match=r"ml\.p5\.48xlarge: no list price in sim2cloud/pricing\.py"):
        pricing.training_job_cost("ml.p5.48xlarge", 60, spot=False)


def test_every_price_names_its_source_page() -> None:
    tables = (pricing.EC2_HOURLY, pricing.SAGEMAKER_TRAINING_HOURLY, pricing.SAGEMAKER_HOSTING_HOURLY)
    prices = [p for table in tables for p in table.values()]
    prices += [pricing.INTERFACE_ENDPOINT_AZ_HOURLY, pricing.KMS_KEY_MONTHLY, pricing.DASHBOARD_MONTHLY]
    assert all(p.source.startswith("https://aws.amazon.com/") and p.usd > 0 for p in prices)
