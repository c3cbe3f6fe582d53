"""A Celery worker is killed (SIGKILL) after Stripe made a refund but before the worker heard back:
the task is delivered again, the second worker finds the refund Stripe already made, and the
learner is refunded once, recorded once, with the ledger balanced.

Money is where running a task twice hurts, so this is the task class tests/test_worker_crash.py
(reminder emails) does not cover: the gateway call is not undone by a rolled-back transaction.
Stripe is the local stand-in; a small proxy in front of it holds the refund's answer until the
worker is dead.
"""

from __future__ import annotations

import http.server
import os
import secrets
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, drop_institution, host_of, signup_for
from tenants.services import institution_provision
from tests.conftest import REPO_ROOT, _database_url, _free_port
from tests.test_worker_crash import wait_for

pytestmark = pytest.mark.failures

VISIBILITY_TIMEOUT = 3  # seconds before an unacknowledged task is given to another worker
WEBHOOK_SECRET = "whsec_crash_refund"


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    """A real worker, one task at a time; without the start-up chatter with other workers."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                *("-m", "celery", "-A", "config", "worker", "--pool=solo", "-l", "info"),
                *("--without-mingle", "--without-gossip", "--without-heartbeat"),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class HoldingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to the Stripe stand-in; the first refund it forwards is made at
    Stripe, and its answer is held back until `release` is set (the worker dies meanwhile)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", _free_port()), _ProxyHandler)
        self.upstream = upstream
        self.refund_posts = 0
        self.arrived = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: HoldingProxy

    def log_message(self, format, *args) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(
            self.server.upstream + self.path, data=body, headers=headers, method=self.command
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, reply, content_type = (
                    response.status,
                    response.read(),
                    response.headers["Content-Type"],
                )
        except urllib.error.HTTPError as error:
            status, reply, content_type = error.code, error.read(), error.headers["Content-Type"]
        if self.command == "POST" and self.path.startswith("/v1/refunds"):
            self.server.refund_posts += 1
            if self.server.refund_posts == 1:
                self.server.arrived.set()
                self.server.release.wait(60)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type or "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except OSError:
            pass  # the worker that asked is gone

    do_GET = do_POST = do_DELETE = _forward


@pytest.fixture
def paid_booking(test_database, django_db_blocker, stripe_standin, settings) -> Iterator[dict]:
    """A committed institution on Stripe (the stand-in) with a booking paid by card."""
    from tenant_apps.billing import services
    from tenant_apps.billing.models import GatewayAccount, pricing_policy
    from tenant_apps.billing.tests.helpers import URLS, hold, post_webhook
    from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at

    settings.BILLING_API_BASES = {"stripe": stripe_standin.api_base}
    with django_db_blocker.unblock():
        institution = institution_provision(
            signup=signup_for(f"crash-refund-{secrets.token_hex(3)}")
        ).institution
        try:
            mentor = make_mentor(institution, email="m@crash-refund.example", price_minor=5_000)
            learner = make_learner(institution, email="l@crash-refund.example")
            with tenant_context(institution):
                policy = pricing_policy()
                policy.gateway = "stripe"
                policy.save()
                GatewayAccount.objects.update_or_create(
                    gateway="stripe",
                    defaults={
                        "public_key": "pk_test_crash",
                        "secret_key": "sk_test_crash",
                        "webhook_secret": WEBHOOK_SECRET,
                    },
                )
                booking = hold(mentor, learner, next_weekday_at(13, weeks_ahead=2))
                payment = services.payment_start(booking=booking, learner=learner, urls_for=lambda p: URLS)
                event = stripe_standin.pay(payment.provider_ref)
            body, headers = stripe_standin.webhook(event, WEBHOOK_SECRET)
            assert post_webhook(HostClient(host_of(institution)), "stripe", body, headers).status_code == 200
            with tenant_context(institution):
                payment.refresh_from_db()
                assert payment.is_paid and payment.provider_payment_id
            connection.set_schema_to_public()
            yield {
                "institution": institution,
                "payment_id": payment.pk,
                "intent": payment.provider_payment_id,
            }
        finally:
            connection.close()
            connection.set_schema_to_public()
            drop_institution(institution)
            connection.set_schema_to_public()


def test_a_worker_killed_mid_refund_refunds_once(paid_booking, stripe_standin, django_db_blocker, tmp_path):
    from config.celery import app
    from tenant_apps.billing import services
    from tenant_apps.billing.models import LedgerTransaction, Payment, Refund
    from tenant_apps.billing.tests.helpers import balances

    institution = paid_booking["institution"]
    proxy = HoldingProxy(stripe_standin.api_base)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "STRIPE_API_BASE": proxy.url,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "CELERY_RESTORE_INTERVAL": "1",
        "CELERY_RESTORE_THROTTLE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = Path(os.environ.get("WORKER_LOG_DIR", str(tmp_path))) / "worker-refund.log"
    workers: list[subprocess.Popen] = []
    try:
        with django_db_blocker.unblock():
            app.control.purge()  # nothing left over from other tests for these workers
            with tenant_context(institution):
                payment = Payment.objects.get(pk=paid_booking["payment_id"])
                # Enqueues refund_submit after commit (autocommit here: at once).
                refund = services.refund_create(
                    payment=payment, amount_minor=1_500, kind=Refund.Kind.MANUAL, reason="goodwill"
                )

        workers.append(start_worker(env, log))
        assert proxy.arrived.wait(60), log.read_text()[-3000:]
        workers[0].send_signal(signal.SIGKILL)  # Stripe made the refund; the worker never heard
        workers[0].wait(10)
        proxy.release.set()
        workers.append(start_worker(env, log))

        def settled() -> bool:
            with django_db_blocker.unblock(), tenant_context(institution):
                return Refund.objects.get(pk=refund.pk).status == Refund.Status.SUCCEEDED

        try:
            wait_for(settled, 60 + 2 * VISIBILITY_TIMEOUT, "the refund to be recorded")
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; the workers' log ends:\n{log.read_text()[-4000:]}") from None
        broker = redis.Redis.from_url(app.conf.broker_url)
        wait_for(
            lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0,
            10 * VISIBILITY_TIMEOUT,
            "the broker to be empty",
        )

        # At Stripe: one refund for the payment, of the amount asked.
        made = stripe_standin.localstripe_get(f"/v1/refunds?payment_intent={paid_booking['intent']}")["data"]
        assert [(r["amount"], r["metadata"].get("reference")) for r in made] == [(1_500, refund.reference)]
        with django_db_blocker.unblock(), tenant_context(institution):
            refund.refresh_from_db()
            assert refund.provider_refund_id == made[0]["id"]
            assert Payment.objects.get(pk=payment.pk).refunded_minor == 1_500
            kinds = list(LedgerTransaction.objects.filter(refund=refund).values_list("kind", flat=True))
            assert len(kinds) == len(set(kinds)), kinds  # each movement of the refund once
            assert sum(balances().values()) == 0
        assert proxy.refund_posts == 1  # the second worker found the refund instead of asking again
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
        proxy.shutdown()
