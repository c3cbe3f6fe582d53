"""Production settings, loaded as production loads them: in a fresh process, from the sample environment
file. Also: custom domains pass Django's CSRF origin check without being listed, and the JSON logs."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from shared.core.logging import JsonFormatter, RequestContextFilter
from shared.core.testing import PASSWORD, HostClient, host_of, make_user
from tenants.models import Domain

REPO_ROOT = Path(__file__).resolve().parents[3]
ENV_EXAMPLE = REPO_ROOT / "deploy" / "production.env.example"
REQUIRED = ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "PLATFORM_DOMAIN")


def example_environment() -> dict[str, str]:
    """The variables of deploy/production.env.example (NAME=value lines; # starts a comment line)."""
    variables = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, separator, value = line.partition("=")
            assert separator and name == name.strip() and name.isupper(), f"not NAME=value: {line!r}"
            variables[name] = value
    return variables


def run_production(args: list[str], **overrides: str | None) -> subprocess.CompletedProcess:
    """`python <args>` with only the sample environment (plus PATH), as a production process would."""
    env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", **example_environment()}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_example_names_the_production_settings_module_and_every_required_variable() -> None:
    variables = example_environment()
    assert variables["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert all(variables.get(name) for name in REQUIRED)


def test_check_deploy_passes_with_no_warnings() -> None:
    result = run_production(["manage.py", "check", "--deploy"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
    assert "WARNING" not in output.upper()


def test_missing_required_variables_stop_the_start_naming_them() -> None:
    result = run_production(["manage.py", "check"], **dict.fromkeys(REQUIRED))
    assert result.returncode != 0
    assert (
        "Production settings need these environment variables: SECRET_KEY, FIELD_ENCRYPTION_KEYS, "
        "DATABASE_URL, REDIS_URL, PLATFORM_DOMAIN"
    ) in result.stderr

    result = run_production(["manage.py", "check"], REDIS_URL="")
    assert result.returncode != 0
    assert "Production settings need these environment variables: REDIS_URL " in result.stderr


def test_a_malformed_encryption_key_stops_the_start() -> None:
    keys = example_environment()["FIELD_ENCRYPTION_KEYS"] + ",not-a-key"
    result = run_production(["manage.py", "check"], FIELD_ENCRYPTION_KEYS=keys)
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS: key 2 is not a Fernet key" in result.stderr


PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
names = ["DEBUG", "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT",
         "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
         "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_DOMAIN", "CSRF_COOKIE_DOMAIN",
         "SESSION_COOKIE_NAME", "CSRF_COOKIE_NAME", "SESSION_COOKIE_HTTPONLY", "CSRF_TRUSTED_ORIGINS",
         "ALLOWED_HOSTS", "MIDDLEWARE", "LOGGING", "BILLING_SANDBOX_ENABLED"]
print(json.dumps({name: getattr(s, name) for name in names}, default=str))
"""


@pytest.fixture(scope="module")
def production_settings() -> dict:
    result = run_production(["-c", PRINT_SETTINGS])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_https_cookies_and_csrf_origins(production_settings: dict) -> None:
    s = production_settings
    assert s["DEBUG"] is False
    assert s["BILLING_SANDBOX_ENABLED"] is False
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_HSTS_SECONDS"] >= 31536000
    assert s["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert s["SECURE_HSTS_PRELOAD"] is True
    assert s["SESSION_COOKIE_SECURE"] is True
    assert s["CSRF_COOKIE_SECURE"] is True
    assert s["SESSION_COOKIE_HTTPONLY"] is True
    # Host-only: no Domain attribute, which the __Host- prefix makes browsers enforce.
    assert s["SESSION_COOKIE_DOMAIN"] is None
    assert s["CSRF_COOKIE_DOMAIN"] is None
    assert s["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert s["CSRF_COOKIE_NAME"].startswith("__Host-")
    assert s["CSRF_TRUSTED_ORIGINS"] == ["https://*.peerlearn.example", "https://peerlearn.example"]


def test_probes_are_exempt_from_the_https_redirect(production_settings: dict) -> None:
    from .test_health import PRODUCTION_REDIRECT_EXEMPT

    assert production_settings["SECURE_REDIRECT_EXEMPT"] == PRODUCTION_REDIRECT_EXEMPT


def test_logs_are_json_with_the_request_context(production_settings: dict) -> None:
    logging_config = production_settings["LOGGING"]
    handler = logging_config["handlers"]["console"]
    assert logging_config["formatters"][handler["formatter"]]["()"] == "shared.core.logging.JsonFormatter"
    assert [logging_config["filters"][name]["()"] for name in handler["filters"]] == [
        "shared.core.logging.RequestContextFilter"
    ]
    assert logging_config["root"]["handlers"] == ["console"]
    middleware = production_settings["MIDDLEWARE"]
    assert middleware[0] == "shared.core.middleware.RequestIdMiddleware"
    assert "shared.core.middleware.SecurityHeadersMiddleware" in middleware


# --- CSRF on institutions' own domains ---------------------------------------------------------------

CUSTOM_HOST = "mentoring.alpha-u.example"


@pytest.fixture
def custom_domain(institution_a) -> str:
    with schema_context("public"):
        Domain.objects.create(
            domain=CUSTOM_HOST, tenant=institution_a, is_primary=False, verified_at=timezone.now()
        )
    return CUSTOM_HOST


def sign_in_with_origin(host: str, origin: str) -> int:
    """POST the login form over HTTPS (as the proxy reports it) with this Origin; the status code."""
    client = HostClient(host, enforce_csrf_checks=True)
    page = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert page.status_code == 200
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        "/accounts/login/",
        {"username": "csrf@example.org", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"X-Forwarded-Proto": "https", "Origin": origin},
    )
    return response.status_code


@override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    CSRF_TRUSTED_ORIGINS=[f"https://*.{settings.PLATFORM_DOMAIN}", f"https://{settings.PLATFORM_DOMAIN}"],
)
def test_a_verified_custom_domain_passes_the_csrf_origin_check_without_being_listed(
    institution_a, custom_domain
) -> None:
    make_user(institution_a, email="csrf@example.org")
    assert not any(CUSTOM_HOST in origin for origin in settings.CSRF_TRUSTED_ORIGINS)
    # Same origin: Django compares Origin with the request's own scheme and host.
    assert sign_in_with_origin(CUSTOM_HOST, f"https://{CUSTOM_HOST}") == 302
    assert sign_in_with_origin(host_of(institution_a), f"https://{host_of(institution_a)}") == 302
    # Another site's page cannot post here, even with a valid token of its own...
    assert sign_in_with_origin(CUSTOM_HOST, "https://attacker.example") == 403
    # ...nor can the same host over plain HTTP (a downgraded origin).
    assert sign_in_with_origin(CUSTOM_HOST, f"http://{CUSTOM_HOST}") == 403


# --- JSON log lines ----------------------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def request_log():
    logger = logging.getLogger("peerlearn.request")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_request_log_line_is_one_json_object_with_the_request_context(client_a, institution_a, request_log):
    proxy_id = "3f2b9c1e-8a4d-4c6e-9f00-1234567890ab"
    response = client_a.get("/accounts/login/", headers={"X-Request-ID": proxy_id})
    assert response["X-Request-ID"] == proxy_id
    assert len(request_log) == 1 and "\n" not in request_log[0]
    entry = json.loads(request_log[0])
    assert entry["level"] == "INFO"
    assert entry["logger"] == "peerlearn.request"
    assert entry["message"] == "GET /accounts/login/ 200"
    assert entry["request_id"] == proxy_id
    assert entry["tenant"] == institution_a.schema_name
    assert entry["path"] == "/accounts/login/"
    assert entry["status"] == 200
    assert entry["method"] == "GET"
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["time"].endswith("+00:00")


def test_a_request_id_that_does_not_look_like_one_is_replaced(client_a, request_log):
    for forged in ("x", "abc\nINFO fake line", "a" * 65, ""):
        response = client_a.get("/healthz", headers={"X-Request-ID": forged})
        assert response["X-Request-ID"] != forged
        assert len(response["X-Request-ID"]) == 32
    entries = [json.loads(line) for line in request_log]
    assert [entry["level"] for entry in entries] == ["DEBUG"] * 4  # probes only at DEBUG
    assert len({entry["request_id"] for entry in entries}) == 4


def test_records_outside_a_request_have_null_context_and_carry_exceptions() -> None:
    record = logging.LogRecord("peerlearn.worker", logging.ERROR, __file__, 1, "failed %s", ("task",), None)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.attempt = 3
    RequestContextFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed task"
    assert entry["request_id"] is None and entry["tenant"] is None and entry["path"] is None
    assert entry["attempt"] == 3
    assert "ValueError: boom" in entry["exception"]


def test_django_request_errors_name_the_status_once(client_a) -> None:
    handler = Lines()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        client_a.get("/no-such-page/")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(handler.lines[-1])
    assert entry["status"] == 404
    assert "status_code" not in entry
    assert "request" not in entry
