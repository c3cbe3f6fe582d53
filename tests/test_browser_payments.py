"""In Chromium: a learner books a paid mentor, pays on the sandbox checkout, and sees the session
confirmed with a receipt; a failed payment leaves nothing booked."""

import re
import secrets
from datetime import time

import pytest
from playwright.sync_api import Page, expect

from shared.core.testing import signup_for
from tenants.services import institution_provision

from .conftest import CreatedInstitutions, RunningServer
from .test_browser_booking import off_the_event_loop, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def paid_site(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    subdomain = created_institutions.add(f"e2e-pay-{secrets.token_hex(3)}")

    def build() -> dict:
        from django_tenants.utils import tenant_context

        from tenant_apps.billing.models import Gateways, pricing_policy
        from tenant_apps.sessions.tests.factories import make_learner, make_mentor

        with django_db_blocker.unblock():
            institution = institution_provision(signup=signup_for(subdomain)).institution
            with tenant_context(institution):
                policy = pricing_policy()
                policy.gateway = Gateways.SANDBOX
                policy.save()
            make_mentor(
                institution,
                email="pia@mentor.example",
                full_name="Pia Paid",
                hours=[(day, time(6), time(22)) for day in range(7)],
                headline="Product design reviews",
                price_minor=4_500,
                session_lengths=[30],
                minimum_notice_minutes=60,
            )
            make_learner(institution, email="lou@learner.example", full_name="Lou Learner")
        return {"host": f"{subdomain}.localhost"}

    return off_the_event_loop(build)


def book_first_slot(page: Page, server: RunningServer, host: str) -> None:
    page.goto(server.url(host, "/mentors/"))
    page.get_by_role("link", name="Pia Paid").first.click()
    slot = page.get_by_test_id("slot-picker").locator("button[data-starts-at]").first
    expect(slot).to_be_visible(timeout=15_000)
    slot.click()
    page.get_by_role("button", name="Book this time").click()
    expect(page.get_by_test_id("booking-status")).to_have_text("Held for payment")


def test_a_learner_pays_for_a_session_and_gets_a_receipt(
    page: Page, running_server: RunningServer, paid_site: dict
) -> None:
    host = paid_site["host"]
    sign_in(page, running_server, host, "lou@learner.example")
    book_first_slot(page, running_server, host)

    page.get_by_test_id("pay").click()
    checkout = page.get_by_test_id("sandbox-checkout")
    expect(checkout).to_contain_text("45.00")
    checkout.get_by_role("button", name="Pay", exact=True).click()

    expect(page.get_by_test_id("booking-status")).to_have_text("Confirmed")
    expect(page.get_by_text(re.compile("Payment received"))).to_be_visible()
    page.get_by_role("link", name=re.compile("receipt")).first.click()
    expect(page.locator("main")).to_contain_text("45.00")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_failed_payment_books_nothing(page: Page, running_server: RunningServer, paid_site: dict) -> None:
    host = paid_site["host"]
    sign_in(page, running_server, host, "lou@learner.example")
    book_first_slot(page, running_server, host)

    page.get_by_test_id("pay").click()
    page.get_by_test_id("sandbox-checkout").get_by_role("button", name="Fail the payment").click()
    expect(page.get_by_test_id("booking-status")).to_have_text("Expired")
    expect(page.get_by_text(re.compile("did not go through"))).to_be_visible()
