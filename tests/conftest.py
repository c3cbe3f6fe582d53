"""End-to-end fixtures: a real daphne server on the test database, and Chromium driven by Playwright."""

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import Browser, Page, sync_playwright

from shared.core.testing import drop_institution
from tenants.models import Institution

REPO_ROOT = Path(__file__).resolve().parent.parent
DAPHNE = Path(sys.executable).parent / "daphne"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A phone-sized screen: every browser test proves the pages work there.
PHONE_VIEWPORT = {"width": 390, "height": 844}
SERVER_START_TIMEOUT = 30.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last: while the session's Playwright runs, this thread has a running event
    loop, and every later test's ORM call would raise SynchronousOnlyOperation."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@dataclass
class RunningServer:
    """A daphne process serving the platform and every institution on 127.0.0.1:<port>."""

    port: int
    process: subprocess.Popen
    log_path: Path

    def url(self, host: str = "localhost", path: str = "/") -> str:
        """`url("acme.localhost", "/accounts/login/")` → `http://acme.localhost:<port>/accounts/login/`."""
        return f"http://{host}:{self.port}{path}"

    def log(self) -> str:
        """What the server wrote to stderr so far (requests, warnings, tracebacks)."""
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database described by `settings_dict` (a unix socket HOST via ?host=)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or ""
    port = settings_dict.get("PORT") or ""
    name = quote(settings_dict["NAME"], safe="")
    port_part = f":{port}" if port else ""
    if host.startswith("/"):
        return f"postgresql://{credentials}{port_part}/{name}?host={quote(host, safe='')}"
    return f"postgresql://{credentials}{host}{port_part}/{name}"


def _answers(port: int) -> bool:
    """Whether the server serves `GET /` for the platform host (a 5xx means it cannot yet)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "localhost"})
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return response.status < 500


PLATFORM_STRIPE_SECRET_KEY = "sk_test_platform_browser"
PLATFORM_STRIPE_WEBHOOK_SECRET = "whsec_platform_browser"


@pytest.fixture(scope="session")
def running_server(test_database: dict, tmp_path_factory, stripe_standin) -> Iterator[RunningServer]:
    """A real daphne subprocess on the test database; stopped at the end.

    What it writes is committed: tests that use it must remove what they create. The platform's
    Stripe account is the local stand-in (its hosted checkout is the "sandboxed" one).
    """
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(test_database),
        "REDIS_URL": os.environ.get("REDIS_URL", settings.REDIS_URL),
        "PLATFORM_DOMAIN": "localhost",
        "SITE_SCHEME": "http",
        "SITE_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "PLATFORM_STRIPE_SECRET_KEY": PLATFORM_STRIPE_SECRET_KEY,
        "PLATFORM_STRIPE_WEBHOOK_SECRET": PLATFORM_STRIPE_WEBHOOK_SECRET,
        "PLATFORM_STRIPE_API_BASE": stripe_standin.api_base,
    }
    log_path = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(port=port, process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _answers(port):
            if process.poll() is not None:
                pytest.fail(f"daphne exited with code {process.returncode}:\n{server.log()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"daphne did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{server.log()}",
                    pytrace=False,
                )
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class CreatedInstitutions:
    """Subdomains of institutions a browser test made through the server, dropped at the end."""

    subdomains: list[str] = field(default_factory=list)

    def add(self, subdomain: str) -> str:
        self.subdomains.append(subdomain)
        return subdomain


@pytest.fixture(scope="session")
def created_institutions(test_database: dict, django_db_blocker) -> Iterator[CreatedInstitutions]:
    """Drops the institutions registered here once the browser is closed.

    Playwright's sync API keeps an event loop running in this thread while it is started, and
    Django refuses ORM calls while one runs. `browser` depends on this fixture, so this teardown
    runs after Playwright stopped.
    """
    created = CreatedInstitutions()
    yield created
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        for institution in Institution.objects.filter(slug__in=created.subdomains):
            drop_institution(institution)
        connection.set_schema_to_public()


@pytest.fixture(scope="session")
def browser(created_institutions: CreatedInstitutions) -> Iterator[Browser]:
    """The system Chromium, headless, for the whole session."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"The browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no cookies) with one phone-sized page, closed after the test."""
    context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshot_dir() -> Path:
    """Where browser tests leave screenshots: outside the checkout (PEERLEARN_SCREENSHOTS overrides)."""
    path = Path(
        os.environ.get("PEERLEARN_SCREENSHOTS") or Path(tempfile.gettempdir()) / "peerlearn-screenshots"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path
