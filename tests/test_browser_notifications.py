"""In Chromium: a signed-in learner's bell counts new notifications live, catches up after its
socket drops, and the notification centre lists them and marks one read when it is opened."""

import re
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, expect

from shared.core.testing import PASSWORD, signup_for
from tenants.services import institution_provision

from .conftest import CreatedInstitutions, RunningServer

pytestmark = pytest.mark.browser

LEARNER_EMAIL = "nia@learner.example"


def off_the_event_loop(function):
    """Run ORM work in a fresh thread: Playwright's running event loop makes Django refuse it here."""
    from django.db import connection

    def run():
        try:
            return function()
        finally:
            connection.close()  # back to the pool: the thread ends here

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def learner_site(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    """A committed institution with one learner."""
    subdomain = created_institutions.add(f"e2e-bell-{secrets.token_hex(3)}")

    def build() -> dict:
        from tenant_apps.sessions.tests.factories import make_learner

        with django_db_blocker.unblock():
            institution = institution_provision(signup=signup_for(subdomain)).institution
            learner = make_learner(institution, email=LEARNER_EMAIL, full_name="Nia Learner")
        return {"host": f"{subdomain}.localhost", "institution_id": institution.pk, "learner_id": learner.pk}

    return off_the_event_loop(build)


def notify(site: dict, django_db_blocker, title: str) -> int:
    """What the site does when something happens to the learner: services.notify, committed."""

    def make() -> int:
        from django_tenants.utils import tenant_context

        from tenant_apps.accounts.models import User
        from tenant_apps.notifications import services
        from tenant_apps.notifications.models import Event
        from tenants.models import Institution

        with django_db_blocker.unblock():
            institution = Institution.objects.get(pk=site["institution_id"])
            with tenant_context(institution):
                learner = User.objects.get(pk=site["learner_id"])
                # A review request goes out in the app only: nothing for a worker to send.
                (made,) = services.notify(
                    event=Event.REVIEW_REQUESTED,
                    recipients=[learner],
                    message=services.Message(title=title, body="Tell us how it went.", url="/sessions/"),
                )
                return made.pk

    return off_the_event_loop(make)


def sign_in(page: Page, server: RunningServer, host: str, email: str) -> None:
    page.goto(server.url(host, "/accounts/login/"))
    page.locator('input[name="username"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()


def test_the_bell_counts_live_and_the_centre_marks_what_is_opened(
    page: Page, running_server: RunningServer, learner_site: dict, django_db_blocker
) -> None:
    host = learner_site["host"]
    # The bell's socket goes through Playwright, so the test can cut it like a network would.
    sockets = []
    refusing = []

    def through_playwright(page_side):
        if refusing:
            page_side.close(code=1013, reason="try again later")  # the server is still away
            return
        sockets.append((page_side, page_side.connect_to_server()))

    page.route_web_socket(re.compile(r"/ws/notifications/$"), through_playwright)
    sign_in(page, running_server, host, LEARNER_EMAIL)

    bell = page.get_by_test_id("notification-bell")
    count = page.get_by_test_id("notification-count")
    expect(bell).to_have_attribute("data-state", "connected")
    expect(bell).to_have_attribute("data-count", "0")
    expect(count).to_be_hidden()

    # Something happens: the badge and a toast appear without a reload.
    first = notify(learner_site, django_db_blocker, "Review your session with Kim")
    expect(count).to_have_text("1")
    toast = page.get_by_test_id("notification-toast")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("Review your session with Kim")
    expect(toast).to_contain_text("Tell us how it went.")
    expect(page.get_by_test_id("notification-toast-open")).to_have_attribute(
        "href", f"/notifications/{first}/open/"
    )
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_be_hidden()

    # The socket drops and the server refuses for a while; what happens meanwhile is caught up.
    refusing.append(True)
    page_side, server_side = sockets[-1]
    server_side.close(code=1000)
    page_side.close(code=1001, reason="going away")
    expect(bell).to_have_attribute("data-state", "reconnecting")
    second = notify(learner_site, django_db_blocker, "Review your session with Ana")
    refusing.clear()
    expect(bell).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(count).to_have_text("2")
    assert len(sockets) == 2

    # And live again on the new socket; the toast marks it read.
    third = notify(learner_site, django_db_blocker, "Review your session with Raj")
    expect(count).to_have_text("3")
    expect(toast).to_contain_text("Review your session with Raj")
    toast.get_by_role("button", name="Mark read").click()
    expect(toast).to_be_hidden()
    expect(count).to_have_text("2")

    # The centre lists them, newest first.
    page.get_by_test_id("notification-bell-link").click()
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    rows = page.locator("li[data-testid^='notification-']")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Review your session with Raj")
    expect(rows.nth(2)).to_contain_text("Review your session with Kim")
    expect(page.get_by_test_id(f"notification-{third}")).to_have_attribute("data-unread", "false")
    for pk in (first, second):
        expect(page.get_by_test_id(f"notification-{pk}")).to_have_attribute("data-unread", "true")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # Opening one marks it read and goes to its page; the bell follows.
    page.get_by_test_id(f"notification-{first}").get_by_role("link").click()
    expect(page).to_have_url(running_server.url(host, "/sessions/"))
    expect(page.get_by_test_id("notification-count")).to_have_text("1")
    page.goto(running_server.url(host, "/notifications/"))
    expect(page.get_by_test_id(f"notification-{first}")).to_have_attribute("data-unread", "false")
    expect(page.get_by_test_id(f"notification-{second}")).to_have_attribute("data-unread", "true")

    # Another tab of the same person keeps the same count.
    other_tab = page.context.new_page()
    other_tab.goto(running_server.url(host, "/"))
    expect(other_tab.get_by_test_id("notification-bell")).to_have_attribute("data-state", "connected")
    expect(other_tab.get_by_test_id("notification-count")).to_have_text("1")

    # While the list is open, a new one announces itself; "Mark all read" clears every badge.
    notify(learner_site, django_db_blocker, "Review your session with Lou")
    expect(page.get_by_test_id("new-notifications")).to_contain_text("A new notification arrived.")
    expect(page.get_by_test_id("notification-count")).to_have_text("2")
    expect(other_tab.get_by_test_id("notification-count")).to_have_text("2")
    page.get_by_role("button", name="Mark all read").click()
    expect(page.get_by_test_id("unread-summary")).to_contain_text("You have read everything.")
    expect(page.get_by_test_id("notification-bell")).to_have_attribute("data-count", "0")
    expect(page.get_by_test_id("notification-count")).to_be_hidden()
    expect(other_tab.get_by_test_id("notification-bell")).to_have_attribute("data-count", "0")
    expect(other_tab.get_by_test_id("notification-count")).to_be_hidden()
