"""The audit log page: who changed what, filtered and paginated, for this institution's admins."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts import services as accounts
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.audit import audit_record
from tenant_apps.admin_console.models import AuditEntry


def admin_client(institution) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, f"admin@{institution.slug}.example")
    return client


def test_the_log_shows_who_did_what_to_whom_and_the_change(institution_a):
    person = make_user(institution_a, email="changed@audit.example", full_name="Chris Changed")
    with tenant_context(institution_a):
        admin = User.objects.get(email=f"admin@{institution_a.slug}.example")
        accounts.member_role_change(actor=admin, member=person, role=User.Role.MENTOR)
    page = admin_client(institution_a).get("/manage/audit/").content.decode()
    assert f"Ada Admin &lt;admin@{institution_a.slug}.example&gt;" in page
    assert "member.role_changed" in page and "changed@audit.example" in page
    assert "learner</span> → mentor" in page


def test_filters_by_action_and_actor_and_pages(institution_a):
    other = make_user(institution_a, email="other-admin@audit.example", full_name="Olive Other", role="admin")
    with tenant_context(institution_a):
        admin = User.objects.get(email=f"admin@{institution_a.slug}.example")
        for i in range(55):
            audit_record(
                actor=admin, action="branding.changed", target=f"t{i}", changes={"theme": ["a", "b"]}
            )
        audit_record(actor=other, action="member.deactivated", target="gone@audit.example")
    client = admin_client(institution_a)

    by_action = client.get("/manage/audit/?action=member.deactivated").content.decode()
    assert "gone@audit.example" in by_action and "branding.changed</code>" not in by_action
    by_actor = client.get(f"/manage/audit/?actor={other.pk}").content.decode()
    assert "gone@audit.example" in by_actor and ">t0<" not in by_actor
    assert f'<option value="{other.pk}" selected>Olive Other' in by_actor

    first = client.get("/manage/audit/?action=branding.changed").content.decode()
    assert "Page 1 of 2" in first and ">t54<" in first and ">t0<" not in first
    assert "?action=branding.changed&amp;page=2" in first
    second = client.get("/manage/audit/?action=branding.changed&page=2").content.decode()
    assert ">t0<" in second and ">t54<" not in second

    with CaptureQueriesContext(connection) as few:
        client.get("/manage/audit/?page=2")
    with tenant_context(institution_a):
        for i in range(30):
            audit_record(actor=other, action="member.invited", target=f"more{i}@audit.example")
    with CaptureQueriesContext(connection) as many:
        client.get("/manage/audit/?page=2")
    assert len(many) == len(few)


def test_only_this_institutions_admins_see_its_log(institution_a, institution_b):
    with tenant_context(institution_a):
        audit_record(actor=None, action="settings.changed", target="secret-of-a")
    learner = make_user(institution_a, email="learner@audit.example")
    client = HostClient(host_of(institution_a))
    sign_in(client, learner.email)
    assert client.get("/manage/audit/").status_code == 403
    assert "secret-of-a" not in admin_client(institution_b).get("/manage/audit/").content.decode()
    with tenant_context(institution_b):
        assert not AuditEntry.objects.filter(target="secret-of-a").exists()
    assert "secret-of-a" in admin_client(institution_a).get("/manage/audit/").content.decode()
