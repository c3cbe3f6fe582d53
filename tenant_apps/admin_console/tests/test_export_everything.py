"""Export everything: an administrator asks, the worker archives the institution's schema and media
(tenants/backup.py), administrators download it for a week, and nobody else ever does.

The archive is made by pg_dump from its own connection, so these tests commit what they make and
drop it at the end."""

from __future__ import annotations

import copy
import io
import json
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from shared.core.expiry import expired_files_sweep
from shared.core.models import ExpiringFile
from shared.core.testing import HostClient, drop_institution, host_of, make_user, sign_in, signup_for
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.exports import institution_export_run
from tenant_apps.admin_console.models import AuditEntry, DataExport
from tenants.models import Institution
from tenants.services import institution_provision


@pytest.fixture
def two_sites(test_database, django_db_blocker) -> Iterator[dict]:
    """Two committed institutions, each with an admin; A also has a learner and a file."""
    made: list[Institution] = []
    with django_db_blocker.unblock():
        try:
            for name in ("ex-a", "ex-b"):
                made.append(
                    institution_provision(signup=signup_for(f"{name}-{secrets.token_hex(3)}")).institution
                )
            a, b = made
            make_user(a, email="learner@ex-a.example")
            with tenant_context(a):
                default_storage.save("branding/logo.txt", ContentFile(b"our logo"))
            connection.set_schema_to_public()
            yield {"a": a, "b": b, "admin_a": f"admin@{a.slug}.example", "admin_b": f"admin@{b.slug}.example"}
        finally:
            connection.set_schema_to_public()
            for institution in made:
                with schema_context(institution.schema_name):
                    ExpiringFile.objects.filter(schema_name=institution.schema_name).delete()
                drop_institution(institution)
                shutil.rmtree(Path(settings.MEDIA_ROOT) / institution.schema_name, ignore_errors=True)
            connection.set_schema_to_public()


def signed_in(institution: Institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


def test_an_admin_exports_everything_and_downloads_it(two_sites):
    a = two_sites["a"]
    admin = signed_in(a, two_sites["admin_a"])
    page = admin.get("/manage/export/")
    assert page.status_code == 200 and "Export everything" in page.content.decode()

    assert admin.post("/manage/export/").status_code == 302
    with tenant_context(a):
        export = DataExport.objects.get(kind="institution")
        assert export.status == DataExport.Status.QUEUED
        assert AuditEntry.objects.filter(action="export.institution_requested").exists()
        # Asking again while it is prepared is refused.
        again = admin.post("/manage/export/")
        assert again.status_code == 409 and "already being prepared" in again.content.decode()

        institution_export_run(export_id=export.pk)  # what the worker runs
        export.refresh_from_db()
    assert export.status == DataExport.Status.READY
    assert export.file_name.startswith("exports/institution/")
    assert export.expires_at > timezone.now() + timedelta(days=6)

    response = admin.get(f"/manage/export/{export.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="{a.slug}-everything-')
    body = b"".join(response.streaming_content)
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("manifest.json"))
    assert {"schema.dump", "public.json", "manifest.json", "media/branding/logo.txt"} <= set(names)
    assert manifest["schema"] == a.schema_name
    assert manifest["table_counts"]["accounts_user"] == 2
    with tenant_context(a):
        assert AuditEntry.objects.filter(action="export.institution_downloaded").exists()

    # A second export does not carry the first one inside it.
    with tenant_context(a):
        second = DataExport.objects.create(
            kind="institution", requested_by=User.objects.get(email=two_sites["admin_a"])
        )
        institution_export_run(export_id=second.pk)
        second.refresh_from_db()
        with default_storage.open(second.file_name, "rb") as handle, tarfile.open(fileobj=handle) as archive:
            assert not [name for name in archive.getnames() if name.startswith("media/exports/")]


def test_nobody_but_the_institutions_admins_gets_the_export(two_sites):
    a, b = two_sites["a"], two_sites["b"]
    with tenant_context(a):
        admin = User.objects.get(email=two_sites["admin_a"])
        export = DataExport.objects.create(kind="institution", requested_by=admin)
        institution_export_run(export_id=export.pk)
    url = f"/manage/export/{export.pk}/download/"

    assert signed_in(a, "learner@ex-a.example").get(url).status_code == 403
    assert signed_in(a, "learner@ex-a.example").post("/manage/export/").status_code == 403
    assert HostClient(host_of(a)).get(url).status_code == 302  # sent to sign in
    assert signed_in(b, two_sites["admin_b"]).get(url).status_code == 404  # B's admin, B's site
    on_b = HostClient(host_of(b))
    on_b.cookies = copy.deepcopy(signed_in(a, two_sites["admin_a"]).cookies)  # A's admin session on B's site
    assert on_b.get(url).status_code == 302
    with tenant_context(a):
        assert not AuditEntry.objects.filter(action="export.institution_downloaded").exists()


def test_an_export_expires_and_its_file_is_deleted(two_sites):
    a = two_sites["a"]
    with tenant_context(a):
        admin = User.objects.get(email=two_sites["admin_a"])
        export = DataExport.objects.create(kind="institution", requested_by=admin)
        institution_export_run(export_id=export.pk)
        export.refresh_from_db()
        assert default_storage.exists(export.file_name)
    client = signed_in(a, two_sites["admin_a"])

    expired_files_sweep()  # not due yet: left alone
    with tenant_context(a):
        assert default_storage.exists(export.file_name)
    later = export.expires_at + timedelta(minutes=1)
    with tenant_context(a):
        DataExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert client.get(f"/manage/export/{export.pk}/download/").status_code == 410
    assert expired_files_sweep(now=later) >= 1
    with tenant_context(a):
        assert not default_storage.exists(export.file_name)
    assert not ExpiringFile.objects.filter(schema_name=a.schema_name).exists()
