"""Another institution's people never reach A's payments: not by reference, not by booking id, not
with A's cookie on B's host."""

from django.db import connection
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.billing.models import Payment
from tenant_apps.sessions.models import Booking
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at

from .helpers import hold, pay_in_sandbox, start_payment


def test_b_cannot_reach_a_payment_of_a(institution_a, institution_b):
    mentor = make_mentor(institution_a, email="iso-m@a.example", price_minor=1_500)
    learner = make_learner(institution_a, email="iso-l@a.example")
    make_user(institution_a, email="iso-admin@a.example", role=User.Role.ADMIN)
    with tenant_context(institution_a):
        booking = hold(mentor, learner, next_weekday_at(16, weeks_ahead=2))
        payment = start_payment(booking)
        pay_in_sandbox(payment)
        reference, checkout_id, booking_id = payment.reference, payment.provider_ref, booking.pk
    connection.set_schema_to_public()
    # The same emails exist in B (one person, two institutions, two accounts).
    make_user(institution_b, email="iso-admin@a.example", role=User.Role.ADMIN)
    make_learner(institution_b, email="iso-l@a.example")
    make_mentor(institution_b, email="iso-m2@b.example", price_minor=1_500)

    b_admin = HostClient(host_of(institution_b))
    sign_in(b_admin, "iso-admin@a.example")
    for path in (
        f"/billing/payments/{reference}/",
        f"/billing/receipts/{reference}/",
        f"/billing/sandbox/checkout/{checkout_id}/",
    ):
        assert b_admin.get(path).status_code == 404, path

    b_learner = HostClient(host_of(institution_b))
    sign_in(b_learner, "iso-l@a.example")
    assert b_learner.get(f"/billing/payments/{reference}/return/").status_code == 404
    assert b_learner.post(f"/billing/bookings/{booking_id}/pay/").status_code == 404
    assert (
        b_learner.post(f"/billing/payments/{reference}/callback/", {"razorpay_payment_id": "x"}).status_code
        == 404
    )
    assert b_learner.post(f"/billing/sandbox/checkout/{checkout_id}/", {"outcome": "pay"}).status_code == 404

    # A's signed-in cookie means nothing on B's host.
    a_admin = HostClient(host_of(institution_a))
    sign_in(a_admin, "iso-admin@a.example")
    b_host = HostClient(host_of(institution_b))
    b_host.cookies = a_admin.cookies
    assert b_host.get("/billing/payments/").status_code == 302  # to B's sign-in page

    with tenant_context(institution_a):
        assert Payment.objects.get(reference=reference).status == Payment.Status.PENDING
        assert Booking.objects.get(pk=booking_id).status == Booking.Status.HELD
