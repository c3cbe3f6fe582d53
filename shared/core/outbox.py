"""Jobs survive a broker outage: a task Redis cannot take is kept in Postgres and sent later.

Every `delay()` / `apply_async()` goes through `PeerLearnCelery.send_task` (config/celery.py).
When the broker refuses the message (Redis is down or unreachable), the call does not raise: the
task's name, arguments, schema, id and eta are written to `OutboxTask` and the caller gets an
`AsyncResult` for the id the task will run under. A booking made while Redis is down therefore
commits and answers normally; its emails and reminders leave once Redis is back.

`outbox_flush` (beat, every minute) hands the waiting tasks to the broker in the order they came
and deletes each row once the broker took it. A task may then run twice (the broker took the
message but the answer was lost, or the row's delete failed): every task of the project is
idempotent, which late acknowledgement requires anyway (docs/security.md#failures).

After a refusal the broker is not asked again for `BROKER_RETRY_AFTER_SECONDS`: each attempt costs
Celery's publish retries (about 0.8 s), which a page should not pay several times over.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import kombu.exceptions
import redis.exceptions
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import OutboxTask

logger = logging.getLogger(__name__)

# What the broker raises when it cannot take a message.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
BROKER_RETRY_AFTER_SECONDS = 5.0
FLUSH_BATCH = 500


class _BrokerState:
    """When this process last saw the broker refuse a message."""

    def __init__(self) -> None:
        self._down_until = 0.0
        self._lock = threading.Lock()

    def known_down(self) -> bool:
        return time.monotonic() < self._down_until

    def failed(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS

    def reset(self) -> None:
        with self._lock:
            self._down_until = 0.0


broker_state = _BrokerState()


def _eta(options: dict[str, Any]) -> datetime | None:
    eta = options.get("eta")
    if isinstance(eta, str):
        eta = parse_datetime(eta)
    if eta is None and options.get("countdown"):
        eta = timezone.now() + timedelta(seconds=float(options["countdown"]))
    if eta is not None and timezone.is_naive(eta):
        eta = timezone.make_aware(eta, timezone.get_default_timezone())
    return eta


def outbox_store(
    *,
    name: str,
    args: list | tuple | None,
    kwargs: dict | None,
    options: dict[str, Any],
    task_id: str,
    error: str,
) -> OutboxTask:
    """Keep a task the broker refused; `outbox_flush` sends it later under the same id."""
    headers = options.get("headers") or {}
    row = OutboxTask.objects.create(
        task_id=task_id,
        name=name,
        schema_name=headers.get("_schema_name") or connection.schema_name,
        args=list(args or ()),
        kwargs=dict(kwargs or {}),
        eta=_eta(options),
        error=error[:300],
    )
    logger.warning(
        "broker unavailable: task %s (%s) kept in the outbox for %s: %s",
        name,
        task_id,
        row.schema_name,
        error,
    )
    return row


def outbox_flush(*, limit: int = FLUSH_BATCH, broker_connection: Any = None) -> int:
    """Hand waiting tasks to the broker, oldest first; returns how many it took. Stops at the first
    refusal (the broker is still down) and leaves the rest for the next run. `broker_connection`: a
    kombu connection to use instead of the app's own (tests)."""
    from config.celery import app

    sent = 0
    with transaction.atomic():
        # SKIP LOCKED: two flushes running at once share the rows instead of sending them twice.
        rows = list(OutboxTask.objects.select_for_update(skip_locked=True).order_by("pk")[:limit])
        for row in rows:
            try:
                app.send_task(
                    row.name,
                    args=row.args,
                    kwargs=row.kwargs,
                    task_id=row.task_id,
                    eta=row.eta,
                    headers={"_schema_name": row.schema_name},
                    connection=broker_connection,
                    outbox=False,
                )
            except BROKER_ERRORS as error:
                OutboxTask.objects.filter(pk=row.pk).update(attempts=row.attempts + 1, error=str(error)[:300])
                logger.warning("outbox flush stopped after %d tasks: %s", sent, error)
                break
            row.delete()
            sent += 1
    if sent:
        broker_state.reset()
        logger.info("outbox flush sent %d tasks", sent)
    return sent
