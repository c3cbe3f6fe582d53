"""Reconciliation: the ledger against the gateway's own records, and its page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from tenant_apps.sessions.tests.factories import make_learner, make_mentor

from .. import services, tasks
from ..gateways import gateway_for
from ..models import GatewayAccount, Gateways, LedgerAccount, Payment, pricing_policy
from ..reconciliation import RowStatus, reconciliation_report
from .helpers import hold, start_payment
from .test_pages import PRICE, admin_of, client_for, pay, slot, text, use_sandbox


@pytest.fixture
def scene(institution_a):
    mentor = make_mentor(institution_a, email="mo@a.example", price_minor=PRICE, max_sessions_per_day=16)
    learner = make_learner(institution_a, email="lee@a.example")
    with tenant_context(institution_a):
        use_sandbox()
        yield mentor, learner


def month_ago():
    return timezone.now() - timedelta(days=30)


def test_a_sandbox_payment_agrees_with_the_ledger(scene, institution_a):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    report = reconciliation_report(since=month_ago())
    [row] = report.rows
    assert row.payment == payment
    assert row.status == RowStatus.OK, row.problems
    assert (row.ledger_amount_minor, row.gateway_amount_minor) == (PRICE, PRICE)
    assert (row.ledger_refunded_minor, row.gateway_refunded_minor) == (0, 0)
    assert report.unbalanced_transactions == []
    assert report.is_clean and report.counts == {"ok": 1}
    balances = {(b.account, b.currency): b.amount_minor for b in report.balances}
    fee = PRICE * 3 // 100  # the sandbox keeps 3%
    assert balances[(LedgerAccount.GATEWAY_CASH, "GBP")] == PRICE - fee
    assert balances[(LedgerAccount.GATEWAY_FEES, "GBP")] == fee
    assert balances[(LedgerAccount.LEARNER_FUNDS, "GBP")] == -PRICE
    assert sum(b.amount_minor for b in report.balances) == 0


def test_a_refund_made_at_the_gateway_alone_is_a_mismatch_until_the_ledger_has_it(scene, institution_a):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    # Someone refunds GBP 5.00 in the provider's dashboard: the ledger knows nothing of it.
    gateway_for(Gateways.SANDBOX).refund(
        provider_payment_id=payment.provider_payment_id,
        amount_minor=500,
        currency="GBP",
        reference="dashboard-1",
    )
    [row] = reconciliation_report(since=month_ago()).rows
    assert row.status == RowStatus.MISMATCH
    assert (row.ledger_refunded_minor, row.gateway_refunded_minor) == (0, 500)
    assert row.refunded_differs and not row.amount_differs
    assert row.problems == ("The amounts refunded differ.",)

    # A refund recorded through PeerLearn and settled by the gateway agrees on both sides.
    other = pay(mentor, learner, slot(1))
    refund = services.refund_manual(
        payment=other, amount_minor=1000, reason="Shorter session", admin=admin_of(institution_a)
    )
    pending = {r.payment.pk: r for r in reconciliation_report(since=month_ago()).rows}[other.pk]
    assert pending.status == RowStatus.OK and pending.refunding_minor == 1000
    tasks.refund_submit.run(refund.pk)
    settled = {r.payment.pk: r for r in reconciliation_report(since=month_ago()).rows}[other.pk]
    assert settled.status == RowStatus.OK
    assert (settled.ledger_refunded_minor, settled.gateway_refunded_minor) == (1000, 1000)


def test_a_different_amount_at_the_gateway_is_a_mismatch(scene, institution_a):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    key = f"billing-sandbox:payment:{payment.provider_payment_id}"
    record = cache.get(key)
    record["amount"] = PRICE - 100
    cache.set(key, record, 600)
    [row] = reconciliation_report(since=month_ago()).rows
    assert row.status == RowStatus.MISMATCH
    assert row.amount_differs
    assert "The amounts charged differ." in row.problems


def test_a_gateway_that_cannot_answer_is_unreachable(scene, institution_a):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    cache.delete(f"billing-sandbox:payment:{payment.provider_payment_id}")
    [row] = reconciliation_report(since=month_ago()).rows
    assert row.status == RowStatus.UNREACHABLE
    assert row.gateway_amount_minor is None
    assert "The sandbox has no payment" in row.problems[0]


def test_only_payments_of_the_period_are_compared(scene, institution_a):
    mentor, learner = scene
    old = pay(mentor, learner, slot(0))
    recent = pay(mentor, learner, slot(1))
    Payment.objects.filter(pk=old.pk).update(paid_at=timezone.now() - timedelta(days=40))
    assert [row.payment.pk for row in reconciliation_report(since=month_ago()).rows] == [recent.pk]
    since = timezone.now() - timedelta(days=60)
    assert [row.payment.pk for row in reconciliation_report(since=since).rows] == [recent.pk, old.pk]
    limited = reconciliation_report(since=since, limit=1)
    assert limited.truncated and len(limited.rows) == 1


def test_the_report_runs_a_constant_number_of_queries(scene, institution_a):
    mentor, learner = scene
    for index in range(2):
        pay(mentor, learner, slot(index))
    reconciliation_report(since=month_ago())
    with CaptureQueriesContext(connection) as two:
        report = reconciliation_report(since=month_ago())
    assert len(report.rows) == 2
    for index in range(2, 8):
        pay(mentor, learner, slot(index))
    with CaptureQueriesContext(connection) as eight:
        report = reconciliation_report(since=month_ago())
    assert len(report.rows) == 8 and report.counts == {"ok": 8}
    assert len(eight.captured_queries) == len(two.captured_queries)


def test_the_reconciliation_page(scene, institution_a):
    mentor, learner = scene
    agrees = pay(mentor, learner, slot(0))
    differs = pay(mentor, learner, slot(1))
    gateway_for(Gateways.SANDBOX).refund(
        provider_payment_id=differs.provider_payment_id,
        amount_minor=250,
        currency="GBP",
        reference="dashboard-2",
    )
    admin = client_for(institution_a, admin_of(institution_a).email)

    response = admin.get("/billing/reconciliation/")
    assert response.status_code == 200
    page = text(response)
    assert re.search(rf'data-testid="reconciliation-{agrees.reference}" data-status="ok"', page)
    assert re.search(rf'data-testid="reconciliation-{differs.reference}" data-status="mismatch"', page)
    assert "The amounts refunded differ." in page and "GBP 2.50" in page
    assert "Cash at the gateway" in page and "Gateway fees" in page
    assert 'data-testid="ledger-balanced"' in page
    assert "last 30 days" in page

    assert "last 7 days" in text(admin.get("/billing/reconciliation/?days=7"))
    for bad in ("0", "366", "abc", ""):
        response = admin.get(f"/billing/reconciliation/?days={bad}")
        assert response.status_code == 400, bad
        assert "Showing the last 30 days." in text(response)

    learner_client = client_for(institution_a, "lee@a.example")
    assert learner_client.get("/billing/reconciliation/").status_code == 403


def test_a_stripe_payment_is_reconciled_through_the_stripe_library(institution_a, stripe_standin, settings):
    settings.BILLING_API_BASES = {"stripe": stripe_standin.api_base}
    mentor = make_mentor(institution_a, email="recon-m@a.example", price_minor=PRICE)
    learner = make_learner(institution_a, email="recon-l@a.example")
    with tenant_context(institution_a):
        GatewayAccount.objects.create(
            gateway="stripe",
            public_key="pk_test_recon",
            secret_key="sk_test_recon",
            webhook_secret="whsec_recon",
        )
        policy = pricing_policy()
        policy.gateway = Gateways.STRIPE
        policy.save()
        payment = start_payment(hold(mentor, learner, slot(0), minutes=30))
        stripe_standin.pay(payment.provider_ref)
        payment = services.payment_verify(payment=payment)  # what the return page does
        assert payment.status == Payment.Status.SUCCEEDED

        [row] = reconciliation_report(since=month_ago()).rows
        assert row.status == RowStatus.OK, row.problems
        assert (row.gateway_amount_minor, row.gateway_refunded_minor, row.gateway_currency) == (
            PRICE,
            0,
            "GBP",
        )

        # Refunded in Stripe's dashboard: Stripe's record and the ledger now differ.
        gateway_for(Gateways.STRIPE).refund(
            provider_payment_id=payment.provider_payment_id,
            amount_minor=700,
            currency="GBP",
            reference="dash",
        )
        [row] = reconciliation_report(since=month_ago()).rows
        assert row.status == RowStatus.MISMATCH
        assert (row.ledger_refunded_minor, row.gateway_refunded_minor) == (0, 700)
