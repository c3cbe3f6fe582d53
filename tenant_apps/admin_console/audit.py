"""Recording what admins change (the audit log)."""

from __future__ import annotations

from typing import Any

from .models import AuditEntry


def audit_record(
    *, actor, action: str, target: str = "", changes: dict[str, Any] | None = None
) -> AuditEntry:
    """Record one change. `changes` maps a field to [before, after] (values as text); call it inside
    the transaction that makes the change, so both happen or neither does."""
    label = f"{actor.full_name} <{actor.email}>" if actor is not None and actor.pk else "System"
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_label=label[:200],
        action=action[:60],
        target=target[:200],
        changes={key: [_text(before), _text(after)] for key, (before, after) in (changes or {}).items()},
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """The fields whose value changed: field → [before, after]."""
    return {key: [before.get(key), after[key]] for key in after if before.get(key) != after[key]}


def _text(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
