"""Data rights: a person downloads their data (a zip of JSON and their files) and deletes their
account (erased, while bookings, payments and the ledger stay, anonymised)."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_tenants.utils import tenant_context
from PIL import Image
from rest_framework.authtoken.models import Token

from shared.core.models import ExpiringFile
from shared.core.testing import PASSWORD, HostClient, host_of, make_user, sign_in
from tenant_apps.accounts import data_rights
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.models import AuditEntry, DataExport
from tenant_apps.billing import services as billing
from tenant_apps.billing.models import LedgerEntry, LedgerTransaction, Payment, Refund
from tenant_apps.billing.tests.helpers import hold, pay_in_sandbox, start_payment
from tenant_apps.notifications.models import Notification, Preference
from tenant_apps.sessions.materials import material_upload
from tenant_apps.sessions.models import Booking, ChatMessage, Material, Review
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor, next_weekday_at

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n" + bytes(range(256)) * 8
EXPECTED_FILES = {
    "README.txt",
    "profile.json",
    "consents.json",
    "bookings.json",
    "group_sessions.json",
    "payments.json",
    "reviews.json",
    "chat.json",
    "attendance.json",
    "notifications.json",
    "materials.json",
    "audit.json",
}


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(out, "PNG")
    return out.getvalue()


def paid_booking(mentor, learner, start) -> tuple[Booking, Payment]:
    booking = hold(mentor, learner, start)
    payment = start_payment(booking)
    pay_in_sandbox(payment)
    billing.payment_verify(payment=payment)
    booking.refresh_from_db()
    payment.refresh_from_db()
    return booking, payment


def signed_in(institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


def unzip(response) -> dict[str, bytes]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name.removeprefix("my-data/"): archive.read(name) for name in archive.namelist()}


@pytest.fixture
def mina(institution_a):
    """A mentor who also books another mentor: her data has bookings on both sides, a payment, a
    review, chat, a notification, a preference, an uploaded file and an avatar."""
    mina = make_mentor(institution_a, email="mina@a.example", full_name="Mina Mentor", price_minor=3_000)
    other = make_mentor(institution_a, email="otto@a.example", full_name="Otto Other", price_minor=2_000)
    learner = make_learner(institution_a, email="lara@a.example", full_name="Lara Learner")
    with tenant_context(institution_a):
        user = mina.user
        user.phone, user.sms_opt_in = "+447700900123", True
        user.avatar.save("avatar.jpg", SimpleUploadedFile("a.png", png_bytes()), save=False)
        user.save()
        as_mentor = make_booking(mina, learner, next_weekday_at(10), topic="Lara's CV")
        as_learner, payment = paid_booking(other, user, next_weekday_at(11, weeks_ahead=2))
        done = make_booking(
            other, user, timezone.now() - timedelta(days=3), status=Booking.Status.COMPLETED, topic="Past"
        )
        Review.objects.create(booking=done, rating=5, comment="Very helpful, thanks Otto")
        ChatMessage.objects.create(booking=as_mentor, author=user, body="See you at ten, Lara")
        ChatMessage.objects.create(booking=as_mentor, author=learner, body="Lara's own words")
        material = material_upload(
            booking=as_mentor, user=user, upload=SimpleUploadedFile("Plan week 1.pdf", PDF_BYTES)
        )
        Notification.objects.create(recipient=user, event="booking_confirmed", title="Confirmed with Otto")
        Preference.objects.create(user=user, event="reminder_1h", in_app=True, email=False, sms=True)
    return {
        "mentor": mina,
        "user": user,
        "learner": learner,
        "other": other,
        "payment": payment,
        "material": material,
        "bookings": (as_mentor, as_learner, done),
    }


# --- Download my data ----------------------------------------------------------------------------


def test_my_data_holds_every_kind_of_my_data_and_nothing_of_others(institution_a, mina):
    client = signed_in(institution_a, "mina@a.example")
    assert "Download my data" in client.get("/accounts/data/").content.decode()

    response = client.post("/accounts/data/export/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="alpha-u-my-data-')
    files = unzip(response)
    assert set(files) >= EXPECTED_FILES
    docs = {name: json.loads(body) for name, body in files.items() if name.endswith(".json")}
    account = docs["profile.json"]["account"]
    assert (account["email"], account["phone"], account["full_name"]) == (
        "mina@a.example",
        "+447700900123",
        "Mina Mentor",
    )
    assert docs["profile.json"]["mentor_profile"]["weekly_hours"]
    assert docs["consents.json"]["sms_opt_in"] is True
    assert docs["consents.json"]["notification_preferences"] == [
        {"event": "reminder_1h", "in_app": True, "email": False, "sms": True}
    ]
    roles = sorted((b["your_role"], b["with"]) for b in docs["bookings.json"])
    assert roles == [("learner", "Otto Other"), ("learner", "Otto Other"), ("mentor", "Lara Learner")]
    assert all(b["history"] is not None for b in docs["bookings.json"])
    (payment,) = docs["payments.json"]["payments"]
    assert (payment["reference"], payment["status"]) == (mina["payment"].reference, "succeeded")
    assert payment["receipt"].endswith(f"/{mina['payment'].reference}/")
    assert [r["comment"] for r in docs["reviews.json"]["written"]] == ["Very helpful, thanks Otto"]
    assert [m["body"] for m in docs["chat.json"]] == ["See you at ten, Lara"]
    assert "Confirmed with Otto" in [n["title"] for n in docs["notifications.json"]]
    (material,) = docs["materials.json"]
    assert files[material["file"]] == PDF_BYTES  # the uploaded file itself
    assert account["avatar"] == "files/avatar.jpg"
    with default_storage.open(mina["user"].avatar.name, "rb") as stored:
        assert files["files/avatar.jpg"] == stored.read()
    assert any(entry["action"] == "export.personal" for entry in docs["audit.json"])
    # Nobody else's messages or addresses.
    everything = b"".join(files.values())
    assert b"Lara's own words" not in everything
    assert b"lara@a.example" not in everything and b"otto@a.example" not in everything
    with tenant_context(institution_a):
        assert AuditEntry.objects.filter(action="export.personal", actor=mina["user"]).exists()


def test_my_data_can_be_asked_for_once_an_hour(institution_a, user_factory):
    user_factory(institution_a, email="often@a.example")
    client = signed_in(institution_a, "often@a.example")
    assert client.post("/accounts/data/export/").status_code == 200

    again = client.post("/accounts/data/export/")

    assert again.status_code == 429
    assert "You can ask again after" in again.content.decode()
    with tenant_context(institution_a):
        DataExport.objects.update(created_at=timezone.now() - timedelta(minutes=61))
    assert client.post("/accounts/data/export/").status_code == 200


def test_a_large_account_gets_its_data_from_the_worker_by_a_link_only_it_can_use(
    institution_a, institution_b, mina, settings, django_capture_on_commit_callbacks
):
    settings.PERSONAL_EXPORT_SYNC_MAX_BYTES = 10  # her one file is "large"
    client = signed_in(institution_a, "mina@a.example")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/accounts/data/export/")

    assert response.status_code == 302 and len(callbacks) == 1  # the task is queued after commit
    with tenant_context(institution_a):
        export = DataExport.objects.get(kind="personal", requested_by=mina["user"])
        assert export.status == DataExport.Status.QUEUED
        data_rights.personal_export_run(export_id=export.pk)  # what the worker runs
        export.refresh_from_db()
        assert export.status == DataExport.Status.READY and export.file_name.startswith("exports/personal/")
        assert default_storage.exists(export.file_name)
        assert ExpiringFile.objects.filter(name=export.file_name, expires_at=export.expires_at).exists()
    (email,) = mail.outbox
    assert email.to == ["mina@a.example"] and "/accounts/data/" in email.body

    url = f"/accounts/data/exports/{export.pk}/download/"
    download = client.get(url)
    assert download.status_code == 200
    assert "profile.json" in unzip(download)
    # Nobody else gets it: another member of A, a member of B on B's site, A's cookie on B's site.
    assert signed_in(institution_a, "lara@a.example").get(url).status_code == 404
    make_user(institution_b, email="bea@b.example")
    assert signed_in(institution_b, "bea@b.example").get(url).status_code == 404
    on_b = HostClient(host_of(institution_b))
    on_b.cookies = copy.deepcopy(client.cookies)
    assert on_b.get(url).status_code == 302  # anonymous there: sent to sign in
    # After its download period it is gone.
    with tenant_context(institution_a):
        DataExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert client.get(url).status_code == 410


# --- Delete my account ---------------------------------------------------------------------------


def test_deleting_my_account_erases_me_and_keeps_the_records(
    institution_a, django_capture_on_commit_callbacks
):
    mentor = make_mentor(institution_a, email="mo@a.example", full_name="Mo Mentor", price_minor=3_000)
    leo = make_learner(institution_a, email="leo@a.example", full_name="Leo Learner")
    with tenant_context(institution_a):
        leo.phone = "+447700900456"
        leo.avatar.save("avatar.jpg", SimpleUploadedFile("a.png", png_bytes()), save=False)
        leo.save()
        avatar = leo.avatar.name
        past = make_booking(mentor, leo, timezone.now() - timedelta(days=2), status=Booking.Status.COMPLETED)
        Review.objects.create(booking=past, rating=4, comment="Leo says thanks")
        upcoming, payment = paid_booking(mentor, leo, next_weekday_at(10, weeks_ahead=2))
        ChatMessage.objects.create(booking=past, author=leo, body="My number is 07700 900456")
        material = material_upload(booking=past, user=leo, upload=SimpleUploadedFile("cv.pdf", PDF_BYTES))
        token = Token.objects.create(user=leo).key
        ledger_before = LedgerEntry.objects.count()
        AuditEntry.objects.create(actor=leo, actor_label="Leo Learner <leo@a.example>", action="auth.login")
    client = signed_in(institution_a, "leo@a.example")
    page = client.get("/accounts/delete/").content.decode()
    assert "cannot be undone" in page and "Delete my account" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/delete/", {"password": PASSWORD, "understood": "on"})

    assert response.status_code == 302 and response["Location"] == "/"
    with tenant_context(institution_a):
        leo = User.objects.get(pk=leo.pk)
        assert leo.email == f"deleted-{leo.pk}@erased.invalid"
        assert (leo.full_name, leo.phone, leo.avatar.name, leo.is_active) == ("Deleted member", "", "", False)
        assert not leo.has_usable_password()
        assert not default_storage.exists(avatar) and not default_storage.exists(material.file.name)
        assert not Material.objects.filter(pk=material.pk).exists()
        assert not Token.objects.filter(user=leo).exists()
        assert ChatMessage.objects.get(booking=past).body == data_rights.ERASED_CHAT
        assert Review.objects.get(booking=past).comment == "" and Review.objects.get(booking=past).rating == 4
        # The upcoming session went through the normal cancellation: cancelled, refunded in full.
        upcoming.refresh_from_db()
        assert upcoming.status == Booking.Status.CANCELLED
        refund = Refund.objects.get(payment=payment)
        assert refund.amount_minor == payment.amount_minor
        # Records stay, pointing at the anonymised account; the ledger only grew (the refund).
        assert Booking.objects.filter(learner=leo).count() == 2
        assert Payment.objects.get(pk=payment.pk).learner_id == leo.pk
        assert LedgerEntry.objects.count() > ledger_before
        assert LedgerTransaction.objects.filter(kind="refund", payment=payment).exists()
        # The audit log keeps what happened, without the name or address.
        assert AuditEntry.objects.filter(action="member.deleted", actor=leo).exists()
        assert not AuditEntry.objects.filter(actor_label__contains="leo@a.example").exists()
        assert not AuditEntry.objects.filter(target="leo@a.example").exists()
        assert not AuditEntry.objects.filter(actor=leo, address__isnull=False).exists()
    # Signed out everywhere, and the door is shut.
    assert client.get("/accounts/profile/").status_code == 302
    assert (
        HostClient(host_of(institution_a))
        .post("/accounts/login/", {"username": "leo@a.example", "password": PASSWORD})
        .status_code
        == 200
    )
    api = HostClient(host_of(institution_a), HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/me/").status_code == 401


def test_a_wrong_password_deletes_nothing(institution_a, user_factory):
    user_factory(institution_a, email="keep@a.example")
    client = signed_in(institution_a, "keep@a.example")

    response = client.post("/accounts/delete/", {"password": "not-it", "understood": "on"})

    assert response.status_code == 400
    assert "That is not your password." in response.content.decode()
    with tenant_context(institution_a):
        assert User.objects.get(email="keep@a.example").is_active


def test_guessing_the_password_on_the_deletion_form_locks_the_account_like_sign_in(
    institution_a, user_factory, settings, clean_throttles
):
    settings.LOGIN_FAILURE_LIMIT_ACCOUNT = 3
    user_factory(institution_a, email="guess@a.example")
    client = signed_in(institution_a, "guess@a.example")
    for attempt in range(3):
        response = client.post("/accounts/delete/", {"password": f"guess-{attempt}", "understood": "on"})
        assert response.status_code == 400

    response = client.post("/accounts/delete/", {"password": PASSWORD, "understood": "on"})

    assert response.status_code == 429 and "Too many failed sign-ins" in response.content.decode()
    with tenant_context(institution_a):
        assert User.objects.get(email="guess@a.example").is_active


def test_a_mentor_with_upcoming_sessions_is_told_what_to_do_first(institution_a):
    mentor = make_mentor(institution_a, email="busy@a.example")
    learner = make_learner(institution_a, email="booked@a.example")
    with tenant_context(institution_a):
        make_booking(mentor, learner, next_weekday_at(9))
    client = signed_in(institution_a, "busy@a.example")
    assert "1 upcoming session as a mentor" in client.get("/accounts/delete/").content.decode()

    response = client.post("/accounts/delete/", {"password": PASSWORD, "understood": "on"})

    assert response.status_code == 409
    assert "Cancel them from your dashboard" in response.content.decode()
    with tenant_context(institution_a):
        assert User.objects.get(pk=mentor.user.pk).email == "busy@a.example"


def test_the_last_administrator_cannot_leave_until_there_is_another(institution_a):
    with tenant_context(institution_a):
        User.objects.filter(role=User.Role.ADMIN).update(role=User.Role.LEARNER)  # only ours below
    make_user(institution_a, email="boss@a.example", role=User.Role.ADMIN, is_staff=True)
    client = signed_in(institution_a, "boss@a.example")

    response = client.post("/accounts/delete/", {"password": PASSWORD, "understood": "on"})

    assert response.status_code == 409
    assert "You are the only administrator" in response.content.decode()
    make_user(institution_a, email="deputy@a.example", role=User.Role.ADMIN, is_staff=True)
    assert client.post("/accounts/delete/", {"password": PASSWORD, "understood": "on"}).status_code == 302


def test_deleted_accounts_get_distinct_placeholders_and_a_new_account_can_reuse_the_address(
    institution_a, user_factory
):
    first = user_factory(institution_a, email="twice@a.example")
    second = user_factory(institution_a, email="other@a.example")
    with tenant_context(institution_a):
        data_rights.account_delete(user=first, password=PASSWORD)
        data_rights.account_delete(user=second, password=PASSWORD)
        emails = set(User.objects.filter(pk__in=[first.pk, second.pk]).values_list("email", flat=True))
    assert len(emails) == 2
    user_factory(institution_a, email="twice@a.example")  # the address is free again


def test_the_pages_need_a_signed_in_person(client_a, client_b, institution_a, user_factory):
    for path in ("/accounts/data/", "/accounts/delete/"):
        assert client_a.get(path).status_code == 302
    assert client_a.post("/accounts/data/export/").status_code == 302
    # A's session is worth nothing on B's site.
    user_factory(institution_a, email="cross@a.example")
    sign_in(client_a, "cross@a.example")
    client_b.cookies = copy.deepcopy(client_a.cookies)
    assert client_b.post("/accounts/delete/", {"password": PASSWORD, "understood": "on"}).status_code == 302
    with tenant_context(institution_a):
        assert User.objects.get(email="cross@a.example").is_active
