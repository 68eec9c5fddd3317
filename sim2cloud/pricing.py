"""The dated price table and the cost estimates built from it (stdlib only: the run report uses it anywhere).

Every price is an AWS **list price** (on-demand, Linux, USD) for one region on one date, with the page it comes
from. Prices change and differ by region: an estimate says which table it used, and ``PRICES_AS_OF`` is the
date to check them again. Spot capacity is billed below these prices (EC2 Spot and SageMaker managed spot
training save up to 90%); SageMaker reports a managed-spot job's saving in ``BillableTimeInSeconds``, which is
billed at the on-demand rate, so a cloud run's training cost is exact at list price; a Batch spot job's cost
is given as its on-demand upper bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PRICES_REGION = "us-east-1"
PRICES_AS_OF = "2026-12-01"
HOURS_PER_MONTH = 730
"""AWS's own convention for monthly figures (8,760 hours / 12)."""

EC2_ON_DEMAND_URL = "https://aws.amazon.com/ec2/pricing/on-demand/"
SAGEMAKER_URL = "https://aws.amazon.com/sagemaker/pricing/"
PRIVATELINK_URL = "https://aws.amazon.com/privatelink/pricing/"
KMS_URL = "https://aws.amazon.com/kms/pricing/"
CLOUDWATCH_URL = "https://aws.amazon.com/cloudwatch/pricing/"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    """``hour`` (per instance-hour, billed per second), ``month`` or ``endpoint-AZ-hour``."""
    source: str


EC2_HOURLY: Mapping[str, Price] = {
    # AWS Batch render fleet (stacks/config.py RenderSettings.instance_types); Batch adds no charge of its own.
    "g5.2xlarge": Price(1.212, "hour", EC2_ON_DEMAND_URL),
    "g6.2xlarge": Price(0.9776, "hour", EC2_ON_DEMAND_URL),
    "g6e.2xlarge": Price(2.24208, "hour", EC2_ON_DEMAND_URL),
}
SAGEMAKER_TRAINING_HOURLY: Mapping[str, Price] = {
    "ml.g5.xlarge": Price(1.408, "hour", SAGEMAKER_URL),
    "ml.g5.2xlarge": Price(1.515, "hour", SAGEMAKER_URL),
}
SAGEMAKER_HOSTING_HOURLY: Mapping[str, Price] = {
    "ml.c6i.xlarge": Price(0.204, "hour", SAGEMAKER_URL),
    "ml.c6i.2xlarge": Price(0.408, "hour", SAGEMAKER_URL),
}
INTERFACE_ENDPOINT_AZ_HOURLY = Price(0.01, "endpoint-AZ-hour", PRIVATELINK_URL)
KMS_KEY_MONTHLY = Price(1.0, "month", KMS_URL)
DASHBOARD_MONTHLY = Price(3.0, "month", CLOUDWATCH_URL)
"""Per dashboard beyond the free tier's three per account."""
ALARM_MONTHLY = Price(0.10, "month", CLOUDWATCH_URL)
"""Per standard-resolution metric alarm beyond the free tier's ten per account."""


class UnknownPrice(KeyError):
    """An instance type the table does not list: add it with its date and source."""


def _hourly(table: Mapping[str, Price], instance_type: str) -> Price:
    try:
        return table[instance_type]
    except KeyError:
        raise UnknownPrice(f"{instance_type}: no list price in sim2cloud/pricing.py ({', '.join(table)})") from None


@dataclass(frozen=True)
class CostLine:
    what: str
    instance_type: str
    seconds: float
    usd_per_hour: float
    spot: bool
    note: str = ""

    @property
    def usd(self) -> float:
        return self.seconds / 3600 * self.usd_per_hour

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "instance_type": self.instance_type,
            "seconds": round(self.seconds, 1),
            "usd_per_hour": self.usd_per_hour,
            "spot": self.spot,
            "usd": round(self.usd, 4),
            "note": self.note,
        }


def batch_job_cost(what: str, instance_type: str, seconds: float, spot: bool) -> CostLine:
    """A Batch job's instance time at on-demand list price (an upper bound when it ran on spot)."""
    note = "spot: at most this (on-demand list price)" if spot else ""
    return CostLine(what, instance_type, seconds, _hourly(EC2_HOURLY, instance_type).usd, spot, note)


def training_job_cost(instance_type: str, billable_seconds: float, spot: bool, instances: int = 1) -> CostLine:
    """SageMaker training: BillableTimeInSeconds (already net of the managed-spot saving) x instances."""
    note = "managed spot: billable time is net of the spot saving" if spot else ""
    price = _hourly(SAGEMAKER_TRAINING_HOURLY, instance_type).usd
    return CostLine("training", instance_type, billable_seconds * instances, price, spot, note)


def run_cost(lines: Iterable[CostLine]) -> dict[str, Any]:
    """The per-run estimate as a document: lines, total and the table it was priced from."""
    listed = list(lines)
    return {
        "lines": [line.as_dict() for line in listed],
        "total_usd": round(sum(line.usd for line in listed), 4),
        "prices": {"region": PRICES_REGION, "as_of": PRICES_AS_OF, "kind": "AWS list prices, on-demand, USD"},
    }


@dataclass(frozen=True)
class StandingResources:
    """What an environment keeps running whether or not anything is rendered or trained."""

    interface_endpoints: int
    availability_zones: int
    kms_keys: int
    dashboards: int
    alarms: int
    endpoint_instance_type: str
    endpoint_min_instances: int


def standing_resources(templates: Mapping[str, Mapping[str, Any]], serving: bool) -> StandingResources:
    """What stays on, counted in an environment's synthesized CloudFormation templates (lifecycle -> template):
    interface endpoints and their subnets (one per AZ), KMS keys, dashboards, alarms, and the endpoint's
    variant type and autoscaling minimum. Without ``serving``, resources that exist only with an approved
    model package (those with a CloudFormation ``Condition``: the endpoint and its key and alarms) are left
    out."""
    resources = [
        r
        for template in templates.values()
        for r in template.get("Resources", {}).values()
        if serving or "Condition" not in r
    ]

    def of_type(cfn_type: str) -> list[Mapping[str, Any]]:
        return [r.get("Properties", {}) for r in resources if r.get("Type") == cfn_type]

    interfaces = [e for e in of_type("AWS::EC2::VPCEndpoint") if e.get("VpcEndpointType") == "Interface"]
    variants = [v for c in of_type("AWS::SageMaker::EndpointConfig") for v in c.get("ProductionVariants", [])]
    minimums = [int(t.get("MinCapacity", 0)) for t in of_type("AWS::ApplicationAutoScaling::ScalableTarget")]
    return StandingResources(
        interface_endpoints=len(interfaces),
        availability_zones=max((len(e.get("SubnetIds", [])) for e in interfaces), default=0),
        kms_keys=len(of_type("AWS::KMS::Key")),
        dashboards=len(of_type("AWS::CloudWatch::Dashboard")),
        alarms=len(of_type("AWS::CloudWatch::Alarm")),
        endpoint_instance_type=str(variants[0]["InstanceType"]) if variants else "",
        endpoint_min_instances=max(minimums, default=0) if variants else 0,
    )


def standing_monthly_cost(resources: StandingResources) -> dict[str, float]:
    """Monthly USD per always-on item at list price, no free tier counted (the endpoint's instances exist only
    once a model package is approved: the endpoint stack holds none before)."""
    endpoint_hourly = (
        _hourly(SAGEMAKER_HOSTING_HOURLY, resources.endpoint_instance_type).usd
        if resources.endpoint_min_instances
        else 0.0
    )
    costs = {
        "VPC interface endpoints": resources.interface_endpoints
        * resources.availability_zones
        * INTERFACE_ENDPOINT_AZ_HOURLY.usd
        * HOURS_PER_MONTH,
        "KMS keys": resources.kms_keys * KMS_KEY_MONTHLY.usd,
        "CloudWatch dashboard": resources.dashboards * DASHBOARD_MONTHLY.usd,
        "CloudWatch alarms": resources.alarms * ALARM_MONTHLY.usd,
        "endpoint minimum instances": resources.endpoint_min_instances * endpoint_hourly * HOURS_PER_MONTH,
    }
    return {name: round(value, 2) for name, value in costs.items()}
