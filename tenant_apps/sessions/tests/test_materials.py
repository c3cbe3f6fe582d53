"""Session materials: only real files of allowed types, stored under random names, and only the
session's two participants can download them (never through the public /media/ URLs)."""

import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django_tenants.utils import tenant_context
from PIL import Image

from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.sessions.materials import (
    DOCX,
    PPTX,
    XLSX,
    material_upload,
    materials_can_upload,
    materials_for,
    sanitize_name,
)
from tenant_apps.sessions.models import Booking, Material

from .factories import make_booking, make_learner, make_mentor, next_weekday_at

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
EXECUTABLE = (
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"
    + b"\x00" * 200
    + b"This program cannot be run"
)


def image_bytes(pillow_format: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "teal").save(out, pillow_format)
    return out.getvalue()


def office_bytes(main_type: str, main_part: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Override PartName="/{main_part}" ContentType="{main_type}.main+xml"/></Types>',
        )
        archive.writestr(main_part, "<xml/>")
    return out.getvalue()


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.exe", EXECUTABLE)
    return out.getvalue()


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    return body["error"]


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def signed_in(institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


def upload(client: HostClient, booking_id: int, content: bytes, name: str):
    return client.post(f"/sessions/{booking_id}/materials/", {"file": SimpleUploadedFile(name, content)})


@pytest.fixture
def scene(institution_a):
    mentor = make_mentor(institution_a, email="mo@example.org", full_name="Mo Mentor")
    lee = make_learner(institution_a, email="lee@example.org", full_name="Lee Learner")
    oz = make_learner(institution_a, email="oz@example.org", full_name="Oz Other")
    with tenant_context(institution_a):
        booking = make_booking(mentor, lee, next_weekday_at(10))
    connection.set_schema_to_public()
    return {"mentor": mentor, "lee": lee, "oz": oz, "booking": booking}


def stored(institution, booking: Booking) -> list[Material]:
    with tenant_context(institution):
        materials = list(Material.objects.filter(booking=booking).order_by("pk"))
    connection.set_schema_to_public()
    return materials


# --- What may be uploaded ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "content_type", "shown_name"),
    [
        ("notes.pdf", PDF_BYTES, "application/pdf", "notes.pdf"),
        ("diagram.png", image_bytes("PNG"), "image/png", "diagram.png"),
        ("photo.jpeg", image_bytes("JPEG"), "image/jpeg", "photo.jpeg"),
        ("anim.gif", image_bytes("GIF"), "image/gif", "anim.gif"),
        ("pic.webp", image_bytes("WEBP"), "image/webp", "pic.webp"),
        ("plan.txt", "Week 1: SQL — joins ✓\n".encode(), "text/plain; charset=utf-8", "plan.txt"),
        (
            "README.md",
            b"# Reading list\n\n- Designing Data-Intensive Applications\n",
            "text/markdown; charset=utf-8",
            "README.md",
        ),
        ("scores.csv", b"name,score\nLee,9\n", "text/csv; charset=utf-8", "scores.csv"),
        ("cv.docx", office_bytes(DOCX, "word/document.xml"), DOCX, "cv.docx"),
        ("budget.xlsx", office_bytes(XLSX, "xl/workbook.xml"), XLSX, "budget.xlsx"),
        ("talk.pptx", office_bytes(PPTX, "ppt/presentation.xml"), PPTX, "talk.pptx"),
        # The type comes from the bytes; the name only gets an ending that matches them.
        ("report", PDF_BYTES, "application/pdf", "report.pdf"),
        ("diagram.pdf", image_bytes("PNG"), "image/png", "diagram.pdf.png"),
        ("run.bat", b"echo hello\n", "text/plain; charset=utf-8", "run.bat.txt"),
    ],
)
def test_allowed_types_are_accepted(institution_a, scene, name, content, content_type, shown_name):
    booking = scene["booking"]
    response = upload(signed_in(institution_a, "lee@example.org"), booking.pk, content, name)
    assert response.status_code == 302
    assert response["Location"] == f"/sessions/{booking.pk}/"
    assert messages_of(response) == [f"“{shown_name}” was added to the session."]
    (material,) = stored(institution_a, booking)
    assert material.content_type == content_type
    assert material.original_name == shown_name
    assert material.size == len(content)
    path = Path(settings.MEDIA_ROOT) / institution_a.schema_name / material.file.name
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("invoice.pdf", EXECUTABLE, "Programs and scripts cannot be shared"),
        ("setup.sh", b"#!/bin/sh\nrm -rf /\n", "Programs and scripts cannot be shared"),
        ("archive.zip", plain_zip(), "Zip archives are not allowed"),
        ("cv.docx", plain_zip(), "Zip archives are not allowed"),
        ("broken.docx", b"PK\x03\x04not really a zip", "cannot be read"),
        ("fake.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "damaged"),
        ("blob.bin", bytes(range(256)) * 4, "This type of file is not allowed"),
        ("latin1.txt", "café".encode("latin-1"), "This type of file is not allowed"),
        ("empty.txt", b"", "The file is empty."),
    ],
)
def test_disguised_and_unknown_files_are_refused(institution_a, scene, name, content, message):
    booking = scene["booking"]
    response = upload(signed_in(institution_a, "lee@example.org"), booking.pk, content, name)
    assert response.status_code == 302
    (shown,) = messages_of(response)
    assert message in shown
    assert stored(institution_a, booking) == []


def test_macro_enabled_office_files_are_refused(institution_a, scene):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types><Override PartName="/word/document.xml" '
            'ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/></Types>',
        )
        archive.writestr("word/document.xml", "<xml/>")
    response = upload(
        signed_in(institution_a, "lee@example.org"), scene["booking"].pk, out.getvalue(), "x.docx"
    )
    assert "Only Word (.docx), Excel (.xlsx) and PowerPoint (.pptx)" in messages_of(response)[0]
    with_vba = office_bytes(DOCX, "word/document.xml")
    buffer = io.BytesIO(with_vba)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("word/vbaProject.bin", b"\x00" * 10)
    response = upload(
        signed_in(institution_a, "lee@example.org"), scene["booking"].pk, buffer.getvalue(), "y.docx"
    )
    assert "macros" in messages_of(response)[0]
    assert stored(institution_a, scene["booking"]) == []


def test_an_oversized_file_is_refused(institution_a, scene, settings):
    settings.MATERIAL_MAX_BYTES = 1024 * 1024
    response = upload(
        signed_in(institution_a, "lee@example.org"), scene["booking"].pk, b"a" * (1024 * 1024 + 1), "big.txt"
    )
    assert messages_of(response) == ["The file is too large. Files can be at most 1 MB."]
    assert stored(institution_a, scene["booking"]) == []


def test_at_most_twenty_files_per_session(institution_a, scene):
    booking = scene["booking"]
    with tenant_context(institution_a):
        Material.objects.bulk_create(
            Material(
                booking=booking,
                uploaded_by=scene["lee"],
                file=f"materials/{booking.pk}/existing{n}",
                original_name=f"f{n}.txt",
                content_type="text/plain; charset=utf-8",
                size=1,
            )
            for n in range(20)
        )
    response = upload(signed_in(institution_a, "mo@example.org"), booking.pk, b"one more", "more.txt")
    assert messages_of(response) == ["A session can have at most 20 files. Delete one to add another."]
    assert len(stored(institution_a, booking)) == 20


@pytest.mark.parametrize("status", ["declined", "expired", "cancelled"])
def test_no_uploads_to_a_session_that_did_not_happen(institution_a, scene, status):
    booking = scene["booking"]
    with tenant_context(institution_a):
        Booking.objects.filter(pk=booking.pk).update(status=status)
        booking.refresh_from_db()
        assert not materials_can_upload(booking, scene["lee"])
    connection.set_schema_to_public()
    response = upload(signed_in(institution_a, "lee@example.org"), booking.pk, PDF_BYTES, "a.pdf")
    assert messages_of(response) == [f"Files cannot be added to a {status} session."]
    assert stored(institution_a, booking) == []


def test_only_participants_can_upload(institution_a, scene):
    booking = scene["booking"]
    response = upload(signed_in(institution_a, "oz@example.org"), booking.pk, PDF_BYTES, "a.pdf")
    assert response.status_code == 404
    assert stored(institution_a, booking) == []
    with tenant_context(institution_a):
        assert materials_can_upload(booking, scene["lee"])
        assert not materials_can_upload(booking, scene["oz"])
        with pytest.raises(Exception, match="Only the learner and the mentor"):
            material_upload(booking=booking, user=scene["oz"], upload=SimpleUploadedFile("a.pdf", PDF_BYTES))
    connection.set_schema_to_public()


def test_huge_ids_are_404_not_500(institution_a, scene):
    client = signed_in(institution_a, "lee@example.org")
    huge = "9" * 30
    booking = scene["booking"].pk
    assert client.get(f"/sessions/{booking}/materials/{huge}/").status_code == 404
    assert (
        client.post(f"/sessions/{huge}/materials/", {"file": SimpleUploadedFile("a.txt", b"a")}).status_code
        == 404
    )
    assert client.get(f"/api/v1/bookings/{booking}/materials/{huge}/").status_code == 404
    assert client.delete(f"/api/v1/bookings/{huge}/materials/1/").status_code == 404


def test_missing_file_is_a_message_not_an_error(institution_a, scene):
    client = signed_in(institution_a, "lee@example.org")
    response = client.post(f"/sessions/{scene['booking'].pk}/materials/", {})
    assert response.status_code == 302
    assert messages_of(response) == ["Choose a file to upload."]
    assert client.get(f"/sessions/{scene['booking'].pk}/materials/").status_code == 405


# --- Names -------------------------------------------------------------------------------------


def test_the_stored_name_is_not_the_uploaded_name(institution_a, scene):
    booking = scene["booking"]
    upload(signed_in(institution_a, "lee@example.org"), booking.pk, PDF_BYTES, "my secret plans.pdf")
    (material,) = stored(institution_a, booking)
    assert material.original_name == "my secret plans.pdf"
    assert material.file.name.startswith(f"materials/{booking.pk}/")
    assert "secret" not in material.file.name
    assert not material.file.name.endswith(".pdf")


@pytest.mark.parametrize(
    ("uploaded", "expected"),
    [
        ("../../../../etc/passwd.pdf", "passwd.pdf"),
        ("..\\..\\windows\\system32\\evil.pdf", "evil.pdf"),
        ("/absolute/path/notes.pdf", "notes.pdf"),
        ("..", "file.pdf"),
        ("", "file.pdf"),
        ("inv\u202eoice\u0000\r\n.pdf", "invoice.pdf"),
        ("fdp.exe\u202e.pdf", "fdp.exe.pdf"),
        ("a" * 300 + ".pdf", "a" * 196 + ".pdf"),
    ],
)
def test_file_names_are_sanitised(uploaded, expected):
    assert sanitize_name(uploaded, content_type="application/pdf") == expected


def test_path_traversal_name_is_stored_safely(institution_a, scene):
    booking = scene["booking"]
    upload(signed_in(institution_a, "lee@example.org"), booking.pk, PDF_BYTES, "../../../outside.pdf")
    (material,) = stored(institution_a, booking)
    assert material.original_name == "outside.pdf"
    root = (Path(settings.MEDIA_ROOT) / institution_a.schema_name / "materials").resolve()
    assert (
        Path(settings.MEDIA_ROOT) / institution_a.schema_name / material.file.name
    ).resolve().parent.parent == root


# --- Who can download --------------------------------------------------------------------------


def uploaded_material(institution, scene, content: bytes = PDF_BYTES, name: str = "notes.pdf") -> Material:
    upload(signed_in(institution, "lee@example.org"), scene["booking"].pk, content, name)
    (material,) = stored(institution, scene["booking"])
    return material


def test_participants_can_download(institution_a, scene):
    material = uploaded_material(institution_a, scene, name="Plan für Woche 1.pdf")
    url = f"/sessions/{scene['booking'].pk}/materials/{material.pk}/"
    for email in ("lee@example.org", "mo@example.org"):
        response = signed_in(institution_a, email).get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == PDF_BYTES
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"].startswith("attachment;")
        assert "Plan%20f%C3%BCr%20Woche%201.pdf" in response["Content-Disposition"]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_another_learner_of_the_institution_gets_404(institution_a, scene):
    material = uploaded_material(institution_a, scene)
    booking = scene["booking"]
    oz = signed_in(institution_a, "oz@example.org")
    assert oz.get(f"/sessions/{booking.pk}/materials/{material.pk}/").status_code == 404
    assert oz.post(f"/sessions/{booking.pk}/materials/{material.pk}/delete/").status_code == 404
    # The right material under another booking's id is not found either.
    with tenant_context(institution_a):
        oz_booking = make_booking(scene["mentor"], scene["oz"], next_weekday_at(14))
    assert oz.get(f"/sessions/{oz_booking.pk}/materials/{material.pk}/").status_code == 404
    anonymous = HostClient(host_of(institution_a)).get(f"/sessions/{booking.pk}/materials/{material.pk}/")
    assert anonymous.status_code == 302
    assert len(stored(institution_a, booking)) == 1


def test_a_user_of_b_with_the_same_ids_gets_404(institution_a, institution_b, scene):
    material = uploaded_material(institution_a, scene)
    booking = scene["booking"]
    # B has a booking and a material with the very same ids, between other people.
    mentor_b = make_mentor(institution_b, email="mo@example.org")
    lee_b = make_learner(institution_b, email="lee@example.org")
    make_learner(institution_b, email="oz@example.org")
    with tenant_context(institution_b):
        booking_b = make_booking(mentor_b, lee_b, next_weekday_at(10), pk=booking.pk)
        Material.objects.create(
            pk=material.pk,
            booking=booking_b,
            uploaded_by=lee_b,
            file=f"materials/{booking.pk}/b-file",
            original_name="b.txt",
            content_type="text/plain; charset=utf-8",
            size=1,
        )
    connection.set_schema_to_public()
    url = f"/sessions/{booking.pk}/materials/{material.pk}/"
    assert signed_in(institution_b, "oz@example.org").get(url).status_code == 404
    # B's own participant reaches B's row, whose file does not exist: never A's bytes.
    response = signed_in(institution_b, "lee@example.org").get(url)
    assert response.status_code == 404
    # A's session cookie means nothing on B's host.
    client_a = signed_in(institution_a, "lee@example.org")
    b_host = HostClient(host_of(institution_b))
    b_host.cookies = client_a.cookies
    assert b_host.get(url).status_code == 302


def test_materials_are_not_reachable_through_media(institution_a, scene):
    material = uploaded_material(institution_a, scene)
    schema = institution_a.schema_name
    lee = signed_in(institution_a, "lee@example.org")
    assert lee.get(f"/media/{schema}/{material.file.name}").status_code == 404
    assert lee.get(f"/media/{schema}/avatars/../{material.file.name}").status_code == 404
    assert lee.get(f"/media/{schema}/avatars/%2e%2e/{material.file.name}").status_code == 404
    assert lee.get(f"/media/{schema}/materials/").status_code == 404
    # Public folders still work.
    avatar = Path(settings.MEDIA_ROOT) / schema / "avatars" / "public-test.png"
    avatar.parent.mkdir(parents=True, exist_ok=True)
    avatar.write_bytes(image_bytes("PNG"))
    assert (
        HostClient(host_of(institution_a)).get(f"/media/{schema}/avatars/public-test.png").status_code == 200
    )


# --- Deleting ----------------------------------------------------------------------------------


def test_only_the_uploader_can_delete(institution_a, scene, django_capture_on_commit_callbacks):
    material = uploaded_material(institution_a, scene)
    url = f"/sessions/{scene['booking'].pk}/materials/{material.pk}/delete/"
    path = Path(settings.MEDIA_ROOT) / institution_a.schema_name / material.file.name
    response = signed_in(institution_a, "mo@example.org").post(url)
    assert response.status_code == 302
    assert messages_of(response) == ["Only the person who uploaded a file can delete it."]
    assert len(stored(institution_a, scene["booking"])) == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(institution_a, "lee@example.org").post(url)
    assert messages_of(response) == ["“notes.pdf” was deleted."]
    assert stored(institution_a, scene["booking"]) == []
    assert not path.exists()


# --- The partial ---------------------------------------------------------------------------------


def test_the_partial_lists_files_and_offers_upload_and_delete(institution_a, scene):
    material = uploaded_material(institution_a, scene, name="<img src=x onerror=alert(1)>.pdf")
    with tenant_context(institution_a):
        booking = Booking.objects.select_related("mentor__user", "learner").get(pk=scene["booking"].pk)
        for user, deletable in ((scene["lee"], True), (booking.mentor.user, False)):
            request = RequestFactory().get("/", HTTP_HOST=host_of(institution_a))
            request.user = user
            request.tenant = institution_a
            html = render_to_string(
                "mentoring/partials/materials.html",
                {
                    "booking": booking,
                    "materials": materials_for(booking=booking, user=user),
                    "can_upload": materials_can_upload(booking, user),
                },
                request=request,
            )
            assert f"/sessions/{booking.pk}/materials/{material.pk}/" in html
            assert "&lt;img src=x onerror=alert(1)&gt;.pdf" in html
            assert "<img src=x" not in html
            assert f'action="/sessions/{booking.pk}/materials/"' in html
            assert (f"/materials/{material.pk}/delete/" in html) is deletable
        assert materials_for(booking=booking, user=scene["oz"]) == []
    connection.set_schema_to_public()


# --- API ---------------------------------------------------------------------------------------


def test_api_upload_list_download_and_delete(institution_a, scene, django_capture_on_commit_callbacks):
    booking = scene["booking"]
    base = f"/api/v1/bookings/{booking.pk}/materials/"
    lee = signed_in(institution_a, "lee@example.org")
    created = lee.post(base, {"file": SimpleUploadedFile("notes.md", b"# Notes\n")})
    assert created.status_code == 201
    body = created.json()
    assert body["original_name"] == "notes.md"
    assert body["content_type"] == "text/markdown; charset=utf-8"
    assert body["uploaded_by"]["full_name"] == "Lee Learner"
    assert body["download_url"] == f"{base}{body['id']}/"

    mo = signed_in(institution_a, "mo@example.org")
    listed = mo.get(base)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()] == [body["id"]]

    download = mo.get(body["download_url"], HTTP_ACCEPT="application/pdf")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"# Notes\n"
    assert download["Content-Security-Policy"] == "default-src 'none'; sandbox"

    forbidden = mo.delete(body["download_url"])
    assert forbidden.status_code == 403
    assert error_of(forbidden)["code"] == "not_uploader"
    with django_capture_on_commit_callbacks(execute=True):
        assert lee.delete(body["download_url"]).status_code == 204
    assert lee.get(body["download_url"]).status_code == 404


def test_api_refusals_have_the_error_shape(institution_a, institution_b, scene, settings):
    booking = scene["booking"]
    base = f"/api/v1/bookings/{booking.pk}/materials/"
    lee = signed_in(institution_a, "lee@example.org")

    disguised = lee.post(base, {"file": SimpleUploadedFile("invoice.pdf", EXECUTABLE)})
    assert disguised.status_code == 400
    error = error_of(disguised)
    assert error["code"] == "invalid_file"
    assert "Programs and scripts" in error["fields"]["file"][0]

    not_ooxml = error_of(lee.post(base, {"file": SimpleUploadedFile("a.docx", plain_zip())}))
    assert "Zip archives are not allowed" in not_ooxml["message"]

    settings.MATERIAL_MAX_BYTES = 100
    too_big = lee.post(base, {"file": SimpleUploadedFile("a.txt", b"a" * 101)})
    assert too_big.status_code == 400
    assert error_of(too_big)["code"] == "too_large"

    missing = lee.post(base, {})
    assert missing.status_code == 400
    assert error_of(missing)["code"] == "validation_error"
    json_body = lee.post(base, {"file": "not a file"}, content_type="application/json")
    assert json_body.status_code == 400
    assert error_of(json_body)["fields"]["file"]

    other = signed_in(institution_a, "oz@example.org")
    for response in (other.get(base), other.post(base, {"file": SimpleUploadedFile("a.pdf", PDF_BYTES)})):
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    make_learner(institution_b, email="lee@example.org")
    assert signed_in(institution_b, "lee@example.org").get(base).status_code == 404

    anonymous = HostClient(host_of(institution_a))
    for response in (
        anonymous.get(base),
        anonymous.post(base),
        anonymous.get(f"{base}1/"),
        anonymous.delete(f"{base}1/"),
    ):
        assert response.status_code == 401
        assert error_of(response)["code"] == "not_authenticated"
    assert stored(institution_a, booking) == []


def test_api_listing_costs_the_same_queries_for_many_files(
    institution_a, scene, django_assert_max_num_queries
):
    booking = scene["booking"]
    lee = signed_in(institution_a, "lee@example.org")
    base = f"/api/v1/bookings/{booking.pk}/materials/"
    for n in range(5):
        lee.post(base, {"file": SimpleUploadedFile(f"n{n}.txt", b"text")})
    with django_assert_max_num_queries(8):
        assert len(lee.get(base).json()) == 5
