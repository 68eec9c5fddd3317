"""The EventBridge rules of sim2cloud/wiring.py that a stack owns, each with its own encrypted target DLQ, and
the alarm that turns anything in a dead-letter queue into a notification."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sim2cloud import wiring
from stacks.constructs.event_patterns import event_pattern
from stacks.constructs.secure_queue import dead_letter_queue

TARGET_RETRY_ATTEMPTS = 8
"""EventBridge retries a failed delivery this often (over up to 24 h) before the event goes to the rule's DLQ."""

TargetFactory = Callable[[sqs.IQueue], events.IRuleTarget]
"""Builds a rule's target given the dead-letter queue for events it cannot deliver."""


def function_target(function: lambda_.IFunction) -> TargetFactory:
    return lambda dlq: targets.LambdaFunction(function, dead_letter_queue=dlq, retry_attempts=TARGET_RETRY_ATTEMPTS)


def queue_target(queue: sqs.IQueue) -> TargetFactory:
    return lambda dlq: targets.SqsQueue(queue, dead_letter_queue=dlq, retry_attempts=TARGET_RETRY_ATTEMPTS)


def add_wired_rules(
    scope: Construct, inputs: wiring.RuleInputs, targets_here: Mapping[str, TargetFactory], *, key: kms.IKey
) -> list[sqs.Queue]:
    """Every rule of :data:`sim2cloud.wiring.RULES` whose target is in ``targets_here`` (by wiring target name),
    with a target DLQ encrypted with ``key``; returns the DLQs."""
    dead_letters = []
    for wired in wiring.RULES:
        if wired.target not in targets_here:
            continue
        dlq = dead_letter_queue(scope, f"{wired.name}TargetDlq", key=key)
        events.Rule(
            scope,
            wired.name,
            event_pattern=event_pattern(wired.pattern(inputs)),
            targets=[targets_here[wired.target](dlq)],
        )
        dead_letters.append(dlq)
    return dead_letters


def alarm_on_dead_letters(queues: Iterable[sqs.Queue], failure_topic: sns.ITopic) -> None:
    """Anything in a dead-letter queue is a failure a person must see."""
    for queue in queues:
        alarm = cw.Alarm(
            queue,
            "DepthAlarm",
            metric=queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"Messages in dead-letter queue {queue.node.path}",
        )
        alarm.add_alarm_action(cw_actions.SnsAction(failure_topic))
