"""Helpers for tests: institutions, people and clients that talk to one host."""

import itertools

from django.conf import settings
from django.test import Client
from django_tenants.utils import schema_context, tenant_context

from tenant_apps.accounts.models import User
from tenants.models import Institution
from tenants.services import InstitutionSignup

PASSWORD = "correct-horse-battery"
_emails = itertools.count(1)


def signup_for(subdomain: str, **overrides) -> InstitutionSignup:
    values = {
        "name": f"{subdomain.title()} Institute",
        "subdomain": subdomain,
        "country": "GB",
        "currency": "GBP",
        "timezone": "Europe/London",
        "admin_full_name": "Ada Admin",
        "admin_email": f"admin@{subdomain}.example",
        "admin_password": PASSWORD,
    }
    values.update(overrides)
    return InstitutionSignup(**values)


def host_of(institution: Institution) -> str:
    return f"{institution.slug}.{settings.PLATFORM_DOMAIN}"


def drop_institution(institution: Institution) -> None:
    with schema_context("public"):
        Institution.objects.get(pk=institution.pk).delete(force_drop=True)


def make_user(institution: Institution, **fields) -> User:
    fields.setdefault("email", f"person{next(_emails)}@example.org")
    fields.setdefault("full_name", "Pat Person")
    password = fields.pop("password", PASSWORD)
    with tenant_context(institution):
        user = User(**fields)
        user.set_password(password)
        user.save()
    return user


class HostClient(Client):
    """A test client that talks to one host, as a browser on that site would."""

    def __init__(self, host: str, **kwargs) -> None:
        super().__init__(HTTP_HOST=host, **kwargs)
        self.host = host


def sign_in(client: HostClient, email: str, password: str = PASSWORD) -> None:
    response = client.post("/accounts/login/", {"username": email, "password": password})
    assert response.status_code == 302, response.content.decode()[:2000]
