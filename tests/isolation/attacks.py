"""The attackers, and one attack: every method and every filled URL of one endpoint, as one of them.

What counts as a leak:
- a response (headers, body, a ZIP's files) shows a marker of A that the attacker may not see:
  any of A's on B's host, any of A's private ones on A's host;
- on a host where the attacker counts as anonymous, a page that is not public by design answers
  with anything but 401/403/404/405, a redirect to a sign-in page, or (for writes) 400;
- a row of A changed or disappeared (and, for A's credentials on B's host, a row of B);
- an email sent while serving a request on B's host shows a marker of A.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core import mail

from shared.core.testing import HostClient

from .discovery import Endpoint, api_body, build_path, fill_values, form_guess
from .fingerprint import changed_rows, fingerprint, touched
from .world import Side, World, response_text

# Counted across the run and printed at the end (conftest.py).
STATS: Counter = Counter()

_ANY_MARKER = re.compile(r"leaka(?:pub|prv)x[0-9a-f]{10}")
_PRIVATE_MARKER = re.compile(r"leakaprvx[0-9a-f]{10}")
SIGN_IN_PATHS = ("/accounts/login/", "/admin/login/")


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    host: str  # "a" or "b": whose site the requests go to
    session_of: tuple[str, str] | None = None  # (side, person): whose session cookie is sent
    token_of: tuple[str, str] | None = None  # (side, secret): whose API token is sent
    anonymous_there: bool = False  # the host must treat the requests as anonymous
    private_only: bool = False  # on A's own host: A's public markers may show, private ones not
    guard_b: bool = False  # B's rows must not change either
    own: str | None = None  # the person of A whose own rows the requests may change


ROLES: tuple[Role, ...] = (
    Role("b_admin@b", "B's administrator on B's host, with A's ids", "b", session_of=("b", "admin")),
    Role(
        "b_learner@b",
        "B's learner whose id is A's owner's, on B's host, with A's ids",
        "b",
        session_of=("b", "owner"),
    ),
    Role(
        "a_admin_cookie@b",
        "A's administrator's session cookie presented on B's host",
        "b",
        session_of=("a", "admin"),
        anonymous_there=True,
        guard_b=True,
    ),
    Role(
        "a_owner_token@b",
        "A's owner's API token presented on B's host",
        "b",
        token_of=("a", "owner_api_token"),
        anonymous_there=True,
        guard_b=True,
    ),
    Role("anonymous@a", "an anonymous visitor of A's site", "a", anonymous_there=True, private_only=True),
    Role(
        "a_learner@a",
        "a learner of A who owns none of the objects",
        "a",
        session_of=("a", "learner"),
        private_only=True,
        own="learner",
    ),
    Role(
        "a_mentor@a",
        "a mentor of A who is not the owner's mentor",
        "a",
        session_of=("a", "other_mentor"),
        private_only=True,
        own="other_mentor",
    ),
)


def refused(response, method: str) -> bool:
    status = response.status_code
    if status in (401, 403, 404, 405) or (status == 400 and method != "GET"):
        return True
    if status in (301, 302, 303, 307, 308):
        return urlsplit(response["Location"]).path.startswith(SIGN_IN_PATHS)
    return False


def leaked_markers(text: str, *, private_only: bool) -> set[str]:
    return set((_PRIVATE_MARKER if private_only else _ANY_MARKER).findall(text))


def _asked(values) -> set[str]:
    """Markers in the request's own parameters: echoing what was asked (a `?next=` link to sign in
    with the requested path) shows the attacker nothing new."""
    return leaked_markers(" ".join(values).lower(), private_only=False)


# One client per host for the whole run: a new client loads the middleware again, and whitenoise
# then indexes every static file (a third of a second each time).
_clients: dict[str, HostClient] = {}


def _client(role: Role, world: World, host: Side) -> tuple[HostClient, dict[str, str]]:
    client = _clients.get(host.host)
    if client is None:
        client = _clients[host.host] = HostClient(host.host, raise_request_exception=True)
    client.cookies = SimpleCookie()
    if role.session_of:
        side, person = role.session_of
        client.cookies[settings.SESSION_COOKIE_NAME] = world.side(side).session_cookie(person)
    extra = {}
    if role.token_of:
        side, secret = role.token_of
        extra["HTTP_AUTHORIZATION"] = f"Token {world.side(side).secrets[secret]}"
    return client, extra


def _check_identity(role: Role, world: World, response) -> bool:
    """Whether the request carried the role's session: the signed-in roles' own (the suite would
    prove nothing if a sign-in were broken), none for the others. False when the response tells
    nothing (health probes answer for no institution)."""
    request = response.wsgi_request
    session = getattr(request, "session", None)
    if session is None or getattr(request, "tenant", None) is None:
        return False
    signed_in_as = session.get(SESSION_KEY)
    if role.session_of and role.session_of[0] == role.host:
        expected = world.side(role.session_of[0]).users[role.session_of[1]]
        assert signed_in_as == str(expected.pk), f"{role.name} is not signed in"
    else:
        assert signed_in_as is None, f"{role.name} is signed in as user #{signed_in_as}"
    return True


def _send(client: HostClient, endpoint: Endpoint, method: str, path: str, a: Side, extra: dict):
    if method == "GET":
        return client.get(path, **extra)
    if endpoint.in_openapi:
        body = api_body(endpoint, method, a)
        data = json.dumps(body) if body is not None else ""
        return client.generic(method, path, data, content_type="application/json", **extra)
    if method == "POST":
        return client.post(path, form_guess(a), **extra)
    return client.generic(method, path, **extra)


def _what(a: Side, marker: str) -> str:
    return f"{a.markers.get(marker, 'data of an earlier run')} ({marker})"


def _describe(response) -> str:
    location = f" → {response['Location']}" if response.has_header("Location") else ""
    return f"{response.status_code}{location}"


def attack(endpoint: Endpoint, role: Role, world: World) -> list[str]:
    """Every method × filled URL of `endpoint` as `role`; the leaks found (empty: none)."""
    a, host = world.a, world.side(role.host)
    combos = fill_values(endpoint, world, host)  # raises MissingValue for an unknown parameter
    client, extra = _client(role, world, host)
    own = a.own_rows(role.own) if role.own else frozenset()
    problems: list[str] = []
    identity_checked = False
    for values in combos:
        path = build_path(endpoint, values)
        for method in endpoint.methods:
            response = _send(client, endpoint, method, path, a, extra)
            STATS["requests"] += 1
            identity_checked = identity_checked or _check_identity(role, world, response)
            leaked = leaked_markers(response_text(response), private_only=role.private_only)
            for marker in sorted(leaked - _asked(values.values())):
                problems.append(f"{method} {path} → {response.status_code} shows {_what(a, marker)}")
            if role.anonymous_there and not endpoint.public and not refused(response, method):
                problems.append(f"{method} {path} answered {_describe(response)}; expected a refusal")
            STATS["response checks"] += 2 if role.anonymous_there and not endpoint.public else 1
    if role.host == "b":
        for message in mail.outbox:
            content = "\n".join(
                [message.subject, message.body, *(alt[0] for alt in getattr(message, "alternatives", []))]
            ).lower()
            for marker in sorted(leaked_markers(content, private_only=False)):
                problems.append(f"an email to {message.to} shows {_what(a, marker)}")
    guarded = [a, world.b] if role.guard_b else [a]
    if touched([side.schema for side in guarded]):  # else nothing was updated or deleted at all
        STATS["fingerprints read"] += len(guarded)
        for side in guarded:
            changes = changed_rows(
                side.baseline, fingerprint(side.institution), own=own if side is a else frozenset()
            )
            problems += [f"{side.label.upper()}'s {row}" for row in changes]
    STATS["row checks"] += sum(len(side.baseline) for side in guarded)
    return problems
