"""An institution's data export: every kind of its data, nothing secret, nothing of anyone else."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from datetime import date, time, timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.platform_billing.export import KINDS, institution_export
from tenant_apps.accounts.models import Invitation, User
from tenant_apps.billing import services
from tenant_apps.billing.models import Gateways, PayoutAccount
from tenant_apps.billing.tests.test_pages import PRICE, admin_of, pay, slot
from tenant_apps.sessions.models import (
    Attendance,
    AvailabilityOverride,
    Booking,
    ChatMessage,
    Enrollment,
    GroupSession,
    Material,
    Review,
)
from tenant_apps.sessions.tests.factories import make_learner, make_mentor
from tenants.models import Institution

EXPECTED_FILES = {
    "README.txt",
    "institution.json",
    "people.json",
    "invitations.json",
    "mentor_profiles.json",
    "weekly_availability.json",
    "availability_overrides.json",
    "bookings.json",
    "booking_transitions.json",
    "group_sessions.json",
    "enrollments.json",
    "reviews.json",
    "chat_messages.json",
    "attendance.json",
    "materials.json",
    "pricing_policy.json",
    "payments.json",
    "refunds.json",
    "earnings.json",
    "payout_accounts.json",
    "payouts.json",
    "ledger_entries.json",
}

FILE_BYTES = b"the material's own bytes, which stay out of the export"


def fill(institution: Institution, tag: str, *, slot_index: int = 0) -> dict:
    """A paid, refunded, delivered and paid-out session, a group session with a learner, a review,
    chat, attendance, a material and an invitation, every text marked with `tag`."""
    mentor = make_mentor(
        institution,
        email=f"mentor-{tag}-{slot_index}@example.org",
        full_name=f"Mentor {tag}",
        price_minor=PRICE,
        max_sessions_per_day=16,
        headline=f"headline-{tag}",
    )
    learner = make_learner(institution, email=f"learner-{tag}-{slot_index}@example.org")
    with tenant_context(institution):
        admin = admin_of(institution)
        payment = pay(mentor, learner, slot(slot_index))
        booking = Booking.objects.get(pk=payment.booking_id)
        booking.topic = f"topic-{tag}"
        booking.save(update_fields=["topic"])
        refund = services.refund_manual(
            payment=payment, amount_minor=500, reason=f"refund-{tag}", admin=admin
        )
        services.earning_release(booking=booking)
        PayoutAccount.objects.create(
            mentor=mentor, gateway=Gateways.SANDBOX, account_id=f"acct-{tag}-{slot_index}", ready=True
        )
        payout = services.payout_create(mentor=mentor, created_by=admin)
        AvailabilityOverride.objects.create(mentor=mentor, date=date(2030, 1, 2), kind="off")
        group = GroupSession.objects.create(
            mentor=mentor,
            title=f"group-{tag}",
            starts_at=timezone.now() + timedelta(days=20),
            ends_at=timezone.now() + timedelta(days=20, hours=1),
            capacity=5,
            currency="GBP",
        )
        Enrollment.objects.create(group_session=group, learner=learner, status=Enrollment.Status.ENROLLED)
        Review.objects.create(booking=booking, rating=5, comment=f"review-{tag}")
        ChatMessage.objects.create(booking=booking, author=learner, body=f"chat-{tag}")
        ChatMessage.objects.create(group_session=group, author=mentor.user, body=f"group-chat-{tag}")
        Attendance.objects.create(booking=booking, user=learner, joined_at=timezone.now())
        material = Material(
            booking=booking,
            uploaded_by=learner,
            original_name=f"notes-{tag}.pdf",
            content_type="application/pdf",
            size=len(FILE_BYTES),
        )
        material.file.save("notes.pdf", ContentFile(FILE_BYTES), save=False)
        material.save()
        Invitation.objects.create(
            email=f"invited-{tag}@example.org",
            token=f"secret-invitation-token-{tag}-{slot_index}",
            invited_by=admin,
            expires_at=timezone.now() + timedelta(days=7),
        )
        return {
            "mentor": mentor,
            "learner": learner,
            "booking": booking,
            "payment": payment,
            "refund": refund,
            "payout": payout,
            "group": group,
            "material": material,
        }


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def rows(files: dict[str, bytes], name: str) -> list[dict]:
    return json.loads(files[name])


@pytest.fixture
def both(institution_a, institution_b):
    return fill(institution_a, "alpha"), fill(institution_b, "beta")


def test_the_export_has_one_file_per_kind_and_a_readme(both, institution_a):
    files = unzip(institution_export(institution=institution_a))
    assert set(files) == EXPECTED_FILES
    readme = files["README.txt"].decode()
    for kind in KINDS:
        assert kind.filename in readme and kind.description[:30] in readme
    assert "people.json (3 rows)" in readme  # the admin, the mentor and the learner
    assert json.loads(files["institution.json"])["slug"] == institution_a.slug


def test_every_kind_holds_the_institutions_rows(both, institution_a):
    alpha, _ = both
    files = unzip(institution_export(institution=institution_a))
    people = {person["email"]: person for person in rows(files, "people.json")}
    assert set(people) == {admin_of(institution_a).email, alpha["mentor"].user.email, alpha["learner"].email}
    assert people[alpha["learner"].email]["role"] == User.Role.LEARNER

    [booking] = rows(files, "bookings.json")
    assert booking["id"] == alpha["booking"].pk
    assert booking["mentor_id"] == alpha["mentor"].pk and booking["learner_id"] == alpha["learner"].pk
    assert (booking["price_minor"], booking["currency"], booking["topic"]) == (PRICE, "GBP", "topic-alpha")
    transitions = rows(files, "booking_transitions.json")
    assert [t["to_status"] for t in transitions] == [Booking.Status.HELD, Booking.Status.CONFIRMED]
    assert all(t["booking_id"] == booking["id"] for t in transitions)

    [profile] = rows(files, "mentor_profiles.json")
    assert profile["headline"] == "headline-alpha" and profile["session_lengths"] == [30, 60]
    weekly = rows(files, "weekly_availability.json")
    assert len(weekly) == 5 and weekly[0]["start_time"] == time(9).isoformat()
    assert rows(files, "availability_overrides.json")[0]["kind"] == "off"

    [group] = rows(files, "group_sessions.json")
    assert group["title"] == "group-alpha"
    assert rows(files, "enrollments.json")[0]["group_session_id"] == group["id"]
    assert rows(files, "reviews.json")[0]["comment"] == "review-alpha"
    assert {m["body"] for m in rows(files, "chat_messages.json")} == {"chat-alpha", "group-chat-alpha"}
    assert rows(files, "attendance.json")[0]["user_id"] == alpha["learner"].pk

    [payment] = rows(files, "payments.json")
    assert (payment["reference"], payment["amount_minor"], payment["refunded_minor"]) == (
        alpha["payment"].reference,
        PRICE,
        500,
    )
    assert "checkout" not in payment
    [refund] = rows(files, "refunds.json")
    assert (refund["amount_minor"], refund["reason"]) == (500, "refund-alpha")
    [earning] = rows(files, "earnings.json")
    assert earning["gross_minor"] == earning["commission_minor"] + earning["amount_minor"]
    assert earning["payout_id"] == alpha["payout"].pk
    [payout] = rows(files, "payouts.json")
    assert payout["amount_minor"] == earning["amount_minor"]
    assert rows(files, "payout_accounts.json")[0]["account_id"] == "acct-alpha-0"

    entries = rows(files, "ledger_entries.json")
    assert {entry["transaction_kind"] for entry in entries} >= {"release", "payout"}
    by_transaction: dict[int, int] = {}
    for entry in entries:
        assert isinstance(entry["amount_minor"], int)
        by_transaction[entry["transaction_id"]] = (
            by_transaction.get(entry["transaction_id"], 0) + entry["amount_minor"]
        )
    assert set(by_transaction.values()) == {0}
    assert [policy["gateway"] for policy in rows(files, "pricing_policy.json")] == [Gateways.SANDBOX]


def test_no_password_hashes_and_no_secrets(both, institution_a):
    files = unzip(institution_export(institution=institution_a))
    with tenant_context(institution_a):
        hashes = list(User.objects.values_list("password", flat=True))
    assert hashes and all(hashes)
    everything = b"\n".join(files.values()).decode()
    for password_hash in hashes:
        assert password_hash not in everything
    for name, content in files.items():
        if name.endswith(".json") and name != "institution.json":
            for row in json.loads(content):
                assert "password" not in row and "token" not in row and "secret_key" not in row
    assert "secret-invitation-token" not in everything
    assert [invitation["email"] for invitation in rows(files, "invitations.json")] == [
        "invited-alpha@example.org"
    ]


def test_material_files_are_named_and_sized_but_not_included(both, institution_a):
    alpha, _ = both
    files = unzip(institution_export(institution=institution_a))
    assert all(FILE_BYTES not in content for content in files.values())
    [material] = rows(files, "materials.json")
    assert (material["original_name"], material["size"]) == ("notes-alpha.pdf", len(FILE_BYTES))
    assert material["file"] == alpha["material"].file.name


def test_nothing_of_another_institution_leaks(both, institution_a, institution_b):
    alpha_files = unzip(institution_export(institution=institution_a))
    beta_files = unzip(institution_export(institution=institution_b))
    alpha_text = b"\n".join(alpha_files.values()).decode()
    beta_text = b"\n".join(beta_files.values()).decode()
    markers = ("mentor-{}", "learner-{}", "topic-{}", "group-chat-{}", "review-{}", "refund-{}", "acct-{}")
    for marker in markers:
        assert marker.format("alpha") in alpha_text and marker.format("beta") not in alpha_text
        assert marker.format("beta") in beta_text and marker.format("alpha") not in beta_text
    assert admin_of(institution_b).email not in alpha_text
    assert admin_of(institution_a).email not in beta_text


def test_the_export_runs_a_constant_number_of_queries(institution_a):
    fill(institution_a, "one", slot_index=0)
    institution_export(institution=institution_a)
    with CaptureQueriesContext(connection) as small:
        one = unzip(institution_export(institution=institution_a))
    for index in range(1, 4):
        fill(institution_a, "more", slot_index=index)
    with CaptureQueriesContext(connection) as large:
        four = unzip(institution_export(institution=institution_a))
    assert len(rows(one, "bookings.json")) == 1 and len(rows(four, "bookings.json")) == 4
    assert len(rows(four, "ledger_entries.json")) > len(rows(one, "ledger_entries.json"))
    assert len(large.captured_queries) == len(small.captured_queries)
    assert len(small.captured_queries) <= len(KINDS) + 3, [q["sql"] for q in small.captured_queries]


def test_an_empty_institution_exports_empty_files(institution_b):
    files = unzip(institution_export(institution=institution_b))
    assert set(files) == EXPECTED_FILES
    assert rows(files, "bookings.json") == [] and rows(files, "ledger_entries.json") == []
    assert len(rows(files, "people.json")) == 1
    assert connection.schema_name == "public"


def test_on_its_own_the_export_reads_every_file_from_one_snapshot(institution_b):
    """Outside a transaction (as in a request), the export opens a read-only repeatable-read one,
    so a booking made meanwhile cannot appear in one file and be missing from another."""
    result: dict = {}

    def export_in_a_fresh_connection() -> None:
        try:
            with CaptureQueriesContext(connection) as queries:
                result["files"] = unzip(institution_export(institution=institution_b))
            result["sql"] = [query["sql"] for query in queries.captured_queries]
        finally:
            connection.close()

    thread = threading.Thread(target=export_in_a_fresh_connection)
    thread.start()
    thread.join()
    assert set(result["files"]) == EXPECTED_FILES
    assert [person["email"] for person in rows(result["files"], "people.json")] == [
        f"admin@{institution_b.slug}.example"
    ]
    assert any("REPEATABLE READ, READ ONLY" in sql for sql in result["sql"])
