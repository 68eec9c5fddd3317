"""Helpers shared by the three Lambda functions (standard library and boto3 only).

The bundle copies this folder as the package ``shared`` next to each handler, so handlers import
``shared.s3_events``, ``shared.structured_log``, ``shared.outcome``, ``shared.quarantine`` and
``shared.aws_clients``.
"""
