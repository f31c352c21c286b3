"""Time in one place: UTC for storage, the store's time zone for business dates and display."""

from __future__ import annotations

import os
from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def utcnow() -> datetime:
    """Aware UTC, whole seconds (the store keeps UTC; SQLModel's UTCDateTime refuses naive values)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def system_timezone_name() -> str:
    """The machine's IANA zone name (TZ, else /etc/localtime's target), or UTC when unknown."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _valid_zone(tz):
        return tz
    try:
        target = Path("/etc/localtime").resolve()
        parts = target.parts
        if "zoneinfo" in parts:
            name = "/".join(parts[parts.index("zoneinfo") + 1:])
            if _valid_zone(name):
                return name
    except OSError:
        pass
    return "UTC"


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_to_utc(value: datetime, tz: ZoneInfo) -> datetime:
    """A naive local wall time in ``tz`` (or an aware time) → aware UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(timezone.utc)


def utc_to_local(value: datetime, tz: ZoneInfo) -> datetime:
    """A stored time (aware, or naive meaning UTC) → aware in ``tz``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(tz)


def start_of_day_utc(day: date, tz: ZoneInfo) -> datetime:
    return local_to_utc(datetime.combine(day, time.min), tz)


def today(tz: ZoneInfo) -> date:
    return datetime.now(tz).date()
