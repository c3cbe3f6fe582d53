"""In Chromium: an institution's admin upgrades from the trial through the (sandboxed) Stripe
checkout and sees the new plan; a learner of a suspended institution sees why it takes no bookings."""

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

from shared.core.testing import signup_for
from tenants.services import institution_provision

from .conftest import CreatedInstitutions, RunningServer
from .test_browser_booking import off_the_event_loop, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def trial_site(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    subdomain = created_institutions.add(f"e2e-plan-{secrets.token_hex(3)}")

    def build() -> dict:
        with django_db_blocker.unblock():
            signup = signup_for(subdomain)
            institution_provision(signup=signup)
        return {"host": f"{subdomain}.localhost", "admin": signup.admin_email}

    return off_the_event_loop(build)


def test_an_admin_upgrades_from_the_trial_and_sees_the_new_plan(
    page: Page, running_server: RunningServer, trial_site: dict
) -> None:
    host = trial_site["host"]
    sign_in(page, running_server, host, trial_site["admin"])
    page.goto(running_server.url(host, "/plan/"))
    current = page.get_by_test_id("current-plan")
    expect(current).to_contain_text("Growth plan")
    expect(page.get_by_test_id("subscription-status")).to_have_text("Trial")

    page.get_by_test_id("plan-enterprise").get_by_role("button", name="Choose Enterprise").click()
    expect(page.get_by_role("heading", name=re.compile("^Pay"))).to_be_visible()  # the sandboxed checkout
    page.get_by_role("button", name="Pay").click()

    expect(page.get_by_text(re.compile("is on the Enterprise plan"))).to_be_visible()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Enterprise plan")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
