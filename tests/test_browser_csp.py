"""In Chromium: pages run under the Content-Security-Policy (shared/core/middleware.py) without a single
violation, and a violation would be seen."""

import secrets

import pytest
from playwright.sync_api import Page, expect

from shared.core.testing import signup_for
from tenants.services import institution_provision

from .conftest import CreatedInstitutions, RunningServer
from .test_browser_booking import off_the_event_loop, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_site(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    subdomain = created_institutions.add(f"e2e-csp-{secrets.token_hex(3)}")

    def build() -> dict:
        with django_db_blocker.unblock():
            signup = signup_for(subdomain)
            institution_provision(signup=signup)
        return {"host": f"{subdomain}.localhost", "admin": signup.admin_email}

    return off_the_event_loop(build)


def test_pages_run_without_a_policy_violation(
    page: Page, running_server: RunningServer, admin_site: dict
) -> None:
    violations: list[str] = []

    def on_console(message) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", on_console)
    host = admin_site["host"]
    page.goto(running_server.url("localhost", "/"))
    # The policy is enforced, and its reports are heard: an inline script is refused.
    inject = "() => { const s = document.createElement('script'); s.text = '1'; document.body.append(s); }"
    page.evaluate(inject)
    page.wait_for_timeout(300)
    assert len(violations) == 1 and "script-src" in violations[0], violations
    violations.clear()

    page.goto(running_server.url("localhost", "/signup/"))
    sign_in(page, running_server, host, admin_site["admin"])
    page.goto(running_server.url(host, "/manage/branding/"))
    preview = page.frame_locator('[data-testid="branding-preview"]')
    expect(preview.locator("body")).not_to_be_empty()
    page.goto(running_server.url(host, "/manage/analytics/"))
    expect(page.locator("canvas").first).to_be_visible()
    page.goto(running_server.url(host, "/mentors/"))
    page.goto(running_server.url(host, "/notifications/"))
    page.goto(running_server.url(host, "/api/docs/"))
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=15_000)
    page.wait_for_timeout(500)  # late reports (fonts, images) reach the console
    assert violations == []
