"""Isolation outside the request cycle: cache entries in Redis, and Celery tasks.

Cache: every key in Redis either carries the schema of the institution it belongs to, or is on a
short, documented list of platform-wide keys; a key whose value holds A's data names A's schema.

Celery: every registered task is discovered from the app. A task runs in the schema its message
carries (tenant-schemas-celery); run with B's schema and A's ids, it must touch nothing of A and
send nothing of A. Tasks that run in the public schema are listed below with their reason; any
other task is treated as an institution's, so a new one is covered without editing this file.
"""

from __future__ import annotations

import base64
import inspect
import json
import re

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection, transaction
from django_redis import get_redis_connection
from django_tenants.utils import schema_context, tenant_context
from tenant_schemas_celery.app import CeleryApp

from config.celery import app as celery_app
from shared.reminders.models import DueReminder
from tenant_apps.sessions.directory import FACETS_CACHE_KEY
from tenants.validators import SCHEMA_RE

from .attacks import leaked_markers
from .fingerprint import changed_rows, fingerprint
from .world import World

# --- Cache ----------------------------------------------------------------------------------------

# Keys that belong to no institution, each with what it is. Anything else must name a schema.
PLATFORM_KEYS: dict[str, str] = {
    r"[\w-]+:tenant-directory:generation": "tells every process that institutions or domains changed",
    r"celery": "Celery's default queue (each message carries its schema in its headers)",
    r"_kombu\.binding.*": "Celery's queue bindings",
    r"unacked(_index|_mutex)?": "Celery's late-acknowledgement bookkeeping",
    r"isolation-probe": "the queue this suite sends its probe task to",
    r"asgi:.*": "channels_redis' list-based layer (CHANNEL_LAYER=core); its group names carry the schema",
}


def _redis():
    return get_redis_connection("default")


def _key_schema(key: str) -> str | None:
    """The schema a key names, in the three families of institution keys:
    `<schema>:<prefix>:<version>:<key>` (the cache: django-tenants' make_key),
    `<prefix>:throttle:<counter>:<schema>:…` (abuse counters, shared/core/throttling.py) and
    `live:<schema>.<kind>.<id>:…` (who is in a live room)."""
    parts = key.split(":")
    if len(parts) >= 4 and parts[2].isdigit():
        return parts[0]
    if len(parts) >= 4 and parts[1] == "throttle":
        return parts[3]
    if parts[0] == "live" and len(parts) >= 2:
        return parts[1].split(".", 1)[0]
    return None


def _values(client, key: bytes) -> bytes:
    kind = client.type(key)
    if kind == b"string":
        return client.get(key) or b""
    if kind == b"hash":
        return b"\n".join(k + b"=" + v for k, v in client.hgetall(key).items())
    if kind == b"zset":
        return b"\n".join(client.zrange(key, 0, -1))
    if kind == b"set":
        return b"\n".join(client.smembers(key))
    if kind == b"list":
        return b"\n".join(_message_text(item) for item in client.lrange(key, 0, -1))
    return b""


def _message_text(raw: bytes) -> bytes:
    """A Celery message as its headers and decoded body (the body is base64 in the envelope)."""
    try:
        envelope = json.loads(raw)
        body = base64.b64decode(envelope.get("body", ""))
        return json.dumps(envelope.get("headers", {})).encode() + b"\n" + body
    except (ValueError, TypeError):
        return raw


def _hit_pages(world: World) -> None:
    """Pages that fill the cache: the directory's facets, sessions, sign-in counters, checkouts."""
    for side in (world.a, world.b):
        anonymous, owner, admin = side.client(), side.client("owner"), side.client("admin")
        assert anonymous.get("/mentors/").status_code == 200
        assert anonymous.get(f"/mentors/{side.pk('mentor_profile')}/").status_code == 200
        anonymous.post("/accounts/login/", {"username": "owner@iso.example", "password": "wrong"})
        anonymous.post("/api/v1/auth/token/", {"email": "owner@iso.example", "password": "wrong"})
        assert owner.get("/sessions/").status_code == 200
        assert (
            owner.get(
                "/api/v1/bookings/", HTTP_AUTHORIZATION=f"Token {side.secrets['owner_api_token']}"
            ).status_code
            == 200
        )
        owner.get(f"/billing/sandbox/checkout/{side.objects['payment_held'].provider_ref}/")
        assert admin.get("/manage/members/").status_code == 200


def test_every_cache_key_names_its_institution(isolation_world, rolled_back):
    for alias, config in settings.CACHES.items():  # the cache makes keys with the schema in them
        assert config.get("KEY_FUNCTION") == "django_tenants.cache.make_key", alias
    _hit_pages(isolation_world)
    a, b = isolation_world.a, isolation_world.b
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    platform = [re.compile(pattern + "$") for pattern in PLATFORM_KEYS]
    client = _redis()
    problems = []
    for raw_key in client.scan_iter(count=1000):
        key = raw_key.decode("utf-8", "replace")
        schema = _key_schema(key)
        if schema is None:
            if not any(pattern.match(key) for pattern in platform):
                problems.append(f"{key!r} names no institution and is not a documented platform-wide key")
            continue
        if not (schema == "public" or SCHEMA_RE.match(schema)):
            problems.append(f"{key!r}: {schema!r} is not a schema name")
        # Markers of this run's A only: keys of earlier runs' (dropped) institutions hold theirs.
        leaked = leaked_markers(_values(client, raw_key).decode("latin-1").lower(), private_only=False)
        leaked &= set(a.markers)
        if leaked and schema != a.schema:
            problems.append(f"{key!r} holds A's data ({', '.join(a.markers[m] for m in sorted(leaked))})")
    assert not problems, "\n".join(problems)
    # The directory's facets (A's expertise tags) are cached under A's schema, and B's under B's.
    a_facets = client.get(f"{a.schema}:{prefix}:1:{FACETS_CACHE_KEY}")
    b_facets = client.get(f"{b.schema}:{prefix}:1:{FACETS_CACHE_KEY}")
    assert a_facets is not None and leaked_markers(a_facets.decode("latin-1").lower(), private_only=False)
    assert b_facets is not None and not leaked_markers(b_facets.decode("latin-1").lower(), private_only=False)


def test_platform_key_list_is_documented():
    assert all(reason.strip() for reason in PLATFORM_KEYS.values())


# --- Celery ----------------------------------------------------------------------------------------

# Tasks that run in the public schema, by design, with why each may.
PLATFORM_TASKS: dict[str, str] = {
    "shared.reminders.tasks.reminders_tick": (
        "claims due reminders (a public table) and enqueues one task per reminder in its schema"
    ),
    "shared.platform_billing.tasks.subscriptions_sweep": "subscriptions are public rows",
    "shared.platform_billing.tasks.usage_report_all": "enqueues one usage report per subscription",
    "shared.platform_billing.tasks.usage_report_one": (
        "reports one institution's usage to Stripe; takes the institution's id and enters its schema"
    ),
    "tenants.tasks.domains_verify_pending": "domains are public rows",
    "tenants.tasks.schema_pool_fill": "creates empty schemas for future sign-ups; no institution data",
    "shared.core.tasks.outbox_flush": "sends stored messages as they were, each with its sender's schema",
    "shared.core.tasks.expired_files_sweep": "deletes expired export files by their recorded schema and path",
    "tenant_apps.billing.tasks.sandbox_deliver": (
        "posts the body it is given to a URL (development sandbox); reads no institution data"
    ),
}


def _task_ids(world: World, task_name: str) -> dict[str, int]:
    """What a task's id parameters mean: A's ids of the same name (a few depend on the task)."""
    a = world.a
    with schema_context("public"):
        reminder = DueReminder.objects.filter(schema_name=a.schema).order_by("pk").first()
    by_task = {
        "tenant_apps.accounts.tasks.personal_export_run": {"export_id": a.pk("export_personal")},
        "tenant_apps.admin_console.tasks.institution_export_run": {"export_id": a.pk("export_institution")},
    }
    return {
        "notification_id": a.pk("notification"),
        "delivery_id": a.pk("delivery"),
        "refund_id": a.pk("refund"),
        "payout_id": a.pk("payout"),
        "payment_id": a.pk("payment_completed"),
        "event_id": a.pk("webhook_event"),
        "booking_id": a.pk("booking_held"),
        "import_id": a.pk("member_import"),
        "user_id": a.users["owner"].pk,
        "reminder_id": reminder.pk,
    } | by_task.get(task_name, {})


def _registered_tasks() -> dict:
    celery_app.loader.import_default_modules()
    return {name: task for name, task in celery_app.tasks.items() if not name.startswith("celery.")}


def test_platform_task_list_is_true():
    registered = _registered_tasks()
    assert not set(PLATFORM_TASKS) - set(registered), set(PLATFORM_TASKS) - set(registered)
    assert all(reason.strip() for reason in PLATFORM_TASKS.values())


TENANT_TASKS = sorted(name for name in _registered_tasks() if name not in PLATFORM_TASKS)


@pytest.mark.parametrize("name", TENANT_TASKS)
def test_task_run_in_b_touches_nothing_of_a(name, isolation_world, rolled_back):
    world = isolation_world
    task = _registered_tasks()[name]
    ids = _task_ids(world, name)
    kwargs = {}
    for parameter in inspect.signature(task.run).parameters.values():
        if parameter.name in ids:
            kwargs[parameter.name] = ids[parameter.name]
        elif parameter.default is inspect.Parameter.empty:
            pytest.fail(
                f"{name}: no value for its parameter {parameter.name!r}. Say what it means in "
                "tests/isolation/test_background.py (_task_ids), or list the task in PLATFORM_TASKS "
                "with the reason it runs in the public schema."
            )
    with transaction.atomic():  # a task that fails must not break the test's transaction
        result = task.apply(kwargs=kwargs, headers={"_schema_name": world.b.schema})
    connection.set_schema_to_public()
    problems = [f"A's {row}" for row in changed_rows(world.a.baseline, fingerprint(world.a.institution))]
    for message in mail.outbox:
        text = "\n".join(
            [message.subject, message.body, *(alt[0] for alt in getattr(message, "alternatives", []))]
        )
        for marker in sorted(leaked_markers(text.lower(), private_only=False)):
            problems.append(f"an email to {message.to} shows {world.a.markers[marker]}")
    assert not problems, f"{name} run in B's schema ({result.state}):\n" + "\n".join(problems)


def test_tasks_sent_from_a_carry_a_s_schema(isolation_world, rolled_back):
    """What tenant-schemas-celery adds when a task is sent: the schema it was sent from."""
    a = isolation_world.a
    client = _redis()
    client.delete("isolation-probe")
    with tenant_context(a.institution):
        # Straight to the broker (not through the outbox, which holds messages while it is down).
        CeleryApp.send_task(
            celery_app,
            "tenant_apps.notifications.tasks.deliver",
            args=[a.pk("notification")],
            queue="isolation-probe",
        )
    connection.set_schema_to_public()
    raw = client.lpop("isolation-probe")
    assert raw is not None, "the probe message was not sent"
    headers = json.loads(raw)["headers"]
    assert headers["_schema_name"] == a.schema
