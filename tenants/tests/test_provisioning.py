"""Provisioning: a sign-up becomes a live institution with its admin, or leaves nothing behind."""

import dataclasses
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import PASSWORD, HostClient, drop_institution, signup_for
from tenant_apps.accounts.models import LoginLink, User
from tenants import services
from tenants.models import Domain, Institution
from tenants.services import institution_provision


def test_provisioning_makes_a_ready_institution(db):
    result = institution_provision(signup=signup_for("gamma-u", admin_email="Boss@Gamma.example"))
    institution = result.institution
    assert institution.schema_name == "gamma_u"
    assert schema_exists("gamma_u")
    assert Domain.objects.get(tenant=institution).domain == "gamma-u.localhost"
    with tenant_context(institution):
        admin = User.objects.get()
        assert admin.email == "boss@gamma.example"
        assert admin.is_tenant_admin and admin.is_staff
        assert admin.check_password(PASSWORD)
        assert LoginLink.objects.filter(user=admin).count() == 1


def test_the_login_link_signs_the_admin_in_once(db):
    result = institution_provision(signup=signup_for("delta-u"))
    client = HostClient(result.host)
    response = client.get(f"/accounts/link/{result.login_token}/", follow=True)
    assert response.status_code == 200
    assert "Welcome, Ada" in response.content.decode()

    again = HostClient(result.host).get(f"/accounts/link/{result.login_token}/", follow=True)
    assert "expired or was already used" in again.content.decode()
    assert not again.wsgi_request.user.is_authenticated


def test_the_login_link_expires(db, settings):
    result = institution_provision(signup=signup_for("epsilon-u"))
    with tenant_context(result.institution):
        LoginLink.objects.update(expires_at=LoginLink.objects.get().expires_at.replace(year=2000))
    response = HostClient(result.host).get(f"/accounts/link/{result.login_token}/", follow=True)
    assert "expired or was already used" in response.content.decode()


def test_a_login_link_is_worthless_on_another_institution(db, institution_b):
    result = institution_provision(signup=signup_for("zeta-u"))
    response = HostClient(f"{institution_b.slug}.localhost").get(
        f"/accounts/link/{result.login_token}/", follow=True
    )
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.parametrize(
    ("subdomain", "message"),
    [
        ("www", "reserved"),
        ("admin", "reserved"),
        ("api", "reserved"),
        ("static", "reserved"),
        ("media", "reserved"),
        ("mail", "reserved"),
        ("pg-catalog", "reserved"),
        ("alpha-u", "already taken"),
        ("ab", "3 to 30 characters"),
        ("Has Space", "3 to 30 characters"),
        ("-dash", "3 to 30 characters"),
        ("dash-", "3 to 30 characters"),
        ("double--dash", "3 to 30 characters"),
        ("9lives", "3 to 30 characters"),
        ("under_score", "3 to 30 characters"),
        ("x" * 31, "3 to 30 characters"),
    ],
)
def test_unusable_subdomains_are_refused(institution_a, subdomain, message):
    with pytest.raises(ApplicationError) as error:
        institution_provision(signup=signup_for(subdomain))
    assert message in " ".join(error.value.fields["subdomain"])


def test_bad_admin_details_are_refused_by_field(db):
    with pytest.raises(ApplicationError) as error:
        institution_provision(signup=signup_for("eta-u", admin_email="not-an-email", admin_password="123"))
    assert "admin_email" in error.value.fields
    assert not Institution.objects.filter(slug="eta-u").exists()

    with pytest.raises(ApplicationError) as error:
        institution_provision(signup=signup_for("eta-u", admin_password="12345678"))
    assert "admin_password" in error.value.fields

    with pytest.raises(ApplicationError) as error:
        institution_provision(signup=signup_for("eta-u", country="XX", timezone="Mars/Olympus"))
    assert {"country", "timezone"} <= set(error.value.fields)


class InjectedFailure(Exception):
    pass


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """No test transaction around the test: what the service commits is really committed."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        yield
        connection.set_schema_to_public()


@pytest.mark.parametrize("failing_step", range(len(services.STEPS)))
def test_a_failure_at_any_step_leaves_nothing_behind(committed, monkeypatch, failing_step):
    def fail_after(step):
        def run(p):
            step.run(p)  # the step does its work, then everything fails
            raise InjectedFailure(step.label)

        return dataclasses.replace(step, run=run)

    steps = list(services.STEPS)
    steps[failing_step] = fail_after(steps[failing_step])
    monkeypatch.setattr(services, "STEPS", tuple(steps))

    with pytest.raises(InjectedFailure):
        institution_provision(signup=signup_for("theta-u"))

    assert not Institution.objects.filter(slug="theta-u").exists()
    assert not Domain.objects.filter(domain="theta-u.localhost").exists()
    assert not schema_exists("theta_u")
    assert connection.schema_name == "public"
    # And the same sign-up succeeds afterwards: nothing half-made blocks it.
    monkeypatch.undo()
    result = institution_provision(signup=signup_for("theta-u"))
    drop_institution(result.institution)


def test_create_institution_command_shows_progress(db):
    out = StringIO()
    call_command(
        "create_institution",
        name="Iota College",
        subdomain="iota-college",
        admin_name="Ian Admin",
        admin_email="ian@iota.example",
        admin_password=PASSWORD,
        country="IE",
        currency="EUR",
        timezone="Europe/Dublin",
        stdout=out,
    )
    output = out.getvalue()
    assert "1/7 Checking the details" in output
    assert "7/7" in output
    assert "iota-college.localhost" in output
    assert Institution.objects.get(slug="iota-college").currency == "EUR"


def test_create_institution_command_reports_problems(db, institution_a):
    with pytest.raises(CommandError, match="already taken"):
        call_command(
            "create_institution",
            name="Copy",
            subdomain=institution_a.slug,
            admin_name="X",
            admin_email="x@example.org",
            admin_password=PASSWORD,
            stdout=StringIO(),
        )
