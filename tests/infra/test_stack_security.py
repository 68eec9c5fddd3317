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


def test_ci_roles_trust_only_the_named_repository(env: Synthesized) -> None:
    roles = {
        lid: role
        for lid, (_, role) in env.resources("AWS::IAM::Role").items()
        if "GitHub" in str(role["Properties"].get("Description")) or "pull requests" in str(role["Properties"])
    }
    ci = env.settings.ci
    subjects = {}
    for role_id, role in roles.items():
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert set(trust["Condition"]) == {"StringEquals"}  # exact claims: no StringLike wildcards
        conditions = trust["Condition"]["StringEquals"]
        assert conditions["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        subjects[role_id] = conditions["token.actions.githubusercontent.com:sub"]
    assert sorted(subjects.values()) == sorted(
        [
            f"repo:{ci.github_repository}:environment:{ci.github_environment}",
            f"repo:{ci.github_repository}:pull_request",
        ]
    )
    (deploy_id,) = [lid for lid, sub in subjects.items() if sub.endswith(f":environment:{ci.github_environment}")]
    (diff_id,) = [lid for lid, sub in subjects.items() if sub.endswith(":pull_request")]
    policies = {
        role_id: [
            statement
            for _, p in env.resources("AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            for statement in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        for role_id in (deploy_id, diff_id)
    }
    deploy_actions = {a for s in policies[deploy_id] for a in _as_list(s["Action"])}
    assert {"sts:AssumeRole", "sts:TagSession", "sagemaker:DescribeModelPackage", "ecr:PutImage"} <= deploy_actions
    assert ":role/cdk-hnb659fds-*-" in str(policies[deploy_id])
    pushed = {str(r) for s in policies[deploy_id] if "ecr:PutImage" in _as_list(s["Action"]) for r in s["Resource"]}
    assert len(pushed) == 2 and all("isaac-sim" in r or "-yolo" in r for r in pushed)
    # The pull-request role only reads: it may assume the CDK lookup role and nothing else.
    (diff,) = policies[diff_id]
    assert diff["Action"] == "sts:AssumeRole"
    assert ":role/cdk-hnb659fds-lookup-role-" in str(diff["Resource"])


# Services that sign their KMS requests with the resource's ARN as encryption context instead of aws:Source*:
# CloudWatch Logs (the condition names this account's log groups, as AWS documents for log-group keys).
_CONTEXT_CONDITIONS = {"kms:EncryptionContext:aws:logs:arn"}


def _references_resource_of(template: dict[str, Any], value: dict[str, Any]) -> bool:
    target = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
    return target in template["Resources"]


def test_service_principals_act_only_for_this_account(env: Synthesized) -> None:
    """Every key or resource policy granting a service principal says on behalf of whom (confused deputy)."""
    account = env.settings.account
    checked = 0
    for lifecycle, template in env.templates.items():
        for logical_id, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::Lambda::Permission" and "amazonaws.com" in str(properties["Principal"]):
                assert "SourceArn" in properties or "SourceAccount" in properties, f"{lifecycle} {logical_id}"
                checked += 1
                continue
            if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue  # trust policies and identity policies: no resource is lent to a service here
            for name in ("KeyPolicy", "PolicyDocument", "RepositoryPolicyText"):
                document = properties.get(name)
                if not isinstance(document, dict):
                    continue
                for statement in document["Statement"]:
                    principal = statement.get("Principal")
                    if statement["Effect"] != "Allow" or not isinstance(principal, dict) or "Service" not in principal:
                        continue
                    conditions = {k: v for block in statement.get("Condition", {}).values() for k, v in block.items()}
                    where = f"{lifecycle} {logical_id} {principal['Service']}"
                    scoped = {"aws:SourceAccount", "aws:SourceArn"} | _CONTEXT_CONDITIONS
                    assert scoped & set(conditions), f"{where}: no aws:SourceAccount/aws:SourceArn condition"
                    for key, value in conditions.items():
                        if key == "aws:SourceAccount":
                            assert value in (account, {"Ref": "AWS::AccountId"}), where
                        elif key in {"aws:SourceArn", *_CONTEXT_CONDITIONS}:
                            # An ARN of this account, or of a resource this template creates.
                            text = str(value)
                            own = isinstance(value, dict) and _references_resource_of(template, value)
                            assert account in text or "AWS::AccountId" in text or own, where
                    checked += 1
    assert checked >= 8


def test_each_acknowledgement_reason_matches_its_finding(env: Synthesized) -> None:
    """The training role's two IAM5 findings each carry their own reason (one used to carry the other's)."""
    (role,) = [r for lid, (_, r) in env.resources("AWS::IAM::Role").items() if "SageMakerExecutionRole" in lid]
    reasons = {
        rule["id"]: rule["reason"] for rule in role["Metadata"]["cdk_nag"]["rules_to_suppress"] if "IAM5" in rule["id"]
    }
    log_finding = "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
    ((logs_id, logs_reason),) = [(k, v) for k, v in reasons.items() if k.startswith(log_finding)]
    assert "/aws/sagemaker/TrainingJobs:*" in logs_id
    assert "log" in logs_reason and "GetAuthorizationToken" not in logs_reason
    star = reasons["AwsSolutions-IAM5[Resource::*]"]
    assert "GetAuthorizationToken" in star and "log stream" not in star
