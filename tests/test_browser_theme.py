"""In Chromium: an admin switches the theme and the primary colour on /manage/branding/, sees the
preview change before saving, saves, and a learner's pages then use the new theme and colour."""

import secrets

import pytest
from playwright.sync_api import Browser, Page, expect

from shared.core.testing import signup_for
from tenants.services import institution_provision

from .conftest import PHONE_VIEWPORT, CreatedInstitutions, RunningServer
from .test_browser_booking import off_the_event_loop, sign_in

pytestmark = pytest.mark.browser

GREEN = "#0b6e4f"
GREEN_RGB = "rgb(11, 110, 79)"


@pytest.fixture
def branded_site(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    subdomain = created_institutions.add(f"e2e-theme-{secrets.token_hex(3)}")

    def build() -> dict:
        from tenant_apps.sessions.tests.factories import make_learner

        with django_db_blocker.unblock():
            signup = signup_for(subdomain)
            institution = institution_provision(signup=signup).institution
            make_learner(institution, email="lee@learner.example", full_name="Lee Learner")
        return {"host": f"{subdomain}.localhost", "admin": signup.admin_email}

    return off_the_event_loop(build)


def background(locator) -> str:
    return locator.evaluate("element => getComputedStyle(element).backgroundColor")


def test_an_admin_changes_the_theme_with_a_live_preview_and_learners_see_it(
    page: Page, browser: Browser, running_server: RunningServer, branded_site: dict
) -> None:
    host = branded_site["host"]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, running_server, host, branded_site["admin"])
    page.goto(running_server.url(host, "/manage/branding/"))
    preview = page.frame_locator('[data-testid="branding-preview"]')
    expect(preview.locator('body[data-layout="default"]')).to_be_attached()
    button = preview.get_by_test_id("preview-primary-button")
    assert background(button) != GREEN_RGB

    # Unsaved choices: the preview follows them.
    page.get_by_label("Classic").check()
    page.get_by_label("Primary colour").fill(GREEN)
    expect(preview.locator('body[data-layout="classic"]')).to_be_attached()
    expect(preview.locator(".masthead")).to_be_visible()
    expect(preview.get_by_test_id("preview-primary-button")).to_have_css("background-color", GREEN_RGB)
    # A too-light colour warns at once, and the warning goes with a readable one.
    page.get_by_label("Primary colour").fill("#ffeb3b")
    expect(page.get_by_test_id("contrast-warning-on-white")).to_be_visible()
    page.get_by_label("Primary colour").fill(GREEN)
    expect(page.get_by_test_id("contrast-warning-on-white")).to_be_hidden()

    # Nothing is saved yet: the site itself is unchanged.
    other = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        learner = other.new_page()
        learner.goto(running_server.url(host, "/"))
        expect(learner.locator('body[data-layout="default"]')).to_be_attached()

        page.get_by_test_id("branding-save").click()
        expect(page.get_by_text("Branding saved.")).to_be_visible()
        assert errors == []
        expect(page.locator('body[data-layout="classic"]')).to_be_attached()

        sign_in(learner, running_server, host, "lee@learner.example")
        learner.goto(running_server.url(host, "/mentors/"))
        expect(learner.locator('body[data-layout="classic"]')).to_be_attached()
        expect(learner.locator('[data-theme-header="classic"] .masthead-title')).to_be_visible()
        brand_bar = learner.locator('[data-theme-header="classic"] .bg-brand').first
        expect(brand_bar).to_have_css("background-color", GREEN_RGB)
        assert learner.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        other.close()
