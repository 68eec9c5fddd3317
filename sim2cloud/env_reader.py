"""Typed parsing of environment variables: each Lambda function (at cold start) and each render job builds one
frozen settings object with it.

Every reader records the problem instead of raising at once, so a misconfigured function or job reports every
missing or invalid variable (by its name from :class:`sim2cloud.contract.Env`) in one error. Stdlib only: it
ships beside the contract in the Lambda bundles and the Isaac Sim image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sim2cloud import contract


class SettingsError(ValueError):
    """The environment is missing variables or holds invalid values; the message names each."""


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class EnvReader:
    """Reads and checks variables from a mapping (``os.environ`` in Lambda), collecting every problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []

    def text(self, name: str, *, default: str | None = None) -> str:
        """A non-empty string; required unless ``default`` is given."""
        value = self._env.get(name, "").strip()
        if value:
            return value
        if default is None:
            self.problems.append(f"{name} is not set")
            return ""
        return default

    def optional_text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def identifier(self, name: str, what: str) -> str:
        """A required safe path segment (:func:`sim2cloud.contract.check_id`): a batch or run id."""
        return self._checked(name, what, contract.check_id)

    def user_name(self, name: str, what: str) -> str:
        """A required batch or class name as the user wrote it (``kitchen set 2``): :func:`contract.check_name`."""
        return self._checked(name, what, contract.check_name)

    def _checked(self, name: str, what: str, check: Callable[[str, str], str]) -> str:
        value = self.text(name)
        if not value:
            return ""
        try:
            return check(value, what)
        except ValueError as err:
            self.problems.append(f"{name}: {err}")
            return ""

    def integer(self, name: str, *, default: int | None = None, minimum: int | None = None) -> int:
        raw = self._env.get(name, "").strip()
        if not raw:
            if default is None:
                self.problems.append(f"{name} is not set")
                return 0
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not an integer")
            return default or 0
        if minimum is not None and value < minimum:
            self.problems.append(f"{name}={value} must be at least {minimum}")
        return value

    def number(self, name: str, *, default: float | None = None, low: float, high: float) -> float:
        raw = self._env.get(name, "").strip()
        if not raw:
            if default is None:
                self.problems.append(f"{name} is not set")
                return 0.0
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default or 0.0
        if not low <= value <= high:
            self.problems.append(f"{name}={value} must be between {low} and {high}")
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        raw = self._env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean (use true or false)")
        return default

    def choice(self, name: str, choices: tuple[str, ...], *, default: str) -> str:
        value = self._env.get(name, "").strip() or default
        if value not in choices:
            self.problems.append(f"{name}={value!r} is not one of {list(choices)}")
        return value

    def json_object(self, name: str) -> dict[str, Any]:
        """A JSON object (empty when unset)."""
        raw = self._env.get(name, "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            self.problems.append(f"{name} is not valid JSON ({err.msg} at position {err.pos})")
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{name} must be a JSON object, got {type(value).__name__}")
            return {}
        return value

    def raise_if_problems(self, what: str) -> None:
        """Raise SettingsError naming ``what`` (the function or job) and every problem found."""
        if self.problems:
            raise SettingsError(f"{what} settings: " + "; ".join(self.problems))
