"""A real Celery worker against real Redis is killed (SIGKILL) while it sends a reminder's email;
after another worker picks the task up again, each person has received that reminder once.

The mail server is a local SMTP stand-in that holds the first message until the worker is dead;
a message whose sender died before the server accepted it is not delivered, as with a real server.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from shared.core.testing import signup_for
from tenants.services import institution_provision

from .conftest import _database_url, _free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
VISIBILITY_TIMEOUT = 3  # seconds before an unacknowledged task is given to another worker


class HoldingSmtp:
    """Accepts mail; while `holding`, the first message waits (the worker is mid-task)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.holding = True
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        if self.holding:
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
            return "451 Sender gone, message dropped"
        self.received.extend(envelope.rcpt_tos)
        return "250 OK"


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-l", "info"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def site(test_database, django_db_blocker):
    from tenant_apps.notifications.models import Preference
    from tenant_apps.sessions.tests.factories import make_learner, make_mentor

    with django_db_blocker.unblock():
        institution = institution_provision(signup=signup_for("crash-u")).institution
        mentor = make_mentor(institution, email="crash-m@crash.example")
        learner = make_learner(institution, email="crash-l@crash.example")
        with tenant_context(institution):
            for user in (mentor.user, learner):  # reminders by email only, the rest in the app
                Preference.objects.create(user=user, event="reminder_1h", in_app=False, email=True, sms=False)
                Preference.objects.create(
                    user=user, event="booking_confirmed", in_app=True, email=False, sms=False
                )
        yield institution, mentor, learner, dict(connection.settings_dict)
        connection.set_schema_to_public()
        from shared.core.testing import drop_institution
        from shared.reminders.models import DueReminder

        DueReminder.objects.filter(schema_name=institution.schema_name).delete()
        drop_institution(institution)


def test_a_worker_killed_mid_task_still_sends_each_reminder_once(site, django_db_blocker, tmp_path):
    from config.celery import app
    from shared.reminders.models import DueReminder
    from shared.reminders.services import reminders_tick
    from tenant_apps.notifications.models import Delivery, Notification
    from tenant_apps.sessions.models import Booking

    institution, mentor, learner, settings_dict = site
    smtp = HoldingSmtp()
    controller = Controller(smtp, hostname="127.0.0.1", port=_free_port())
    controller.start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(settings_dict),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(controller.port),
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "CELERY_RESTORE_INTERVAL": "1",
        "CELERY_RESTORE_THROTTLE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = Path(os.environ.get("WORKER_LOG_DIR", str(tmp_path))) / "worker.log"
    workers: list[subprocess.Popen] = []
    try:
        with django_db_blocker.unblock():
            app.control.purge()  # nothing left over from other tests for these workers
            with tenant_context(institution):
                from tenant_apps.sessions import bookings
                from tenant_apps.sessions.tests.factories import next_weekday_at

                booking = bookings.booking_request(
                    learner=learner, mentor=mentor, starts_at=next_weekday_at(11), minutes=30
                )
            with schema_context("public"):
                reminder = DueReminder.objects.get(
                    schema_name=institution.schema_name, object_id=booking.pk, kind="reminder_1h"
                )
                DueReminder.objects.filter(pk=reminder.pk).update(
                    due_at=timezone.now() - timedelta(minutes=1)
                )
                assert reminders_tick() >= 1  # enqueues the reminder's task (after commit: autocommit here)

        workers.append(start_worker(env, log))
        assert smtp.arrived.wait(60), log.read_text()[-3000:]
        workers[0].send_signal(signal.SIGKILL)  # mid-task: the email is being sent
        workers[0].wait(10)
        smtp.holding = False
        smtp.release.set()
        workers.append(start_worker(env, log))
        try:
            wait_for(lambda: len(smtp.received) >= 2, 60 + 2 * VISIBILITY_TIMEOUT, "both reminders")
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; the workers' log ends:\n{log.read_text()[-4000:]}") from None
        # Nothing left to run twice: no task waiting in the queue, none taken and unacknowledged.
        broker = redis.Redis.from_url(app.conf.broker_url)
        wait_for(
            lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0,
            10 * VISIBILITY_TIMEOUT,
            "the broker to be empty",
        )

        assert sorted(smtp.received) == sorted([mentor.user.email, learner.email])
        with django_db_blocker.unblock(), tenant_context(institution):
            reminders = Notification.objects.filter(event="reminder_1h", data__booking_id=booking.pk)
            assert reminders.count() == 2
            assert set(
                Delivery.objects.filter(notification__in=reminders).values_list("status", flat=True)
            ) == {"sent"}
            Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.CANCELLED)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
        controller.stop()
