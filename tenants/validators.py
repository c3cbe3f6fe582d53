"""Rules for the names an institution chooses: its subdomain and, from it, its schema."""

import re
import zoneinfo
from functools import cache

from django.core.exceptions import ValidationError

SUBDOMAIN_RE = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){2,29}$")
SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{2,62}$")
HEX_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

# Names the platform keeps for itself, for infrastructure, or that would confuse users.
RESERVED_SUBDOMAINS = frozenset(
    """
    www www1 www2 api admin administrator static media mail email webmail smtp imap pop pop3 ftp
    sftp ssh ns ns1 ns2 dns mx autodiscover autoconfig app apps assets cdn files uploads img images
    auth login logout signin signup register account accounts billing pay payments checkout
    dashboard console status health help support docs blog news about contact legal privacy terms
    security dev staging test testing demo sandbox beta preview internal intranet vpn localhost
    public template tenant-template information-schema postgres root system platform peerlearn ws
    wss socket sockets live video rtc turn stun
    """.split()  # noqa: SIM905 (a word list reads better than ninety quoted strings)
)

INVALID_SUBDOMAIN_MESSAGE = (
    "Use 3 to 30 characters: lower-case letters, digits and single hyphens, "
    "starting with a letter and not ending with a hyphen."
)


def normalize_subdomain(value: str) -> str:
    return (value or "").strip().lower()


def validate_subdomain(value: str) -> None:
    """Raises ValidationError (with a message for people) unless `value` may be a subdomain."""
    if not SUBDOMAIN_RE.match(value):
        raise ValidationError(INVALID_SUBDOMAIN_MESSAGE, code="invalid")
    if value in RESERVED_SUBDOMAINS or value.startswith("pg-"):
        raise ValidationError(f"“{value}” is reserved. Please choose another name.", code="reserved")


def schema_name_for(subdomain: str) -> str:
    """The schema of an institution: its subdomain with hyphens as underscores."""
    schema_name = subdomain.replace("-", "_")
    if not SCHEMA_RE.match(schema_name):
        raise ValidationError("Invalid schema name.", code="invalid")
    return schema_name


def validate_hex_color(value: str) -> None:
    if not HEX_COLOR_RE.match(value or ""):
        raise ValidationError("Enter a colour as #rrggbb, for example #1d4ed8.", code="invalid")


@cache
def timezone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in timezone_names():
        raise ValidationError(f"“{value}” is not a known time zone.", code="invalid")
