"""Security properties of every synthesized environment: encryption, private buckets, TLS-only access,
least-privilege IAM with every wildcard acknowledged."""

from __future__ import annotations

from typing import Any

from infra_assembly import Synthesized


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _denies_insecure_transport(document: dict[str, Any]) -> bool:
    return any(
        statement["Effect"] == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for statement in document["Statement"]
    )


def _policy_ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def test_buckets_are_encrypted_private_and_tls_only(env: Synthesized) -> None:
    buckets = env.resources("AWS::S3::Bucket")
    policies = env.resources("AWS::S3::BucketPolicy")
    assert len(buckets) == 2  # the data bucket and its access-log bucket
    for logical_id, (_, bucket) in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        assert props["VersioningConfiguration"]["Status"] == "Enabled"
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        if "LoggingConfiguration" in props:  # the data bucket: KMS CMK; access logs go to the other bucket
            assert rule["SSEAlgorithm"] == "aws:kms" and "KMSMasterKeyID" in rule
            assert props["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
        else:  # S3 log delivery cannot write SSE-KMS
            assert rule["SSEAlgorithm"] == "AES256"
        policy = [p for p in policies.values() if _policy_ref(p[1]["Properties"]["Bucket"]) == logical_id]
        assert policy and _denies_insecure_transport(policy[0][1]["Properties"]["PolicyDocument"]), logical_id


def test_no_bucket_notification_custom_resource(env: Synthesized) -> None:
    # S3 -> EventBridge through the bucket property: no Lambda-backed notification handler anywhere.
    assert not env.resources("Custom::S3BucketNotifications")


def test_queues_topics_keys_and_logs_are_encrypted(env: Synthesized) -> None:
    queues = env.resources("AWS::SQS::Queue")
    assert queues
    for logical_id, (_, queue) in queues.items():
        assert "KmsMasterKeyId" in queue["Properties"], logical_id
    queue_policies = [p["Properties"] for _, p in env.resources("AWS::SQS::QueuePolicy").values()]
    for logical_id in queues:
        assert any(
            {"Ref": logical_id} in policy["Queues"] and _denies_insecure_transport(policy["PolicyDocument"])
            for policy in queue_policies
        ), f"{logical_id} has no TLS-only policy"
    for logical_id, (_, topic) in env.resources("AWS::SNS::Topic").items():
        assert "KmsMasterKeyId" in topic["Properties"], logical_id
    for logical_id, (_, key) in env.resources("AWS::KMS::Key").items():
        assert key["Properties"]["EnableKeyRotation"] is True, logical_id
    for logical_id, (_, group) in env.resources("AWS::Logs::LogGroup").items():
        assert "KmsKeyId" in group["Properties"], logical_id
        assert group["Properties"]["RetentionInDays"] == env.settings.log_retention_days, logical_id
    for logical_id, (_, function) in env.resources("AWS::Lambda::Function").items():
        if "Environment" in function["Properties"]:
            assert "KmsKeyArn" in function["Properties"], logical_id


def test_endpoint_config_encrypts_volumes_and_capture(env: Synthesized) -> None:
    (config,) = [c for _, c in env.resources("AWS::SageMaker::EndpointConfig").values()]
    assert "KmsKeyId" in config["Properties"]
    capture = config["Properties"].get("DataCaptureConfig")
    assert (capture is not None) == env.settings.endpoint.data_capture
    if capture:
        assert "KmsKeyId" in capture


def _statements(env: Synthesized) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(logical id, statement, resource) for every identity-policy statement in every stack."""
    out = []
    for cfn_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, (_, resource) in env.resources(cfn_type).items():
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                out.append((logical_id, statement, resource))
    for logical_id, (_, role) in env.resources("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                out.append((logical_id, statement, role))
    return out


def test_no_iam_action_wildcard(env: Synthesized) -> None:
    for logical_id, statement, _ in _statements(env):
        for action in _as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{logical_id}: {action}"


def test_every_resource_star_is_acknowledged(env: Synthesized) -> None:
    checked = 0
    for logical_id, statement, resource in _statements(env):
        if "*" in _as_list(statement.get("Resource", [])):
            acknowledged = {
                rule["id"]: rule["reason"]
                for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
            }
            reason = acknowledged.get("AwsSolutions-IAM5[Resource::*]", "")
            assert reason.strip(), f"{logical_id}: Resource '*' for {statement['Action']} without acknowledgement"
            checked += 1
    assert checked  # ECR auth tokens and X-Ray exist in every environment


def test_render_roles_are_scoped_to_their_prefixes(env: Synthesized) -> None:
    render = env.templates["Render"]["Resources"]
    names = {lid: r for lid, r in render.items() if r["Type"] == "AWS::IAM::Policy" and "RenderJobRole" in lid}
    (policy,) = names.values()
    text = str(policy["Properties"]["PolicyDocument"])
    bucket = f"sim2cloud-{env.settings.name}-data-{env.settings.account}-{env.settings.region}"
    assert f"{bucket}/meshes/*" in text and f"{bucket}/renders/*" in text and f"{bucket}/assets/*" in text
    assert f"{bucket}/datasets/*" not in text and f"{bucket}/models/*" not in text


def test_ci_role_trusts_only_the_repository_environment(env: Synthesized) -> None:
    roles = env.resources("AWS::IAM::Role")
    ((role_id, (_, role)),) = [
        (lid, r) for lid, r in roles.items() if "GitHub" in str(r[1]["Properties"].get("Description"))
    ]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = trust["Condition"]["StringEquals"]
    ci = env.settings.ci
    assert conditions["token.actions.githubusercontent.com:sub"] == (
        f"repo:{ci.github_repository}:environment:{ci.github_environment}"
    )
    assert conditions["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    (policy,) = [
        p for _, p in env.resources("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assume, describe = policy["Properties"]["PolicyDocument"]["Statement"]
    assert assume["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert ":role/cdk-hnb659fds-*-" in str(assume["Resource"])
    assert describe["Action"] == "sagemaker:DescribeModelPackage"
    assert f"model-package/sim2cloud-{env.settings.name}-detector/*" in str(describe["Resource"])
