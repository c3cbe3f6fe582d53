"""Leaks the isolation suite found, each pinned by a test of its own."""

from django.db import connection
from django_tenants.utils import tenant_context

from tenant_apps.accounts.models import User
from tenant_apps.billing.models import Payment
from tenant_apps.billing.services import ReturnUrls, payment_start
from tenant_apps.sessions.models import Booking

URLS = ReturnUrls(
    success="http://x.localhost/r/", cancel="http://x.localhost/c/", callback="http://x.localhost/cb/"
)


def test_a_verification_link_verifies_nothing_in_another_institution(isolation_world, rolled_back):
    """B's owner has A's owner's id and email (one person, two accounts): A's link, opened on B's
    host, used to confirm B's account too."""
    a, b = isolation_world.a, isolation_world.b
    path = f"/accounts/verify/{a.secrets['verify_token']}/"
    b.client().get(path)
    with tenant_context(b.institution):
        assert User.objects.get(pk=b.users["owner"].pk).email_verified_at is None
    a.client().get(path)
    with tenant_context(a.institution):
        assert User.objects.get(pk=a.users["owner"].pk).email_verified_at is not None
    connection.set_schema_to_public()


def test_an_unsigned_payment_callback_changes_nothing(isolation_world, rolled_back):
    """Anyone could post to a payment's callback without Razorpay's fields and fail the learner's
    payment, releasing their held session. Now only what the gateway says counts."""
    a = isolation_world.a
    with tenant_context(a.institution):
        booking = Booking.objects.get(pk=a.pk("booking_held"))
        payment = Payment.objects.get(pk=a.pk("payment_held"))
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.CANCELLED)
        fresh = payment_start(booking=booking, learner=booking.learner, urls_for=lambda p: URLS)
    connection.set_schema_to_public()
    response = a.client().post(f"/billing/payments/{fresh.reference}/callback/", {"error[code]": "x"})
    assert response.status_code in (302, 400)  # back to the session, or "could not be verified"
    with tenant_context(a.institution):
        assert Payment.objects.get(pk=fresh.pk).status == Payment.Status.PENDING
        assert Booking.objects.get(pk=booking.pk).status == Booking.Status.HELD
    connection.set_schema_to_public()


def test_the_admin_site_does_not_add_reviews(isolation_world, rolled_back):
    """Its form could not fill a review's read-only fields: saving one was a server error."""
    b = isolation_world.b
    assert b.client("admin").get("/admin/mentoring/review/add/").status_code == 403
