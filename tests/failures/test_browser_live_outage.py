"""In Chromium: the live room opened while Redis is down says live features are unavailable and
keeps retrying; when Redis is back the page connects by itself."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from shared.core.testing import PASSWORD, signup_for
from tenants.services import institution_provision
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE_VIEWPORT, CreatedInstitutions, _database_url
from tests.test_browser_live import FAKE_MEDIA_ARGS, off_the_event_loop

from .conftest import PrivateRedis, app_env, start_daphne, stop_process

pytestmark = [pytest.mark.browser, pytest.mark.failures]


@pytest.fixture
def live_session(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    """A committed institution with a mentor, a learner and a confirmed session starting soon."""
    subdomain = created_institutions.add(f"outage-live-{secrets.token_hex(3)}")

    def build() -> dict:
        from django.utils import timezone
        from django_tenants.utils import tenant_context

        from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor

        with django_db_blocker.unblock():
            institution = institution_provision(signup=signup_for(subdomain)).institution
            mentor = make_mentor(institution, email="maya@mentor.example", full_name="Maya Mentor")
            learner = make_learner(institution, email="leo@learner.example", full_name="Leo Learner")
            with tenant_context(institution):
                booking = make_booking(mentor, learner, timezone.now() + timedelta(minutes=2), minutes=30)
        return {"host": f"{subdomain}.localhost", "booking_id": booking.pk}

    return off_the_event_loop(build)


def test_the_live_room_explains_a_redis_outage_and_reconnects_when_it_ends(
    browser: Browser, live_session: dict, private_redis: PrivateRedis, test_database, tmp_path: Path
) -> None:
    env = app_env(database_url=_database_url(test_database), redis_url=private_redis.url())
    server = start_daphne(env, tmp_path / "daphne.log")
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *FAKE_MEDIA_ARGS])
    try:
        page = chromium.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True).new_page()
        host = live_session["host"]
        private_redis.stop()
        # Signing in and the pages work without Redis.
        page.goto(server.url(host, "/accounts/login/"))
        page.locator('input[name="username"]').fill("leo@learner.example")
        page.locator('input[name="password"]').fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()
        page.goto(server.url(host, f"/sessions/{live_session['booking_id']}/live/"))

        room = page.locator("#live-room")
        expect(room).to_have_attribute("data-state", "reconnecting", timeout=15_000)
        expect(page.locator("#live-banner-text")).to_contain_text(
            re.compile(r"Live features are unavailable at the moment\. Reconnecting in \d+ s")
        )

        private_redis.start()
        # The next attempt of the page's backoff (1 s, 2 s, 4 s …) gets in.
        expect(room).to_have_attribute("data-state", "connected", timeout=20_000)
        expect(page.locator("#live-banner-text")).to_contain_text("You are in the room")
    finally:
        chromium.close()
        stop_process(server.process)
