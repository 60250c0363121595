"""The time zone names a request may give: IANA names, checked before any query runs."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

# `available_timezones()` lists every TZif file of the system's zoneinfo folder, which also holds
# `localtime` (a link to the host's zone, unknown to PostgreSQL: a 500), `posixrules` and the
# placeholder `Factory`; none of them names a place.
_NOT_LOCATIONS = frozenset({"localtime", "posixrules", "Factory"})
_NOT_IANA_PREFIXES = ("posix/", "right/")


@lru_cache(maxsize=1)
def iana_names() -> frozenset[str]:
    return frozenset(
        name
        for name in available_timezones()
        if name not in _NOT_LOCATIONS and not name.startswith(_NOT_IANA_PREFIXES)
    )


def iana_zone(name: str) -> ZoneInfo | None:
    """The zone of an IANA name, or None for anything else (POSIX strings such as `UTC+7`,
    whose sign is the reverse of what sellers expect, files such as `localtime`)."""
    if name not in iana_names():
        return None
    return ZoneInfo(name)
