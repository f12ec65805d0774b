"""Reading settings from the environment; a missing required setting stops start-up by name."""

from __future__ import annotations

import os


class MissingSetting(SystemExit):
    def __init__(self, name: str) -> None:
        super().__init__(f"missing required setting {name} (set it in the environment)")


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "")
    if value:
        return value
    if default is None:
        raise MissingSetting(name)
    return default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise SystemExit(f"setting {name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError as exc:
        raise SystemExit(f"setting {name} must be a number, got {value!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value in ("1", "true", "yes", "on")
