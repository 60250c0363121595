"""Reply templates: plain substitution of the documented placeholders, nothing evaluated.

`str.format` would run format specs and attribute lookups from a seller's text
(`{buyerName:>2000000}` built a 2 MB message; `{buyerName.x}` raised and stopped every later
reply of the job), so a template is only ever searched for `{name}` of the names below."""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS = ("buyerName", "orderNumber", "lines", "waitlist", "total", "currency")
# Meta's Send API refuses a text message longer than 2,000 characters.
MAX_MESSAGE_CHARS = 2000
_ELLIPSIS = "…"
_PLACEHOLDER = re.compile(r"\{([A-Za-z]{1,32})\}")
# Anything between braces that is not a documented name: `{buyer}`, `{total!r}`, `{0}`.
_BRACED = re.compile(r"\{[^{}\s][^{}\n]{0,63}\}")


def unknown_placeholders(template: str) -> list[str]:
    """The `{...}` of a template that are not documented placeholders, in order, once each."""
    known = {"{" + name + "}" for name in PLACEHOLDERS}
    return list(dict.fromkeys(m for m in _BRACED.findall(template) if m not in known))


def check_template(template: str | None) -> str | None:
    """For the schema validators: a ValueError naming the first unknown placeholders."""
    if template is None:
        return None
    unknown = unknown_placeholders(template)
    if unknown:
        names = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise ValueError(
            f"unknown placeholder {', '.join(unknown[:5])}; the template may use {names}"
        )
    return template


def fill(template: str, fields: Mapping[str, str], *, internal: tuple[str, ...] = ()) -> str:
    """Each documented placeholder replaced by its value (values are not searched again);
    anything else stays as written. `internal`: names only our own texts use (a seller's
    template never gets them). At most MAX_MESSAGE_CHARS characters."""
    allowed = {*PLACEHOLDERS, *internal}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return fields.get(name, match.group(0)) if name in allowed else match.group(0)

    message = _PLACEHOLDER.sub(value, template)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - len(_ELLIPSIS)] + _ELLIPSIS
    return message
