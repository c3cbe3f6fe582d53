"""Every endpoint of an institution's site, found without a hand-written list.

- Pages: every URL pattern of `config.urls_tenant`, walked through its includes.
- API: every operation of the OpenAPI schema drf-spectacular generates; an API pattern's methods
  are the schema's (other pages are tried with GET and POST, what browsers send).

A URL's parameters are filled from the world by their names (`booking_id` → A's booking ids, …).
A parameter the mapping cannot fill makes that endpoint's tests fail with a message naming the
pattern: a new endpoint is never skipped in silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from itertools import product

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone

from tenant_apps.billing.models import Gateways

from .world import Side, World, world_object_for_model

TENANT_URLCONF = "config.urls_tenant"
PAGE_METHODS = ("GET", "POST")

# Pages anyone may open by design. Each needs a reason; the suite checks every entry still names a
# URL pattern. For these, anonymous visitors may get a 200, but never another institution's data
# (nor, on the institution's own host, anything that is not public there).
PUBLIC_PAGES: dict[str, str] = {
    "healthz": "liveness probe for load balancers; no institution data",
    "readyz": "readiness probe for load balancers; no institution data",
    "home": "the institution's landing page",
    "accounts:login": "sign-in form",
    "accounts:logout": "signing out needs no sign-in",
    "accounts:signup": "sign-up form (the institution's policy decides who may)",
    "accounts:mentor_apply": "mentor application form, open to visitors who sign up with it",
    "accounts:verify_email": "capability link: the signed token is the credential",
    "accounts:login_link": "capability link: the single-use token is the credential",
    "accounts:password_reset": "password reset request form",
    "accounts:password_reset_done": "static confirmation page",
    "accounts:password_reset_confirm": "capability link: the reset token is the credential",
    "manage:member_welcome": "capability link: the welcome token is the credential",
    "mentoring:directory": "the institution's public mentor directory",
    "mentoring:mentor_detail": "a mentor's public profile and reviews",
    "mentoring:groups": "the institution's public list of group sessions",
    "mentoring:group_detail": "a group session's public page",
    "mentoring:calendar_feed_ics": "capability link: calendar apps fetch it with the feed token, no session",
    "billing:webhook": "payment providers' webhooks, authenticated by their signature",
    "billing:payment_callback": "Razorpay's browser callback, authenticated by its signature",
    "billing:sandbox_checkout": "the offline sandbox's checkout page (development and tests only)",
    "billing:sandbox_onboarding": "the offline sandbox's onboarding page (development and tests only)",
    "notifications:twilio_status": "Twilio's status callback, authenticated by its signature",
    "notifications:twilio_inbound": "Twilio's inbound SMS webhook, authenticated by its signature",
    "api-token": "exchanges an email and password for an API token",
    "api-schema": "the API's OpenAPI description; no data",
    "api-docs": "the API's Swagger UI; no data",
    "tenant_admin:login": "the admin site's sign-in form",
    "tenant_admin:logout": "signing out needs no sign-in",
    "tenant_admin:jsi18n": "the admin site's translated strings",
    "tenant_media": "the public media folders (avatars, branding) of the institution on its own host",
}


@dataclass(frozen=True)
class Endpoint:
    """One URL pattern of the tenant URLconf, with the methods it is tried with."""

    name: str  # "namespace:name", or "" for an unnamed pattern
    route: str  # the pattern's text, e.g. "sessions/<int:booking_id>/"
    segments: tuple[tuple[str, str], ...]  # ("route" | "regex", text) of each nested pattern
    kwargs: tuple[str, ...]
    methods: tuple[str, ...]
    in_openapi: bool

    @property
    def id(self) -> str:
        return f"{self.name or '-'}[{self.route}]"

    @property
    def public(self) -> bool:
        return self.name in PUBLIC_PAGES

    @property
    def openapi_path(self) -> str:
        return "/" + _ROUTE_PARAM.sub(lambda m: "{" + m["name"] + "}", self.route)


_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>(?:[^()]|\([^()]*\))*)\)")
_ALTERNATIVES = re.compile(r"^[\w-]+(\|[\w-]+)*$")


def _segment(pattern) -> tuple[str, str]:
    if isinstance(pattern, RoutePattern):
        return ("route", str(pattern))
    if isinstance(pattern, RegexPattern):
        return ("regex", pattern.regex.pattern)
    raise TypeError(f"Unknown URL pattern type {type(pattern).__name__}")


def _kwargs_of(segment: tuple[str, str]) -> list[str]:
    kind, text = segment
    if kind == "route":
        return [m["name"] for m in _ROUTE_PARAM.finditer(text)]
    return [m["name"] for m in _REGEX_GROUP.finditer(text)]


def _walk(patterns, segments=(), namespace=""):
    for entry in patterns:
        here = (*segments, _segment(entry.pattern))
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, here, inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or "")
            yield name, here


@cache
def openapi_operations() -> dict[str, tuple[str, ...]]:
    """OpenAPI path → its methods, from the schema drf-spectacular serves at /api/schema/."""
    return {path: tuple(method.upper() for method in ops) for path, ops in openapi_schema()["paths"].items()}


@cache
def openapi_schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator(urlconf=TENANT_URLCONF).get_schema(request=None, public=True)


@cache
def tenant_endpoints() -> tuple[Endpoint, ...]:
    operations = openapi_operations()
    endpoints = []
    for name, segments in _walk(get_resolver(TENANT_URLCONF).url_patterns):
        route = "".join(text for _, text in segments)
        kwargs = tuple(k for segment in segments for k in _kwargs_of(segment))
        endpoint = Endpoint(name, route, tuple(segments), kwargs, PAGE_METHODS, False)
        methods = operations.get(endpoint.openapi_path)
        if methods:
            endpoint = Endpoint(name, route, tuple(segments), kwargs, methods, True)
        endpoints.append(endpoint)
    return tuple(endpoints)


# --- Filling a pattern's parameters -----------------------------------------------------------


class MissingValue(Exception):
    """A URL parameter the world cannot fill: the mapping below needs an entry for it."""


def _alternatives(endpoint: Endpoint, kwarg: str) -> list[str] | None:
    for kind, text in endpoint.segments:
        if kind != "regex":
            continue
        for match in _REGEX_GROUP.finditer(text):
            if match["name"] == kwarg and _ALTERNATIVES.match(match["body"]):
                return match["body"].split("|")
    return None


def _admin_model(endpoint: Endpoint) -> str | None:
    """`admin/mentoring/booking/<path:object_id>/…` → "mentoring.booking"."""
    match = re.match(r"admin/(\w+)/(\w+)/<", endpoint.route)
    return f"{match[1]}.{match[2]}" if match else None


def _scenes(a: Side) -> list[dict[str, object]]:
    """Consistent sets of A's ids: a pattern with several ids gets ids that belong together."""
    return [
        {
            "booking_id": a.pk("booking_completed"),
            "material_id": a.pk("material"),
            "reference": a.objects["payment_completed"].reference,
        },
        {"booking_id": a.pk("booking_confirmed"), "reference": a.objects["payment_confirmed"].reference},
        {
            "booking_id": a.pk("booking_held"),
            "reference": a.objects["payment_held"].reference,
            "checkout_id": a.objects["payment_held"].provider_ref,
        },
    ]


def _by_kwarg(a: Side, host: Side) -> dict[str, list[object]]:
    """Parameters whose name means the same thing in every pattern."""
    return {
        "mentor_id": [a.pk("mentor_profile")],
        "member_id": [a.users["owner"].pk],
        "group_id": [a.pk("group")],
        "import_id": [a.pk("member_import")],
        "domain_id": [a.pk("domain")],
        "override_id": [a.pk("override")],
        "account_id": [a.objects["payout_account"].account_id],
        "url": ["no-such-page/"],  # the admin site's catch-all: the rest of the path
        "gateway": [value for value in Gateways.values if value != Gateways.NONE],
        "schema_name": sorted({a.schema, host.schema}),
        "path": [
            a.media_paths["avatar"],
            a.media_paths["logo"],
            a.media_paths["material"],
            a.media_paths["export_personal"],
            f"avatars/../{a.media_paths['material']}",
        ],
    }


def _by_pattern(a: Side, secrets_of: Side) -> dict[str, dict[str, list[object]]]:
    """Parameters whose meaning depends on the pattern. Secrets (tokens) come from the institution
    that is *not* the host's: an attacker holds another institution's links, not this one's."""
    s = secrets_of.secrets
    return {
        "accounts:verify_email": {"token": [s["verify_token"]]},
        "accounts:login_link": {"token": [s["login_link_token"]]},
        "accounts:password_reset_confirm": {"uidb64": [s["owner_uidb64"]], "token": [s["owner_reset_token"]]},
        "manage:member_welcome": {"uidb64": [s["owner_uidb64"]], "token": [s["owner_welcome_token"]]},
        "mentoring:calendar_feed_ics": {"token": [s["calendar_token"]]},
        "notifications:open": {"pk": [a.pk("notification")]},
        "accounts:data_export_download": {"export_id": [a.pk("export_personal")]},
        "manage:export_download": {"export_id": [a.pk("export_institution")]},
        "tenant_admin:view_on_site": {
            "content_type_id": [a.pk("content_type_booking")],
            "object_id": [a.pk("booking_completed")],
        },
        "tenant_admin:auth_user_password_change": {"id": [a.users["owner"].pk]},
    }


def fill_values(endpoint: Endpoint, world: World, host: Side) -> list[dict[str, str]]:
    """Every combination of values this endpoint is tried with (one dict of parameters each)."""
    a = world.a
    if not endpoint.kwargs:
        return [{}]
    specific = _by_pattern(a, world.other(host)).get(endpoint.name, {})
    general = _by_kwarg(a, host)
    admin_model = _admin_model(endpoint)
    scene_kwargs = {k for scene in _scenes(a) for k in scene}
    options: dict[str, list[object]] = {}
    for kwarg in endpoint.kwargs:
        if kwarg in specific:
            options[kwarg] = specific[kwarg]
        elif (choices := _alternatives(endpoint, kwarg)) is not None:
            options[kwarg] = choices
        elif kwarg == "object_id" and admin_model:
            obj = world_object_for_model(a, admin_model)
            if obj is None:
                raise MissingValue(
                    f"{endpoint.id}: the world has no object of {admin_model}; add one to "
                    "tests/isolation/world.py so its admin pages are tried with A's ids."
                )
            options[kwarg] = [obj.pk]
        elif kwarg in general:
            options[kwarg] = general[kwarg]
        elif kwarg not in scene_kwargs:
            raise MissingValue(
                f"{endpoint.id}: no value for the URL parameter {kwarg!r}. Say what it means in "
                "tests/isolation/discovery.py (_by_kwarg, or _by_pattern for this pattern's name)."
            )
    scene_needed = [k for k in endpoint.kwargs if k not in options]
    combos: list[dict[str, str]] = []
    scenes = [s for s in _scenes(a) if all(k in s for k in scene_needed)] if scene_needed else [{}]
    for scene in scenes:
        names = list(options)
        for values in product(*(options[name] for name in names)):
            combo = {k: str(scene[k]) for k in scene_needed} | {
                n: str(v) for n, v in zip(names, values, strict=True)
            }
            if combo not in combos:
                combos.append(combo)
    return combos


def build_path(endpoint: Endpoint, values: dict[str, str]) -> str:
    """The URL path of `endpoint` with `values` in place of its parameters."""
    parts = []
    for kind, text in endpoint.segments:
        if kind == "route":
            parts.append(_ROUTE_PARAM.sub(lambda m: values[m["name"]], text))
        else:
            filled = _REGEX_GROUP.sub(lambda m: values[m["name"]], text)
            parts.append(filled.lstrip("^").rstrip("$").replace("\\", ""))
    return "/" + "".join(parts)


# --- Request bodies -------------------------------------------------------------------------------


# What a page's form might ask for, filled with values that would succeed for the right person:
# a write refused only because a field was missing would prove nothing. (Not the sandbox checkout's
# "outcome": paying there changes the sandbox's state in Redis, which no rollback undoes.)
def form_guess(a: Side) -> dict[str, str]:
    soon = timezone.now() + timedelta(days=2)
    return {
        "action": "approve",
        "decision": "approve",
        "role": "admin",
        "reason": "attack",
        "rating": "5",
        "comment": "attack",
        "reply": "attack",
        "topic": "attack",
        "title": "attack",
        "description": "attack",
        "name": "attack",
        "full_name": "attack",
        "headline": "attack",
        "starts_at": soon.isoformat(),
        "minutes": "30",
        "capacity": "5",
        "price": "0",
        "amount": "1",
        "id": str(a.pk("notification")),
        "override_id": str(a.pk("override")),
        "next": "/",
        "email": "attacker@iso.example",
        "domain": "attacker.example",
        "timezone": "UTC",
        "hide_powered_by": "on",
        "mentor": str(a.pk("mentor_profile")),
    }


def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def example_value(schema: dict, components: dict, name: str, a: Side, depth: int = 0):
    schema = _resolve(schema, components)
    if "allOf" in schema:
        merged: dict = {}
        for part in schema["allOf"]:
            value = example_value(part, components, name, a, depth)
            if isinstance(value, dict):
                merged |= value
            else:
                return value
        return merged
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return example_value(schema[key][0], components, name, a, depth)
    if "enum" in schema:
        return next((v for v in schema["enum"] if v not in ("", None)), None)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        return {
            prop: example_value(sub, components, prop, a, depth + 1)
            for prop, sub in schema.get("properties", {}).items()
            if not _resolve(sub, components).get("readOnly")
            and _resolve(sub, components).get("format") != "binary"
        }
    if kind == "array":
        return [example_value(schema.get("items", {}), components, name, a, depth + 1)]
    if kind == "integer":
        return {"mentor_id": a.pk("mentor_profile"), "booking_id": a.pk("booking_completed")}.get(name, 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    fmt = schema.get("format")
    soon = timezone.now() + timedelta(days=2)
    if fmt == "date-time":
        return soon.isoformat()
    if fmt == "date":
        return soon.date().isoformat()
    if fmt == "time":
        return "10:00"
    if fmt == "email":
        return "attacker@iso.example"
    return "attack"


def api_body(endpoint: Endpoint, method: str, a: Side) -> dict | None:
    """A JSON body for an API write, built from the operation's request schema."""
    schema = openapi_schema()
    operation = schema["paths"].get(endpoint.openapi_path, {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    components = schema.get("components", {}).get("schemas", {})
    value = example_value(content["application/json"]["schema"], components, "", a)
    return value if isinstance(value, dict) else None
