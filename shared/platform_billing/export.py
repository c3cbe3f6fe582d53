"""An institution's data, as a ZIP of JSON files (one per kind of data) with a README.txt.

Read inside the institution's own schema, so nothing of another institution can be in it. Each
kind is one query, read in chunks through a server-side cursor and written row by row into the
archive, so the export's memory stays small however big the schema is (except for the archive
itself when it is built in memory). Left out: password hashes, every secret and token (gateway
keys, sign-in links, calendar feed and invitation tokens, TURN secrets) and the material files
themselves (their names and sizes are in materials.json).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Model, QuerySet
from django.utils import timezone
from django_tenants.utils import tenant_context

from tenant_apps.accounts.models import Invitation, User
from tenant_apps.billing.models import (
    Earning,
    LedgerEntry,
    Payment,
    Payout,
    PayoutAccount,
    PricingPolicy,
    Refund,
)
from tenant_apps.sessions.models import (
    Attendance,
    AvailabilityOverride,
    Booking,
    BookingTransition,
    ChatMessage,
    Enrollment,
    GroupSession,
    Material,
    MentorProfile,
    Review,
    WeeklyAvailability,
)
from tenants.models import Institution

CHUNK_ROWS = 2_000


@dataclass(frozen=True)
class ExportKind:
    """One file of the export: which rows, which of their fields, and what they are."""

    filename: str
    description: str
    model: type[Model]
    fields: tuple[str, ...]
    # Values from related rows, under their own names (e.g. a ledger entry's transaction key).
    related: dict[str, str] = field(default_factory=dict)

    def queryset(self) -> QuerySet:
        extra = {name: F(lookup) for name, lookup in self.related.items()}
        return self.model.objects.order_by("pk").values(*self.fields, **extra)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.fields, *self.related)


KINDS: tuple[ExportKind, ...] = (
    ExportKind(
        "people.json",
        "Everyone with an account: learners, mentors and administrators (no passwords).",
        User,
        (
            "id",
            "email",
            "full_name",
            "role",
            "mentor_status",
            "mentor_application",
            "timezone",
            "avatar",
            "email_verified_at",
            "is_active",
            "is_staff",
            "is_superuser",
            "date_joined",
            "last_login",
        ),
    ),
    ExportKind(
        "invitations.json",
        "Invitations to join, with the role offered (the invitation links themselves are left out).",
        Invitation,
        ("id", "email", "role", "invited_by_id", "created_at", "expires_at", "accepted_at"),
    ),
    ExportKind(
        "mentor_profiles.json",
        "Mentors' public profiles and calendar rules; price_minor is in the currency of "
        "pricing_policy.json. user_id refers to people.json.",
        MentorProfile,
        (
            "id",
            "user_id",
            "headline",
            "bio",
            "expertise",
            "languages",
            "years_experience",
            "session_lengths",
            "price_minor",
            "requires_approval",
            "buffer_before_minutes",
            "buffer_after_minutes",
            "minimum_notice_minutes",
            "booking_horizon_days",
            "max_sessions_per_day",
            "rating_average",
            "rating_count",
            "created_at",
            "updated_at",
        ),
    ),
    ExportKind(
        "weekly_availability.json",
        "Mentors' weekly hours (weekday 0 = Monday), in the mentor's own time zone.",
        WeeklyAvailability,
        ("id", "mentor_id", "weekday", "start_time", "end_time"),
    ),
    ExportKind(
        "availability_overrides.json",
        "Dates that differ from a mentor's week: extra hours or a day off.",
        AvailabilityOverride,
        ("id", "mentor_id", "date", "kind", "start_time", "end_time"),
    ),
    ExportKind(
        "bookings.json",
        "One-to-one sessions. mentor_id refers to mentor_profiles.json, learner_id to people.json.",
        Booking,
        (
            "id",
            "mentor_id",
            "learner_id",
            "starts_at",
            "ends_at",
            "status",
            "hold_expires_at",
            "price_minor",
            "currency",
            "free_allowance",
            "learner_confirmed_at",
            "topic",
            "cancel_reason",
            "rescheduled_from_id",
            "created_at",
            "updated_at",
        ),
    ),
    ExportKind(
        "booking_transitions.json",
        "Every change of a booking's status: from, to, who (actor_id) and when.",
        BookingTransition,
        ("id", "booking_id", "from_status", "to_status", "actor_id", "note", "at"),
    ),
    ExportKind(
        "group_sessions.json",
        "Group sessions offered by mentors.",
        GroupSession,
        (
            "id",
            "mentor_id",
            "title",
            "description",
            "starts_at",
            "ends_at",
            "capacity",
            "price_minor",
            "currency",
            "status",
            "created_at",
        ),
    ),
    ExportKind(
        "enrollments.json",
        "Learners enrolled in (or waiting for) group sessions.",
        Enrollment,
        ("id", "group_session_id", "learner_id", "status", "created_at", "updated_at"),
    ),
    ExportKind(
        "reviews.json",
        "Learners' reviews of their sessions (rating 1 to 5) and mentors' replies.",
        Review,
        ("id", "booking_id", "rating", "comment", "mentor_reply", "replied_at", "created_at"),
    ),
    ExportKind(
        "chat_messages.json",
        "What was written in live rooms; each line belongs to a booking or a group session.",
        ChatMessage,
        ("id", "booking_id", "group_session_id", "author_id", "body", "created_at"),
    ),
    ExportKind(
        "attendance.json",
        "Who was in a live room, from when to when.",
        Attendance,
        ("id", "booking_id", "group_session_id", "user_id", "joined_at", "left_at"),
    ),
    ExportKind(
        "materials.json",
        "Files shared in bookings: their names, types and sizes in bytes (the files are not included; "
        "`file` is where they are stored).",
        Material,
        ("id", "booking_id", "uploaded_by_id", "original_name", "content_type", "size", "file", "created_at"),
    ),
    ExportKind(
        "pricing_policy.json",
        "The institution's pricing policy: currency, gateway, commission (basis points), refund rules.",
        PricingPolicy,
        (
            "id",
            "currency",
            "gateway",
            "commission_bps",
            "min_price_minor",
            "max_price_minor",
            "free_sessions_per_learner",
            "payment_hold_minutes",
            "full_refund_hours",
            "late_refund_percent",
            "no_show_refund_percent",
        ),
    ),
    ExportKind(
        "payments.json",
        "Learners' payments for bookings, with the gateway's fee and what was refunded.",
        Payment,
        (
            "id",
            "reference",
            "booking_id",
            "learner_id",
            "gateway",
            "amount_minor",
            "currency",
            "fee_minor",
            "refunded_minor",
            "status",
            "provider_ref",
            "provider_payment_id",
            "failure_reason",
            "paid_at",
            "created_at",
            "updated_at",
        ),
    ),
    ExportKind(
        "refunds.json",
        "Refunds of payments, why and by whom.",
        Refund,
        (
            "id",
            "reference",
            "payment_id",
            "amount_minor",
            "currency",
            "kind",
            "reason",
            "status",
            "provider_refund_id",
            "requested_by_id",
            "failure_reason",
            "created_at",
            "completed_at",
        ),
    ),
    ExportKind(
        "earnings.json",
        "Mentors' shares of paid sessions: gross = commission + amount (the mentor's share).",
        Earning,
        (
            "id",
            "booking_id",
            "mentor_id",
            "gross_minor",
            "commission_minor",
            "amount_minor",
            "currency",
            "status",
            "payout_id",
            "released_at",
        ),
    ),
    ExportKind(
        "payout_accounts.json",
        "Mentors' accounts at the gateway that payouts are sent to.",
        PayoutAccount,
        ("id", "mentor_id", "gateway", "account_id", "ready", "updated_at"),
    ),
    ExportKind(
        "payouts.json",
        "Money sent to mentors.",
        Payout,
        (
            "id",
            "reference",
            "mentor_id",
            "gateway",
            "account_id",
            "amount_minor",
            "currency",
            "status",
            "provider_transfer_id",
            "failure_reason",
            "created_by_id",
            "created_at",
            "paid_at",
        ),
    ),
    ExportKind(
        "ledger_entries.json",
        "The double-entry ledger: each entry with its transaction. Debits are positive, credits "
        "negative; a transaction's entries add up to zero per currency.",
        LedgerEntry,
        ("id", "transaction_id", "account", "mentor_id", "amount_minor", "currency"),
        related={
            "transaction_key": "transaction__key",
            "transaction_kind": "transaction__kind",
            "memo": "transaction__memo",
            "payment_id": "transaction__payment_id",
            "refund_id": "transaction__refund_id",
            "payout_id": "transaction__payout_id",
            "booking_id": "transaction__booking_id",
            "created_at": "transaction__created_at",
        },
    ),
)

INSTITUTION_FIELDS = (
    "name",
    "slug",
    "schema_name",
    "country",
    "currency",
    "timezone",
    "theme",
    "primary_color",
    "accent_color",
    "signup_policy",
    "signup_email_domains",
    "created_at",
)


def _json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, sort_keys=False)


def _write_array(member: IO[bytes], rows: Iterable[dict]) -> int:
    """A JSON array, one object a line, written as the rows come. Returns how many."""
    count = 0
    buffer: list[str] = ["["]
    for row in rows:
        buffer.append(("\n" if count == 0 else ",\n") + _json(row))
        count += 1
        if len(buffer) >= 500:
            member.write("".join(buffer).encode())
            buffer.clear()
    buffer.append("\n]\n" if count else "]\n")
    member.write("".join(buffer).encode())
    return count


def readme(*, institution: Institution, exported_at, counts: dict[str, int]) -> str:
    lines = [
        f"{institution.name}: data export from PeerLearn",
        "=" * 60,
        "",
        f"Institution: {institution.name} ({institution.slug})",
        f"Exported at: {exported_at.isoformat()}",
        "",
        "Each .json file holds one kind of data: a JSON array of objects, one per line.",
        "Numbers called `id` or ending in `_id` refer to rows of the other files (e.g. a booking's",
        "mentor_id is an id in mentor_profiles.json, its learner_id an id in people.json).",
        "Amounts ending in `_minor` are whole numbers in the currency's smallest unit (cents,",
        "pence, paise; yen as they are), next to their ISO 4217 `currency`.",
        "Times are ISO 8601 in UTC; weekly hours and dates are in the mentor's own time zone.",
        "",
        "Not included: password hashes, payment gateway keys and other secrets, sign-in and",
        "invitation tokens, and the uploaded material files themselves (materials.json lists",
        "their names and sizes).",
        "",
        "Files",
        "-----",
        "",
        "institution.json",
        "    The institution's own settings: name, subdomain, country, currency, branding, sign-up rules.",
        "",
    ]
    for kind in KINDS:
        lines.append(f"{kind.filename} ({counts.get(kind.filename, 0)} rows)")
        lines.append(f"    {kind.description}")
        lines.append(f"    Fields: {', '.join(kind.columns)}")
        lines.append("")
    return "\n".join(lines)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Every file read from the same snapshot of the schema, when the export starts its own
    transaction (inside a caller's transaction, that transaction decides)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def institution_export_write(*, institution: Institution, file: IO[bytes]) -> dict[str, int]:
    """Write the export ZIP to `file` (which need not be seekable). Returns rows per file."""
    exported_at = timezone.now()
    counts: dict[str, int] = {}
    with (
        tenant_context(institution),
        _one_snapshot(),
        zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        public = {name: getattr(institution, name) for name in INSTITUTION_FIELDS}
        archive.writestr("institution.json", _json(public) + "\n")
        for kind in KINDS:
            with archive.open(kind.filename, "w", force_zip64=True) as member:
                counts[kind.filename] = _write_array(member, kind.queryset().iterator(chunk_size=CHUNK_ROWS))
        archive.writestr(
            "README.txt", readme(institution=institution, exported_at=exported_at, counts=counts)
        )
    return counts


def institution_export(*, institution: Institution) -> bytes:
    """The institution's data as a ZIP archive, built in memory."""
    buffer = io.BytesIO()
    institution_export_write(institution=institution, file=buffer)
    return buffer.getvalue()
