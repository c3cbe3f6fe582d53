"""An institution's own domain serves its site only after its TXT record proves it; the admin
then makes it the main address. DNS is a fake resolver here (settings.DOMAIN_RESOLVER)."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context, tenant_context

from shared.core.testing import HostClient, host_of, make_user, sign_in
from shared.platform_billing.models import Plan, Subscription
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.models import AuditEntry
from tenants import domains
from tenants.directory import directory
from tenants.models import Domain

HOST = "mentoring.alpha-example.edu"


class FakeResolver:
    """TXT records by name, set by the tests."""

    records: dict[str, list[str]] = {}

    def txt(self, name: str) -> list[str]:
        if name == "_peerlearn-challenge.broken.example.edu":
            raise LookupError("DNS lookup failed: Timeout")
        return list(self.records.get(name, []))


@pytest.fixture(autouse=True)
def fake_dns(settings):
    settings.DOMAIN_RESOLVER = "tenant_apps.admin_console.tests.test_domains.FakeResolver"
    FakeResolver.records = {}
    yield
    FakeResolver.records = {}


@pytest.fixture
def admin(institution_a):
    Subscription.objects.filter(institution=institution_a).update(plan=Plan.objects.get(code="growth"))
    user = make_user(institution_a, email="dom-admin@a.example", role=User.Role.ADMIN)
    client = HostClient(host_of(institution_a))
    sign_in(client, user.email)
    return client


def page(host: str):
    directory.forget()  # what the commit's invalidation does (tests roll back instead of committing)
    return HostClient(host).get("/mentors/")


def test_a_domain_serves_the_site_only_after_its_record_is_found(institution_a, admin):
    response = admin.post("/manage/domains/", {"domain": f"https://{HOST.upper()}/"}, follow=True)
    assert f"{HOST} added" in response.content.decode()
    domain = Domain.objects.get(domain=HOST)
    assert domain.tenant_id == institution_a.pk and not domain.is_verified and domain.verification_token
    assert domains.challenge_value(domain) in response.content.decode()
    assert page(HOST).status_code == 404  # unverified: the unknown-host page

    checked = admin.post(f"/manage/domains/{domain.pk}/check/", follow=True).content.decode()
    assert "Not verified yet" in checked
    assert page(HOST).status_code == 404

    FakeResolver.records[domains.challenge_name(domain)] = ["v=spf1 -all", domains.challenge_value(domain)]
    checked = admin.post(f"/manage/domains/{domain.pk}/check/", follow=True).content.decode()
    assert "is verified" in checked
    served = page(HOST)
    assert served.status_code == 200 and institution_a.name in served.content.decode()


def test_a_wrong_token_or_a_dns_failure_is_reported_not_verified(institution_a, admin):
    admin.post("/manage/domains/", {"domain": "broken.example.edu"})
    broken = Domain.objects.get(domain="broken.example.edu")
    assert domains.domain_verify(domain=broken) is False
    assert "Timeout" in broken.last_check_error
    admin.post("/manage/domains/", {"domain": HOST})
    domain = Domain.objects.get(domain=HOST)
    FakeResolver.records[domains.challenge_name(domain)] = ["peerlearn-verification=someone-elses-token"]
    assert domains.domain_verify(domain=domain) is False


def test_the_admin_chooses_the_main_address(institution_a, admin):
    admin.post("/manage/domains/", {"domain": HOST})
    domain = Domain.objects.get(domain=HOST)
    refused = admin.post(f"/manage/domains/{domain.pk}/primary/", follow=True).content.decode()
    assert "Verify the domain" in refused
    FakeResolver.records[domains.challenge_name(domain)] = [domains.challenge_value(domain)]
    domains.domain_verify(domain=domain)
    admin.post(f"/manage/domains/{domain.pk}/primary/")
    assert Domain.objects.get(pk=domain.pk).is_primary
    assert Domain.objects.filter(tenant_id=institution_a.pk, is_primary=True).count() == 1
    with tenant_context(institution_a):
        from tenant_apps.sessions.calendar import site_url

        assert site_url("/x/").endswith(f"://{HOST}/x/")
        actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"domain.added", "domain.primary"} <= actions
    old = Domain.objects.get(domain=host_of(institution_a))
    admin.post(f"/manage/domains/{old.pk}/remove/")
    assert Domain.objects.filter(pk=old.pk).exists()  # the platform's address stays


def test_plans_without_custom_domains_are_refused(institution_a, admin):
    Subscription.objects.filter(institution=institution_a).update(plan=Plan.objects.get(code="starter"))
    response = admin.post("/manage/domains/", {"domain": HOST}, follow=True)
    assert "not part of the Starter plan" in response.content.decode()
    assert not Domain.objects.filter(domain=HOST).exists()


@pytest.mark.parametrize("bad", ["localhost", "not a domain", "x.localhost", "-bad-.example.edu", "1.2.3.4"])
def test_bad_names_are_form_errors(admin, bad):
    response = admin.post("/manage/domains/", {"domain": bad}, follow=True)
    assert response.status_code == 200
    assert not Domain.objects.filter(domain=bad).exists()


def test_another_institution_cannot_touch_a_domain_or_the_page(institution_a, institution_b, admin):
    admin.post("/manage/domains/", {"domain": HOST})
    domain = Domain.objects.get(domain=HOST)
    b_admin = make_user(institution_b, email="dom-admin@b.example", role=User.Role.ADMIN)
    client_b = HostClient(host_of(institution_b))
    sign_in(client_b, b_admin.email)
    for action in ("check", "primary", "remove"):
        assert client_b.post(f"/manage/domains/{domain.pk}/{action}/").status_code == 404
    assert Domain.objects.filter(pk=domain.pk).exists()
    learner = make_user(institution_a, email="dom-learner@a.example")
    learner_client = HostClient(host_of(institution_a))
    sign_in(learner_client, learner.email)
    assert learner_client.get("/manage/domains/").status_code == 403
    connection.set_schema_to_public()
    with schema_context("public"):
        assert Domain.objects.get(pk=domain.pk).tenant_id == institution_a.pk
