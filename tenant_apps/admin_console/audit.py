"""Recording what admins change and the institution's security events (the audit log)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from .models import AuditEntry

# The audit page's categories: action prefixes (ending in ".") or whole action names. "security" is
# what docs/security.md ("Security events") lists: sign-ins and their failures, lockouts, passwords,
# API tokens, role and access changes, settings, exports and key rotation.
CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "security": (
        "Security events",
        (
            "auth.",
            "export.",
            "keys.",
            "settings.",
            "branding.",
            "domain.",
            "member.role_changed",
            "member.deactivated",
            "member.reactivated",
            "member.deleted",
            "mentor.approved",
            "mentor.rejected",
        ),
    ),
    "signins": ("Sign-ins, lockouts and passwords", ("auth.",)),
    "members": ("Members and roles", ("member.", "members.", "mentor.")),
    "settings": ("Settings, branding and domains", ("settings.", "branding.", "domain.")),
    "exports": ("Exports", ("export.",)),
    "keys": ("Key rotation", ("keys.",)),
}


def category_filter(category: str) -> Q | None:
    """The entries of a category (None for an unknown one: no filter)."""
    if category not in CATEGORIES:
        return None
    query = Q()
    for pattern in CATEGORIES[category][1]:
        query |= Q(action__startswith=pattern) if pattern.endswith(".") else Q(action=pattern)
    return query


def _request_address() -> str:
    """The client address of the request being served, if any (not in Celery tasks or commands)."""
    from shared.core.middleware import current_request_var
    from shared.core.throttling import client_address

    request = current_request_var.get()
    return client_address(request) if request is not None else ""


def audit_record(
    *,
    actor,
    action: str,
    target: str = "",
    changes: dict[str, Any] | None = None,
    address: str | None = None,
    actor_label: str = "",
) -> AuditEntry:
    """Record one change or security event (one INSERT). `changes` maps a field to [before, after]
    (values as text); call it inside the transaction that makes the change, so both happen or
    neither does. `address` defaults to the client address of the current request; `actor_label`
    names an actor who is not a member of the institution (an anonymous visitor, platform staff,
    the platform's operators)."""
    if actor is not None and actor.pk:
        label = f"{actor.full_name} <{actor.email}>"
    else:
        label = actor_label or "System"
    if address is None:
        address = _request_address()
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_label=label[:200],
        action=action[:60],
        target=target[:200],
        changes={key: [_text(before), _text(after)] for key, (before, after) in (changes or {}).items()},
        address=address or None,
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """The fields whose value changed: field → [before, after]."""
    return {key: [before.get(key), after[key]] for key in after if before.get(key) != after[key]}


def _text(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
