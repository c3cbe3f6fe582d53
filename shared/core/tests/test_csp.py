"""Content-Security-Policy and the other browser security headers, on every kind of response, and pages
with no inline script. tests/test_browser_csp.py loads pages in Chromium under the policy."""

import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from shared.core.middleware import content_security_policy
from shared.core.testing import PASSWORD, HostClient, host_of, sign_in


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice"
        directives[name] = sources
    return directives


def assert_security_headers(response) -> None:
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp["default-src"] + csp["script-src"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:", "blob:"]
    assert csp["media-src"] == ["'self'", "blob:"]
    assert csp["connect-src"][0] == "'self'"
    assert all(re.fullmatch(r"wss?://[^*/\s]+", source) for source in csp["connect-src"][1:])
    assert {"'self'", "https://api.razorpay.com", "https://checkout.stripe.com"} <= set(csp["form-action"])
    permissions = dict(item.strip().split("=") for item in response["Permissions-Policy"].split(","))
    assert permissions["camera"] == permissions["microphone"] == permissions["display-capture"] == "(self)"
    assert permissions["geolocation"] == "()"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Request-ID"]


def test_every_kind_of_response_carries_the_headers(institution_a) -> None:
    platform = HostClient(settings.PLATFORM_DOMAIN)
    site = HostClient(host_of(institution_a))
    responses = {
        "platform page": platform.get("/"),
        "institution page": site.get("/accounts/login/"),
        "unknown host": HostClient("nobody.example").get("/"),
        "404 page": site.get("/no-such-page/"),
        "API error": site.get("/api/v1/me/"),
        "static file": site.get("/static/css/app.css"),
        "health probe": HostClient("10.0.3.7").get("/healthz"),
    }
    for what, response in responses.items():
        assert_security_headers(response)
        # Also where Django's X-Frame-Options never ran (the unknown-host page, static files).
        assert policy(response)["frame-ancestors"] == ["'none'"], what
    assert responses["unknown host"].status_code == 404
    # The live room's socket may go to this host only.
    assert policy(responses["institution page"])["connect-src"] == [
        "'self'",
        f"ws://{host_of(institution_a)}",
    ]
    secure = site.get("/accounts/login/", secure=True)
    assert policy(secure)["connect-src"] == ["'self'", f"wss://{host_of(institution_a)}"]


def test_only_the_branding_preview_may_be_framed_and_only_by_its_own_site(client_a, institution_a) -> None:
    sign_in(client_a, f"admin@{institution_a.slug}.example", PASSWORD)
    preview = client_a.get("/manage/branding/preview/")
    assert preview.status_code == 200
    assert preview["X-Frame-Options"] == "SAMEORIGIN"
    assert policy(preview)["frame-ancestors"] == ["'self'"]
    branding = client_a.get("/manage/branding/")
    assert policy(branding)["frame-ancestors"] == ["'none'"]
    assert "'self'" in policy(branding)["frame-src"]


def test_sign_up_may_hand_over_to_the_new_institutions_host() -> None:
    response = HostClient(f"{settings.PLATFORM_DOMAIN}:8000").get("/signup/")
    form_action = policy(response)["form-action"]
    assert f"http://*.{settings.PLATFORM_DOMAIN}:8000" in form_action


@override_settings(
    BILLING_API_BASES={"stripe": "http://127.0.0.1:9911", "razorpay": ""},
    PLATFORM_STRIPE={"api_base": "http://127.0.0.1:9922/"},
)
def test_forms_may_go_to_the_configured_payment_stand_ins() -> None:
    request = RequestFactory().get("/", HTTP_HOST="acme.localhost")
    form_action = content_security_policy(request, HttpResponse()).split("form-action ")[1].split(";")[0]
    assert "http://127.0.0.1:9911" in form_action.split()
    assert "http://127.0.0.1:9922" in form_action.split()


@pytest.mark.parametrize(
    ("options", "origins"),
    [
        (
            {"bucket_name": "pl-media", "region_name": "eu-west-1"},
            ["https://pl-media.s3.eu-west-1.amazonaws.com", "https://pl-media.s3.amazonaws.com"],
        ),
        (
            {
                "bucket_name": "pl-media",
                "endpoint_url": "https://minio.internal:9000",
                "addressing_style": "path",
            },
            ["https://minio.internal:9000"],
        ),
    ],
)
def test_media_in_s3_may_be_shown_from_the_bucket(options: dict, origins: list[str]) -> None:
    s3 = {"BACKEND": "shared.core.storage.TenantS3Storage", "OPTIONS": options}
    storages = {**settings.STORAGES, "default": s3}
    with override_settings(STORAGES=storages):
        header = content_security_policy(RequestFactory().get("/"), HttpResponse())
    directives = {part.split()[0]: part.split()[1:] for part in header.split(";")}
    assert directives["img-src"] == ["'self'", "data:", "blob:", *origins]
    assert directives["media-src"] == ["'self'", "blob:", *origins]


class ScriptFinder(HTMLParser):
    """Inline scripts, event-handler attributes and javascript: URLs in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not values.get("src") and values.get("type") != "application/json":
            self._in_inline_script = True
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>")
            if name in {"href", "src", "action", "formaction"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}={value}>")

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:80]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


def inline_scripts(html: str) -> list[str]:
    finder = ScriptFinder()
    finder.feed(html)
    return finder.problems


def test_the_finder_sees_inline_scripts() -> None:
    assert inline_scripts("<script>alert(1)</script>")
    assert inline_scripts('<button onclick="go()">')
    assert inline_scripts('<a href=" JavaScript:go()">')
    assert not inline_scripts('<script src="/static/js/app.js" defer></script>')
    assert not inline_scripts('<script id="x" type="application/json">{"a": 1}</script>')


def test_pages_have_no_inline_script(institution_a, client_a) -> None:
    platform = HostClient(settings.PLATFORM_DOMAIN)
    pages = {
        "platform home": platform.get("/"),
        "platform sign-up": platform.get("/signup/"),
        "staff admin login": platform.get("/admin/login/"),
        "unknown host": HostClient("nobody.example").get("/"),
        "login": client_a.get("/accounts/login/"),
        "API docs": client_a.get("/api/docs/"),
    }
    sign_in(client_a, f"admin@{institution_a.slug}.example", PASSWORD)
    for path in (
        "/",
        "/mentors/",
        "/manage/",
        "/manage/branding/",
        "/manage/branding/preview/",
        "/manage/analytics/",
        "/manage/members/",
        "/notifications/",
        "/admin/",
        "/no-such-page/",
    ):
        pages[path] = client_a.get(path)
    for what, response in pages.items():
        assert response.status_code in {200, 404}, (what, response.status_code)
        assert response["Content-Type"].startswith("text/html"), what
        assert inline_scripts(response.content.decode()) == [], what
    # The API docs' start-up script comes from its own URL.
    script = client_a.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
