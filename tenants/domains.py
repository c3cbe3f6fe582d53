"""An institution's own domains: added by its admins, proven by a DNS TXT record, then served.

    add (unverified, with a token) ──TXT record found──▶ verified (served) ──▶ may become primary

The DNS lookup is behind `Resolver` (settings.DOMAIN_RESOLVER): dnspython in real life, a fake
in tests. docs/custom-domains.md explains the record and TLS.
"""

from __future__ import annotations

import logging
import secrets
from typing import Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tenants.utils import schema_context

from shared.core.errors import ApplicationError

from .directory import directory, normalize_host
from .models import Domain, Institution

logger = logging.getLogger(__name__)

CHALLENGE_PREFIX = "_peerlearn-challenge"
TOKEN_PREFIX = "peerlearn-verification="


class Resolver(Protocol):
    def txt(self, name: str) -> list[str]:
        """The TXT strings published at `name` ([] when there are none or the name does not exist)."""


class DnsResolver:
    """The real DNS, through dnspython."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def txt(self, name: str) -> list[str]:
        import dns.exception
        import dns.resolver

        try:
            answer = dns.resolver.resolve(name, "TXT", lifetime=self.timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        except dns.exception.DNSException as error:
            raise LookupError(f"DNS lookup failed: {error.__class__.__name__}") from None
        return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def resolver() -> Resolver:
    return import_string(settings.DOMAIN_RESOLVER)()


def challenge_name(domain: Domain | str) -> str:
    return f"{CHALLENGE_PREFIX}.{domain if isinstance(domain, str) else domain.domain}"


def challenge_value(domain: Domain) -> str:
    return f"{TOKEN_PREFIX}{domain.verification_token}"


def _valid_hostname(host: str) -> bool:
    labels = host.split(".")
    return (
        len(labels) >= 2
        and len(host) <= 253
        and all(
            0 < len(label) <= 63 and label.replace("-", "").isalnum() and label[0] != "-" for label in labels
        )
        and not labels[-1].isdigit()
    )


def _platform_host(host: str) -> bool:
    platform = settings.PLATFORM_DOMAIN.split(":")[0]
    return host == platform or host.endswith("." + platform)


def domain_add(*, institution: Institution, hostname: str, actor=None) -> Domain:
    """Add the institution's own domain, unverified, with the token its TXT record must carry."""
    from shared.platform_billing.limits import require_feature
    from shared.platform_billing.models import Feature

    require_feature(Feature.CUSTOM_DOMAIN, institution=institution)
    hostname = hostname.strip()
    if "://" in hostname:  # a pasted address: keep its host
        hostname = urlsplit(hostname).hostname or ""
    host = normalize_host(hostname.rstrip("/"))
    if not _valid_hostname(host):
        raise ApplicationError(
            "Enter a domain name such as mentoring.example.edu.", fields={"domain": ["Not a domain name."]}
        )
    if _platform_host(host):
        raise ApplicationError(
            "Addresses under the platform's domain are given by the platform; enter your own domain.",
            fields={"domain": ["Use your own domain."]},
        )
    with transaction.atomic():
        with schema_context("public"):
            if Domain.objects.filter(domain=host).exists():
                raise ApplicationError(
                    "That domain is already in use.", status=409, fields={"domain": ["Taken."]}
                )
            domain = Domain.objects.create(
                domain=host,
                tenant_id=institution.pk,
                is_primary=False,
                verification_token=secrets.token_urlsafe(24),
            )
        _audit(actor, "domain.added", host)
    return domain


def domain_verify(*, domain: Domain, dns: Resolver | None = None) -> bool:
    """Look for the TXT record; once found the domain is served. Returns whether it is verified."""
    if domain.verified_at is not None:
        return True
    try:
        records = (dns or resolver()).txt(challenge_name(domain))
    except LookupError as error:
        records, problem = [], str(error)
    else:
        problem = (
            ""
            if challenge_value(domain) in records
            else f"No TXT record {challenge_name(domain)} with the token yet."
        )
    with schema_context("public"), transaction.atomic():
        locked = Domain.objects.select_for_update().get(pk=domain.pk)
        locked.last_checked_at = timezone.now()
        locked.last_check_error = problem[:200]
        if not problem:
            locked.verified_at = locked.last_checked_at
            transaction.on_commit(directory.invalidate)
        locked.save(update_fields=["last_checked_at", "last_check_error", "verified_at"])
    domain.refresh_from_db()
    return domain.verified_at is not None


def domains_verify_pending(*, dns: Resolver | None = None) -> int:
    """Beat: check the domains still waiting for their record (only those); how many got verified."""
    pending = Domain.objects.filter(verified_at__isnull=True).exclude(verification_token="")
    return sum(1 for domain in pending if domain_verify(domain=domain, dns=dns))


def domain_make_primary(*, domain: Domain, actor=None) -> Domain:
    """The address links and emails use. Only a verified domain can be primary."""
    if domain.verified_at is None:
        raise ApplicationError("Verify the domain before making it the main address.", status=409)
    with transaction.atomic():
        with schema_context("public"):
            Domain.objects.filter(tenant_id=domain.tenant_id).exclude(pk=domain.pk).update(is_primary=False)
            Domain.objects.filter(pk=domain.pk).update(is_primary=True)
        _audit(actor, "domain.primary", domain.domain)
        transaction.on_commit(directory.invalidate)
    domain.refresh_from_db()
    return domain


def domain_remove(*, domain: Domain, actor=None) -> None:
    if domain.is_primary:
        raise ApplicationError("Make another domain the main address first.", status=409)
    if _platform_host(domain.domain):
        raise ApplicationError("The platform's address of your site cannot be removed.", status=409)
    with transaction.atomic():
        with schema_context("public"):
            Domain.objects.filter(pk=domain.pk).delete()
        _audit(actor, "domain.removed", domain.domain)
        transaction.on_commit(directory.invalidate)


def _audit(actor, action: str, target: str) -> None:
    """In the caller's (the institution's) schema, like the rest of its audit log."""
    if actor is not None:
        from tenant_apps.admin_console.audit import audit_record

        audit_record(actor=actor, action=action, target=target)
