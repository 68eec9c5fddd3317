"""Render backends: ``gl`` (moderngl over EGL, runs anywhere) and ``isaac`` (Isaac Sim Replicator).

Both read the same ``SceneSpec`` and produce the same shard layout through ``dataset.ShardWriter``.
"""

from __future__ import annotations

BACKENDS = ("gl", "isaac")


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run on this machine; the message says what is missing and how to get it."""
