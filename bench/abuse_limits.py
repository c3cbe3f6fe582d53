"""What the abuse limits cost: an API request with and without the rate limits, a failed sign-in
(counted, audited) against one refused by a lockout, and the Redis calls underneath."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from shared.core.throttling import window_hit  # noqa: E402
from tenant_apps.accounts import throttling  # noqa: E402
from tenant_apps.accounts.models import User  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

WARM_UP = 20


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p90": statistics.quantiles(ordered, n=10, method="inclusive")[-1],
        "min": ordered[0],
        "max": ordered[-1],
    }


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, dict[str, float]]:
    """Cases alternate call by call, so a noisy moment on the machine hits them alike."""
    for call in cases.values():
        for _ in range(WARM_UP):
            call()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for run in range(runs):
        names = list(cases) if run % 2 == 0 else list(reversed(cases))
        for name in names:
            samples[name].append(timed(cases[name]))
    return {name: summary(values) for name, values in samples.items()}


def table(summaries: dict[str, dict[str, float]]) -> str:
    lines = ["| case | median ms | min | p90 | max |", "|---|---|---|---|---|"]
    for name, s in summaries.items():
        lines.append(f"| {name} | {s['median']:.3f} | {s['min']:.3f} | {s['p90']:.3f} | {s['max']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="measured calls per case (default 100)")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    parser.add_argument("--no-migrate", action="store_true", help="skip migrate_schemas before starting")
    args = parser.parse_args()
    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = f"DJANGO_SETTINGS_MODULE={settings_module} python bench/abuse_limits.py --runs {args.runs}"
    if not args.no_migrate:
        call_command("migrate_schemas", "--noinput", verbosity=0)
    connection.set_schema_to_public()
    subdomain = f"bench-abuse-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    signup = InstitutionSignup(
        name="Bench abuse",
        subdomain=subdomain,
        country="GB",
        currency="GBP",
        timezone="UTC",
        admin_full_name="Bench Admin",
        admin_email=f"admin@{subdomain}.example",
        admin_password=password,
    )
    host = f"{subdomain}.{settings.PLATFORM_DOMAIN}"
    limits = override_settings(
        LOGIN_FAILURE_LIMIT_ACCOUNT=10**9,
        LOGIN_FAILURE_LIMIT_ADDRESS=10**9,
        FAILED_SIGNIN_AUDIT_LIMIT=10**9,
        REST_FRAMEWORK={
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                "user": "1000000/min",
                "anon": "1000000/min",
                "institution": "1000000/min",
            },
        },
    )
    throttled = APIView.throttle_classes
    try:
        with sigterm_as_interrupt(), limits:
            institution = institution_provision(signup=signup).institution
            with tenant_context(institution):
                admin = User.objects.get(email=signup.admin_email)
                token = Token.objects.create(user=admin).key
            api = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {token}", REMOTE_ADDR="192.0.2.1")
            page = Client(HTTP_HOST=host, REMOTE_ADDR="192.0.2.2")
            locked = Client(HTTP_HOST=host, REMOTE_ADDR="192.0.2.3")
            with tenant_context(institution):
                throttling.login_failed(email="locked@bench.example", address="")
                with override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=1):
                    throttling.login_failed(email="locked@bench.example", address="")

            def api_without_limits() -> None:
                APIView.throttle_classes = []
                try:
                    assert api.get("/api/v1/me/").status_code == 200
                finally:
                    APIView.throttle_classes = throttled

            http = measure(
                {
                    "GET /api/v1/me/ with the rate limits (user + institution)": lambda: api.get(
                        "/api/v1/me/"
                    ),
                    "GET /api/v1/me/ without rate limits": api_without_limits,
                    "failed sign-in (password checked, counted, audited)": lambda: page.post(
                        "/accounts/login/", {"username": "nobody@bench.example", "password": "wrong"}
                    ),
                    "sign-in refused by a lockout (no password check, nothing written)": lambda: locked.post(
                        "/accounts/login/", {"username": "locked@bench.example", "password": "wrong"}
                    ),
                },
                args.runs,
            )
            with tenant_context(institution):
                redis = measure(
                    {
                        "login_lockout (account + address, 1 round trip)": lambda: throttling.login_lockout(
                            email="a@bench.example", address="192.0.2.9"
                        ),
                        "login_failed (2 counters, 1 round trip)": lambda: throttling.login_failed(
                            email="b@bench.example", address="192.0.2.10"
                        ),
                        "window_hit (one API rate counter)": lambda: window_hit(
                            f"bench:{subdomain}", period=60
                        ),
                    },
                    args.runs * 3,
                )
            host_facts = machine()
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        APIView.throttle_classes = throttled
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            drop_institution(subdomain)
        finally:
            signal.signal(signal.SIGTERM, previous)

    print(table(http))
    print()
    print(table(redis))
    body = f"""## Abuse limits

`{command}` ({host_facts["nproc"]} cores, {host_facts["cpu"]}, Postgres {host_facts["postgres"]},
settings `{settings_module}`: the real password hasher). In-process test client, one throw-away
institution; {args.runs} calls per HTTP case, {args.runs * 3} per Redis case, interleaved after
{WARM_UP} warm-up calls each.

{table(http)}

{table(redis)}"""
    if not args.no_doc:
        write_section("abuse-limits", body)
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
