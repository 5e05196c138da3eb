"""The one UTC clock of the platform."""

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Current time as a timezone-aware UTC ``datetime``."""
    return datetime.now(timezone.utc)
