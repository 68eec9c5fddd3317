"""EventBridge rule targets whose permission is granted by the target's own stack, with conditions.

CDK's ``targets.SnsTopic`` adds ``sns:Publish`` and the topic key's use for ``events.amazonaws.com`` with no
condition, i.e. on behalf of ANY account's rule (the confused deputy). Here the topic's stack grants them for
one named rule of this account instead (MonitoringStack), and the rule's target only points at the topic.
"""

from __future__ import annotations

import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk.interfaces import aws_events as events_refs


@jsii.implements(events.IRuleTarget)
class PreauthorizedTopic:
    """An SNS topic whose policy already lets this rule publish (see MonitoringStack.allow_rule_to_publish)."""

    def __init__(self, topic: sns.ITopic) -> None:
        self._topic = topic

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        del rule, id  # the topic policy already names the rule
        return events.RuleTargetConfig(arn=self._topic.topic_arn)
