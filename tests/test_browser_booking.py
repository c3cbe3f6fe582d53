"""In Chromium: a learner finds a mentor, books a slot on their own clock, and both see it."""

import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from shared.core.testing import PASSWORD, signup_for
from tenants.services import institution_provision

from .conftest import CreatedInstitutions, RunningServer

pytestmark = pytest.mark.browser

LEARNER_TZ = "Asia/Kolkata"
MENTOR_TZ = "America/New_York"


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
def mentoring_site(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    """A committed institution with a mentor (New York) who is free every day, and a learner (India)."""
    subdomain = created_institutions.add(f"e2e-book-{secrets.token_hex(3)}")

    def build() -> dict:
        from tenant_apps.sessions.tests.factories import make_learner, make_mentor

        with django_db_blocker.unblock():
            institution = institution_provision(signup=signup_for(subdomain)).institution
            every_day = [(day, time(7), time(21)) for day in range(7)]
            make_mentor(
                institution,
                email="kim@mentor.example",
                full_name="Kim Kubernetes",
                timezone_name=MENTOR_TZ,
                hours=every_day,
                headline="Kubernetes and distributed systems",
                expertise=["kubernetes", "go"],
                session_lengths=[30, 60],
                minimum_notice_minutes=60,
            )
            make_learner(
                institution, email="ravi@learner.example", full_name="Ravi Learner", timezone=LEARNER_TZ
            )
        return {"host": f"{subdomain}.localhost"}

    return off_the_event_loop(build)


def sign_in(page: Page, server: RunningServer, host: str, email: str) -> None:
    page.goto(server.url(host, "/accounts/login/"))
    page.locator('input[name="username"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()


def test_a_learner_books_a_mentor_and_both_see_it(
    page: Page, browser: Browser, running_server: RunningServer, mentoring_site: dict
) -> None:
    host = mentoring_site["host"]
    sign_in(page, running_server, host, "ravi@learner.example")

    # Search with a prefix of the mentor's expertise.
    page.goto(running_server.url(host, "/mentors/"))
    page.locator('input[name="q"]').fill("kube")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Kim Kubernetes").first.click()
    expect(page.get_by_role("heading", name="Kim Kubernetes")).to_be_visible()

    # The picker shows slots on the learner's clock, with the mentor's beside them.
    picker = page.get_by_test_id("slot-picker")
    first_slot = picker.locator("button[data-starts-at]").first
    expect(first_slot).to_be_visible(timeout=15_000)
    starts_at = datetime.fromisoformat(first_slot.get_attribute("data-starts-at").replace("Z", "+00:00"))
    learner_clock = starts_at.astimezone(ZoneInfo(LEARNER_TZ)).strftime("%H:%M")
    mentor_clock = starts_at.astimezone(ZoneInfo(MENTOR_TZ)).strftime("%H:%M")
    expect(first_slot).to_contain_text(learner_clock)
    expect(first_slot).to_contain_text(mentor_clock)
    first_slot.click()
    page.locator('input[name="topic"]').fill("Helm charts")
    page.get_by_role("button", name="Book this time").click()

    expect(page.get_by_test_id("booking-status")).to_have_text("Confirmed")
    expect(page.locator("h1")).to_contain_text(learner_clock)

    # Under "my sessions", on the learner's clock.
    page.goto(running_server.url(host, "/sessions/"))
    upcoming = page.locator("li[data-testid^='booking-']").first
    expect(upcoming).to_contain_text("Kim Kubernetes")
    expect(upcoming).to_contain_text(learner_clock)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # The mentor sees it on their dashboard, on their own clock.
    mentor_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        mentor_page = mentor_context.new_page()
        sign_in(mentor_page, running_server, host, "kim@mentor.example")
        mentor_page.goto(running_server.url(host, "/mentor/dashboard/"))
        row = mentor_page.locator("li[data-testid^='booking-']").first
        expect(row).to_contain_text("Ravi Learner")
        expect(row).to_contain_text(mentor_clock)
    finally:
        mentor_context.close()
