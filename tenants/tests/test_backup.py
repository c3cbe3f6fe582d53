"""Backup and restore of one institution: pg_dump of its schema, its public rows and its media,
restored under a new subdomain with the same rows and files, the original left as it was.

The backup reads committed data from other connections (pg_dump, psql), so these tests commit
what they make and remove it at the end, media included."""

import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context, schema_exists, tenant_context
from PIL import Image

from shared.core.testing import HostClient, drop_institution, sign_in, signup_for
from shared.platform_billing.models import Subscription, SubscriptionEvent
from tenant_apps.accounts.models import User
from tenant_apps.sessions.materials import material_upload
from tenant_apps.sessions.models import Booking, Material
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor, next_weekday_at
from tenants.backup import read_manifest, table_counts
from tenants.models import Domain, Institution
from tenants.services import institution_provision

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n" + bytes(range(256)) * 40


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "navy").save(out, "PNG")
    return out.getvalue()


def remove_media(schema: str) -> None:
    shutil.rmtree(Path(settings.MEDIA_ROOT) / schema, ignore_errors=True)


@pytest.fixture(params=["disk", "s3"])
def media(request, settings) -> str:
    """Each round trip runs with files on disk and in S3 (the local stand-in)."""
    if request.param == "s3":
        settings.STORAGES = request.getfixturevalue("s3_standin").storages_setting()
    return request.param


@pytest.fixture
def committed(test_database, django_db_blocker, media) -> Iterator[list[str]]:
    """Database access without a test transaction; drops the institutions named in the list."""
    slugs: list[str] = []
    with django_db_blocker.unblock():
        try:
            yield slugs
        finally:
            connection.set_schema_to_public()
            for slug in slugs:
                institution = Institution.objects.filter(slug=slug).first()
                schema = slug.replace("-", "_")
                with schema_context(schema):
                    for name in _all_media():
                        default_storage.delete(name)
                if institution is not None:
                    drop_institution(institution)
                remove_media(schema)


def _all_media() -> list[str]:
    from tenants.backup import media_names

    return list(media_names(default_storage))


def source_institution(slugs: list[str]) -> tuple[Institution, Material]:
    """An institution with people, bookings in several states, a session file and a logo."""
    slugs.append("bk-source")
    institution = institution_provision(signup=signup_for("bk-source")).institution
    mentor = make_mentor(institution, email="mo@example.org")
    lee = make_learner(institution, email="lee@example.org")
    oz = make_learner(institution, email="oz@example.org")
    with tenant_context(institution):
        booking = make_booking(mentor, lee, next_weekday_at(10))
        make_booking(mentor, oz, next_weekday_at(11), status=Booking.Status.REQUESTED)
        make_booking(mentor, lee, next_weekday_at(12, weeks_ahead=2), status=Booking.Status.CANCELLED)
        material = material_upload(
            booking=booking, user=lee, upload=SimpleUploadedFile("Week 1 plan.pdf", PDF_BYTES)
        )
        logo = default_storage.save("branding/logo.png", ContentFile(png_bytes()))
    connection.set_schema_to_public()
    institution.logo = logo
    institution.primary_color = "#0f766e"
    institution.save()
    return institution, material


def test_a_backup_restores_as_a_new_institution_with_the_same_rows_and_files(committed, media, tmp_path):
    source, material = source_institution(committed)
    before = table_counts("bk_source")
    assert before[Booking._meta.db_table] == 3 and before[Material._meta.db_table] == 1

    call_command("institution_backup", "bk-source", str(tmp_path), stdout=io.StringIO())
    (archive,) = tmp_path.glob("bk-source-*.tar")
    manifest = read_manifest(archive)
    assert manifest["schema"] == "bk_source"
    assert manifest["table_counts"] == before
    assert sorted(item["name"] for item in manifest["media"]) == sorted(
        [material.file.name, source.logo.name]
    )
    with tarfile.open(archive) as tar:
        assert {"manifest.json", "public.json", "schema.dump"} <= set(tar.getnames())

    committed.append("bk-copy")
    out = io.StringIO()
    call_command("institution_restore", str(archive), "--as", "bk-copy", stdout=out)
    assert "restored at" in out.getvalue()

    copy = Institution.objects.get(slug="bk-copy")
    assert copy.schema_name == "bk_copy" and schema_exists("bk_copy")
    assert (copy.name, copy.primary_color, copy.logo.name) == (source.name, "#0f766e", source.logo.name)
    assert Domain.objects.get(tenant=copy).domain == "bk-copy.localhost"
    subscription = Subscription.objects.get(institution=copy)
    assert subscription.plan_id == Subscription.objects.get(institution=source).plan_id
    assert SubscriptionEvent.objects.filter(subscription=subscription).count() == 1
    # Every table has the rows it had; the original is untouched (same schema, same rows).
    assert table_counts("bk_copy") == before
    assert table_counts("bk_source") == before
    assert Institution.objects.get(slug="bk-source").schema_name == "bk_source"

    # The files are under the new prefix, byte for byte.
    with tenant_context(copy):
        restored = Material.objects.get()
        assert restored.file.name == material.file.name
        with restored.file.open("rb") as handle:
            assert handle.read() == PDF_BYTES
        with default_storage.open(copy.logo.name, "rb") as handle:
            assert handle.read() == png_bytes()
        assert sorted(User.objects.values_list("email", flat=True)) == sorted(
            ["admin@bk-source.example", "lee@example.org", "mo@example.org", "oz@example.org"]
        )
    connection.set_schema_to_public()

    # The restored site works: its learner signs in and downloads the session's file.
    client = HostClient("bk-copy.localhost")
    sign_in(client, "lee@example.org")
    response = client.get(f"/sessions/{restored.booking_id}/materials/{restored.pk}/")
    if media == "s3":
        assert response.status_code == 302
        assert "/bk_copy/materials/" in response["Location"]
    else:
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == PDF_BYTES


def test_a_restore_refuses_a_taken_subdomain_and_leaves_nothing_behind(committed, media, tmp_path):
    source_institution(committed)
    call_command("institution_backup", "bk-source", str(tmp_path), stdout=io.StringIO())
    (archive,) = tmp_path.glob("bk-source-*.tar")
    with pytest.raises(CommandError, match="already taken"):
        call_command("institution_restore", str(archive), "--as", "bk-source", stdout=io.StringIO())

    # Files already under the new prefix would be mixed with the restored ones: refused too.
    committed.append("bk-copy")
    with schema_context("bk_copy"):
        default_storage.save("avatars/stray.jpg", ContentFile(b"stray"))
    with pytest.raises(CommandError, match="not empty"):
        call_command("institution_restore", str(archive), "--as", "bk-copy", stdout=io.StringIO())
    assert not Institution.objects.filter(slug="bk-copy").exists()
    assert not schema_exists("bk_copy")


def test_backup_of_an_unknown_institution_is_refused(committed, tmp_path):
    with pytest.raises(CommandError, match="No institution"):
        call_command("institution_backup", "no-such-place", str(tmp_path), stdout=io.StringIO())
    assert list(tmp_path.iterdir()) == []
