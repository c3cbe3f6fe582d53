"""Chromium against a real daphne server: institution sign-up end to end, and unknown hosts."""

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import PHONE_VIEWPORT, CreatedInstitutions, RunningServer

pytestmark = pytest.mark.browser

# Provisioning clones a schema: give the redirect after "Create my site" more than expect's 5 s.
PROVISIONING_TIMEOUT_MS = 20_000
# Schemes that name no host, so they cannot reach another one.
HOSTLESS_SCHEMES = frozenset({"data", "blob", "about"})


def _is_local(url: str) -> bool:
    """Whether a request goes to this machine: `localhost`, `*.localhost` or 127.0.0.1."""
    parts = urlsplit(url)
    if parts.scheme in HOSTLESS_SCHEMES:
        return True
    host = parts.hostname or ""
    return host in {"localhost", "127.0.0.1"} or host.endswith(".localhost")


def test_signup_creates_a_site_and_signs_its_admin_in(
    page: Page,
    browser: Browser,
    running_server: RunningServer,
    created_institutions: CreatedInstitutions,
    screenshot_dir: Path,
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    subdomain = created_institutions.add(f"e2e-{secrets.token_hex(4)}")
    site = f"{subdomain}.localhost"
    name = "Hopper College"

    page.goto(running_server.url("localhost", "/signup/"))
    expect(page.get_by_role("heading", name="Start your institution")).to_be_visible()

    # The live check: a reserved name is refused, a free one announced, before anything is sent.
    address = page.locator('input[name="subdomain"]')
    availability = page.locator('[x-data="subdomainCheck"]').get_by_role("status")
    address.fill("admin")
    expect(availability).to_have_text("“admin” is reserved. Please choose another name.")
    address.fill(subdomain)
    expect(availability).to_have_text(f"{site} is available.")

    page.locator('input[name="name"]').fill(name)
    page.locator('select[name="country"]').select_option("GB")
    page.locator('select[name="currency"]').select_option("GBP")
    page.locator('select[name="timezone"]').select_option("Europe/London")
    page.locator('input[name="admin_full_name"]').fill("Grace Hopper")
    page.locator('input[name="admin_email"]').fill(f"grace@{subdomain}.example")
    page.locator('input[name="admin_password"]').fill("compiler-pioneer-1952")
    page.get_by_role("button", name="Create my site").click()

    # The platform hands over to the new site, whose single-use link signs the admin in.
    expect(page).to_have_url(running_server.url(site, "/"), timeout=PROVISIONING_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Welcome, Grace")).to_be_visible()
    # Fits a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.locator("header")).to_contain_text(name)
    expect(page.get_by_text(f"Welcome to {name}, Grace!")).to_be_visible()
    page.screenshot(path=screenshot_dir / "signed-in.png", full_page=True)

    links = [url for url in requested if urlsplit(url).path.startswith("/accounts/link/")]
    assert len(links) == 1, requested
    assert urlsplit(links[0]).netloc == f"{site}:{running_server.port}"

    # The link is spent: someone else opening it lands on the sign-in page, told why.
    other = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        other_page = other.new_page()
        other_page.on("request", lambda request: requested.append(request.url))
        other_page.goto(links[0])
        expect(other_page).to_have_url(running_server.url(site, "/accounts/login/"))
        expect(other_page.get_by_role("alert")).to_contain_text(
            "This sign-in link has expired or was already used."
        )
        expect(other_page.get_by_role("heading", name="Welcome, Grace")).to_have_count(0)
    finally:
        other.close()

    # Nothing was fetched from anywhere but this machine (no CDN, fonts or trackers).
    assert [url for url in requested if not _is_local(url)] == []
    assert any(urlsplit(url).path.startswith("/static/") for url in requested), requested


def test_unknown_host_says_there_is_no_site(page: Page, running_server: RunningServer) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    response = page.goto(running_server.url("nobody.localhost", "/"))

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="There is no site at this address")).to_be_visible()
    expect(page.get_by_text("nobody.localhost")).to_be_visible()
    assert [url for url in requested if not _is_local(url)] == []


def test_unknown_host_page_gets_its_stylesheet(page: Page, running_server: RunningServer) -> None:
    statuses: dict[str, int] = {}
    page.on("response", lambda response: statuses.update({response.url: response.status}))

    page.goto(running_server.url("nobody.localhost", "/"))

    stylesheets = {url: status for url, status in statuses.items() if url.endswith(".css")}
    assert stylesheets, statuses
    assert set(stylesheets.values()) == {200}, stylesheets
