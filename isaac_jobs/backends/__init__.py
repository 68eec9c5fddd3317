"""Render backends: ``gl`` (moderngl over EGL, runs anywhere) and ``isaac`` (Isaac Sim Replicator).

Both render the same per-frame ``scene.ScenePlan`` (drawn by the one ``scene.SceneSampler``) from the batch's
USD assets; they only render: ``isaac_jobs.shards`` writes, describes and commits every shard.
"""

from __future__ import annotations

BACKENDS = ("gl", "isaac")


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run on this machine; the message says what is missing and how to get it."""
