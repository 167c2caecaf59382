"""Reading typed settings from the environment and the `.env` file: the reader behind `config.py`.

Every error names the setting, so a bad value stops start-up with one line. `ConfigError` lives here and
is re-exported by `config`.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the setting."""


class EnvReader:
    """Reads typed settings from a mapping and names the setting in every error."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        return default if value is None else value

    def int(
        self, name: builtins.str, default: int, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ConfigError(f"{name}: must be between {minimum} and {maximum}, got {value}")
        return value

    def float(self, name: builtins.str, default: float, minimum: float = 0.0) -> float:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
        return value

    def bool(self, name: builtins.str, default: bool) -> bool:
        raw = self.raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")

    def json(self, name: builtins.str, default: Any) -> Any:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: not valid JSON ({exc.msg} at position {exc.pos})") from None

    def list(self, name: builtins.str, default: list[builtins.str] | None = None) -> list[builtins.str]:
        raw = self.raw(name)
        if raw is None:
            return list(default or [])
        return [part.strip() for part in raw.split(",") if part.strip()]

    def timezone(self, name: builtins.str, default: builtins.str) -> builtins.str:
        value = self.str(name, default) or default
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{name}: unknown time zone {value!r}") from None
        return value


def read_environment(environ: Mapping[str, str] | None, base_dir: Path) -> dict[str, str]:
    """The process environment over `base_dir/.env` (the real environment wins)."""
    if environ is not None:
        return dict(environ)
    merged = {k: v for k, v in dotenv_values(base_dir / ".env").items() if v is not None}
    merged.update(os.environ)
    return merged
