"""In Chromium, on a phone: an admin uploads a CSV of members, watches the progress bar while the
worker imports it, reads the report, and deactivates someone from the members list."""

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

from shared.core.testing import signup_for
from tenants.services import institution_provision

from .conftest import CreatedInstitutions, RunningServer
from .test_browser_booking import off_the_event_loop, sign_in

pytestmark = pytest.mark.browser

CSV = (
    "email,full_name,role\n"
    "sam@members.example,Sam Lee,learner\n"
    "not-an-address,Bad Address,learner\n"
    "kim@members.example,Kim Roy,mentor\n"
)


@pytest.fixture
def members_site(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    subdomain = created_institutions.add(f"e2e-members-{secrets.token_hex(3)}")

    def build() -> dict:
        with django_db_blocker.unblock():
            signup = signup_for(subdomain)
            institution = institution_provision(signup=signup).institution
        return {
            "host": f"{subdomain}.localhost",
            "admin": signup.admin_email,
            "schema": institution.schema_name,
        }

    return off_the_event_loop(build)


def test_an_admin_imports_members_and_watches_the_progress(
    page: Page, running_server: RunningServer, members_site: dict, django_db_blocker, screenshot_dir
) -> None:
    host = members_site["host"]
    sign_in(page, running_server, host, members_site["admin"])
    page.goto(running_server.url(host, "/manage/members/import/"))
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
    )
    page.get_by_role("button", name="Upload and import").click()

    progress = page.get_by_test_id("import-progress")
    expect(progress).to_be_visible()
    expect(progress).to_have_attribute("data-status", "queued")  # polled: no worker has run it yet
    import_id = int(re.search(r"/import/(\d+)/", page.url).group(1))

    def work() -> None:
        from tenant_apps.admin_console.tasks import member_import_run

        with django_db_blocker.unblock():
            member_import_run.apply(args=[import_id], headers={"_schema_name": members_site["schema"]})

    off_the_event_loop(work)

    # The page notices the end by itself and shows the report.
    expect(page.get_by_test_id("imported-count")).to_have_text("2", timeout=15_000)
    expect(page.get_by_test_id("error-count")).to_have_text("1")
    expect(page.get_by_test_id("error-rows")).to_contain_text("not a valid email address")
    expect(page.get_by_test_id("error-rows").locator("td").first).to_have_text("3")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(screenshot_dir / "member-import-report.png"), full_page=True)

    page.get_by_role("link", name="Back to members").click()
    expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()
    row = page.locator("tr", has_text="sam@members.example")
    expect(row).to_contain_text("No password yet")
    row.get_by_role("button", name="Deactivate Sam Lee").click()
    expect(page.get_by_text("Sam Lee is deactivated and can no longer sign in.")).to_be_visible()
    expect(page.locator("tr", has_text="sam@members.example")).to_contain_text("Deactivated")
    page.screenshot(path=str(screenshot_dir / "members-list.png"), full_page=True)

    page.goto(running_server.url(host, "/manage/audit/"))
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.locator("table")).to_contain_text("member.deactivated")
    expect(page.locator("table")).to_contain_text("members.import_finished")
