"""In two real browsers: a mentor and a learner meet in the live room — WebRTC connects peer to peer
with video playing on both sides, chat crosses, and nothing loads from another host."""

import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from shared.core.testing import PASSWORD, signup_for
from tenants.services import institution_provision

from .conftest import CHROMIUM, CHROMIUM_ARGS, PHONE_VIEWPORT, CreatedInstitutions, RunningServer

pytestmark = pytest.mark.browser

# Fake camera and microphone, no permission prompt, and host candidates on the loopback interface.
# The autoplay policy is left as browsers ship it: the remote videos must play under it.
FAKE_MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
CONNECT_TIMEOUT_MS = 30_000
LOCAL_HOSTS = re.compile(r"^(localhost|127\.0\.0\.1|[a-z0-9-]+(\.[a-z0-9-]+)*\.localhost)$")


def off_the_event_loop(function):
    """Run ORM work in a fresh thread: Playwright's running event loop makes Django refuse it here."""
    from django.db import connection

    def run():
        try:
            return function()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.fixture(scope="module")
def media_browser(browser: Browser) -> Iterator[Browser]:
    """A second Chromium, from the session's Playwright, with fake media devices."""
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *FAKE_MEDIA_ARGS])
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def live_session(created_institutions: CreatedInstitutions, django_db_blocker) -> dict:
    """A committed institution with a mentor, a learner and a confirmed session starting in 2 minutes."""
    subdomain = created_institutions.add(f"e2e-live-{secrets.token_hex(3)}")

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


class RequestLog:
    """Every host a context talks to (HTTP and WebSocket), and every uncaught page error."""

    def __init__(self) -> None:
        self.hosts: set[str] = set()
        self.errors: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        context.on("request", lambda request: self._url(request.url))
        context.on("page", self._page)

    def _page(self, page: Page) -> None:
        page.on("websocket", lambda socket: self._url(socket.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss"):
            self.hosts.add(parts.hostname or "")


def sign_in(page: Page, server: RunningServer, host: str, email: str) -> None:
    page.goto(server.url(host, "/accounts/login/"))
    page.locator('input[name="username"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()


def enter_the_room(page: Page, server: RunningServer, host: str, booking_id: int) -> None:
    page.goto(server.url(host, f"/sessions/{booking_id}/"))
    page.get_by_role("link", name="Join the live room").click()
    expect(page).to_have_url(re.compile(rf"/sessions/{booking_id}/live/$"))
    expect(page.locator("#live-room")).to_have_attribute("data-state", "connected", timeout=15_000)


def remote_tile(page: Page):
    return page.locator("#live-grid figure[data-peer-id]")


def expect_media_flowing(*pages: Page) -> None:
    for page in pages:
        tile = remote_tile(page)
        expect(tile).to_have_count(1)
        expect(tile).to_have_attribute("data-connection-state", "connected", timeout=CONNECT_TIMEOUT_MS)
        expect(tile).to_have_attribute("data-video-playing", "true", timeout=CONNECT_TIMEOUT_MS)


def test_mentor_and_learner_meet_in_the_live_room(
    media_browser: Browser, running_server: RunningServer, live_session: dict, screenshot_dir
) -> None:
    host, booking_id = live_session["host"], live_session["booking_id"]
    log = RequestLog()
    mentor_context = media_browser.new_context(viewport={"width": 1280, "height": 900})
    learner_context = media_browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        for context in (mentor_context, learner_context):
            log.watch(context)
        mentor, learner = mentor_context.new_page(), learner_context.new_page()

        sign_in(mentor, running_server, host, "maya@mentor.example")
        sign_in(learner, running_server, host, "leo@learner.example")
        enter_the_room(mentor, running_server, host, booking_id)
        started = time.monotonic()
        enter_the_room(learner, running_server, host, booking_id)  # the newcomer calls the mentor

        # Peer to peer on both sides: connected, and the other's (fake) camera is playing.
        expect_media_flowing(mentor, learner)
        connected_in = time.monotonic() - started
        expect(remote_tile(mentor).locator("figcaption")).to_contain_text("Leo Learner")
        expect(remote_tile(learner).locator("figcaption")).to_contain_text("Maya Mentor")
        for page in (mentor, learner):
            size = page.evaluate(
                "() => { const v = document.querySelector('#live-grid figure[data-peer-id] video');"
                " return [v.videoWidth, v.videoHeight, v.paused]; }"
            )
            assert size[0] > 0 and size[1] > 0 and size[2] is False, size

        # Chat: the learner (on a phone, where the chat starts collapsed) writes; the mentor reads.
        learner.locator("#live-chat-panel > summary").click()
        learner.locator("#live-chat-input").fill("Hello from the learner's phone")
        learner.get_by_role("button", name="Send").click()
        expect(mentor.locator("#live-chat-messages")).to_contain_text("Hello from the learner's phone")
        expect(mentor.locator("#live-chat-messages")).to_contain_text("Leo Learner")
        expect(learner.locator("#live-chat-messages")).to_contain_text("Hello from the learner's phone")

        # The phone layout stacks: nothing wider than the screen, big controls.
        assert learner.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        leave_box = learner.get_by_role("button", name="Leave the room").bounding_box()
        assert leave_box and leave_box["height"] >= 44
        mentor.screenshot(path=str(screenshot_dir / "live-room-mentor.png"))
        learner.screenshot(path=str(screenshot_dir / "live-room-learner-phone.png"), full_page=True)

        # The learner leaves: their page says so and the mentor's tile of them goes away.
        learner.get_by_role("button", name="Leave the room").click()
        expect(learner.locator("#live-room")).to_have_attribute("data-state", "closed")
        expect(learner.locator("#live-banner")).to_contain_text("You left the room.")
        expect(remote_tile(mentor)).to_have_count(0, timeout=10_000)
        expect(mentor.locator("#live-room")).to_have_attribute("data-state", "connected")
    finally:
        mentor_context.close()
        learner_context.close()

    print(
        f"\nlive room: both peers connected with video playing {connected_in:.2f} s after the learner's join"
    )
    assert log.errors == []
    assert log.hosts and all(LOCAL_HOSTS.match(host) for host in log.hosts), sorted(log.hosts)


def test_a_dropped_socket_reconnects_and_the_mentor_ends_the_session(
    media_browser: Browser, running_server: RunningServer, live_session: dict
) -> None:
    host, booking_id = live_session["host"], live_session["booking_id"]
    mentor_context = media_browser.new_context(viewport={"width": 1280, "height": 900})
    learner_context = media_browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        mentor, learner = mentor_context.new_page(), learner_context.new_page()
        # The learner's room socket goes through Playwright, so the test can cut it like a network would.
        learner_sockets = []

        def through_playwright(page_side):
            learner_sockets.append((page_side, page_side.connect_to_server()))

        learner.route_web_socket(re.compile(r"/ws/sessions/\d+/$"), through_playwright)
        sign_in(mentor, running_server, host, "maya@mentor.example")
        sign_in(learner, running_server, host, "leo@learner.example")
        enter_the_room(mentor, running_server, host, booking_id)
        enter_the_room(learner, running_server, host, booking_id)
        expect_media_flowing(mentor, learner)

        # Presence: the learner mutes; the mentor's tile of them shows it.
        expect(remote_tile(mentor).get_by_title("Microphone off")).to_be_hidden()
        learner.get_by_role("button", name="Microphone").click()
        expect(learner.get_by_role("button", name="Microphone")).to_have_attribute("aria-pressed", "false")
        expect(remote_tile(mentor).get_by_title("Microphone off")).to_be_visible()

        # The socket drops (server going away): the page reconnects by itself, keeps its camera,
        # and both sides negotiate a new connection.
        old_peer_id = learner.locator("#live-room").get_attribute("data-peer-id")
        page_side, server_side = learner_sockets[-1]
        server_side.close(code=1000)
        page_side.close(code=1001, reason="going away")
        expect(learner.locator("#live-room")).to_have_attribute("data-state", "reconnecting")
        expect(learner.locator("#live-room")).to_have_attribute("data-state", "connected", timeout=15_000)
        assert len(learner_sockets) == 2
        assert learner.locator("#live-room").get_attribute("data-peer-id") != old_peer_id
        expect_media_flowing(mentor, learner)
        assert (
            learner.evaluate(
                "() => document.getElementById('live-local-video').srcObject.getVideoTracks()[0].readyState"
            )
            == "live"
        )
        # The learner's state came back with them: still muted, camera on.
        expect(remote_tile(mentor).get_by_title("Camera off")).to_be_hidden()
        expect(remote_tile(mentor).get_by_title("Microphone off")).to_be_visible()

        # The mentor ends the session for everyone; nobody can come back in.
        mentor.once("dialog", lambda dialog: dialog.accept())
        mentor.get_by_role("button", name="End for everyone").click()
        for page in (mentor, learner):
            expect(page.locator("#live-room")).to_have_attribute("data-state", "closed")
        expect(learner.locator("#live-banner")).to_contain_text("The mentor ended the session for everyone.")
        expect(mentor.locator("#live-banner")).to_contain_text("You ended the session for everyone.")
        learner.reload()
        expect(learner.locator("#live-room")).to_have_attribute("data-state", "closed")
        expect(learner.locator("#live-banner")).to_contain_text("ended")
        expect(learner.locator("#live-chat-input")).to_be_disabled()
    finally:
        mentor_context.close()
        learner_context.close()


DENY_CAMERA_AND_MICROPHONE = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
"""


def test_without_camera_permission_one_still_joins_and_can_share_a_screen(
    media_browser: Browser, running_server: RunningServer, live_session: dict
) -> None:
    host, booking_id = live_session["host"], live_session["booking_id"]
    mentor_context = media_browser.new_context(viewport={"width": 1280, "height": 900})
    learner_context = media_browser.new_context(viewport={"width": 1280, "height": 900})
    learner_context.add_init_script(DENY_CAMERA_AND_MICROPHONE)
    try:
        mentor, learner = mentor_context.new_page(), learner_context.new_page()
        sign_in(mentor, running_server, host, "maya@mentor.example")
        sign_in(learner, running_server, host, "leo@learner.example")
        enter_the_room(mentor, running_server, host, booking_id)
        enter_the_room(learner, running_server, host, booking_id)

        expect(learner.locator("#live-media-note")).to_contain_text(
            "You did not allow the camera and microphone"
        )
        expect(learner.get_by_role("button", name="Microphone")).to_be_disabled()
        expect(learner.get_by_role("button", name="Camera")).to_be_disabled()
        # The learner still sees and hears the mentor; the mentor sees that the learner has no camera.
        expect_media_flowing(learner)
        learner_tile = remote_tile(mentor)
        expect(learner_tile).to_have_attribute(
            "data-connection-state", "connected", timeout=CONNECT_TIMEOUT_MS
        )
        expect(learner_tile).to_have_attribute("data-video-playing", "false")
        expect(learner_tile.get_by_title("Camera off")).to_be_visible()

        # Sharing the screen needs no new negotiation: the video sender was there all along.
        learner.get_by_role("button", name="Share your screen").click()
        expect(learner.get_by_role("button", name="Stop sharing your screen")).to_have_attribute(
            "aria-pressed", "true"
        )
        expect(learner_tile.get_by_title("Sharing the screen")).to_be_visible()
        expect(learner_tile).to_have_attribute("data-video-playing", "true", timeout=CONNECT_TIMEOUT_MS)
        learner.get_by_role("button", name="Stop sharing your screen").click()
        expect(learner_tile.get_by_title("Sharing the screen")).to_be_hidden()
        expect(learner_tile.get_by_title("Camera off")).to_be_visible()
    finally:
        mentor_context.close()
        learner_context.close()
