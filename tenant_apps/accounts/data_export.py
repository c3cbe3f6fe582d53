"""A person's own data, as a zip of JSON files and the files they uploaded ("Download my data").

Everything is read in the current institution's schema and only about `user`: their profile, their
bookings as learner and as mentor, payments, refunds and receipts, earnings and payouts, reviews
written and replies, chat messages sent, room attendance, notifications and their deliveries,
preferences and consents, materials uploaded (with the files), their avatar, and the audit entries
about them. Other people appear by name only where the person saw it (the other party of a session).

    README.txt             what each file holds
    profile.json           account, mentor profile, availability, payout accounts, calendar feed
    consents.json          SMS opt-in, email confirmation, notification preferences
    bookings.json          1:1 sessions as learner and as mentor, with their history
    group_sessions.json    places taken, and sessions led as mentor
    payments.json          payments with refunds and receipt links; earnings and payouts
    reviews.json           reviews written; reviews received with the replies
    chat.json              chat messages sent in live rooms
    attendance.json        when they were in a live room
    notifications.json     notifications received and where each went
    materials.json         files uploaded to sessions (the files under materials/)
    audit.json             audit-log entries made by them or about them
    files/                 materials/<id>-<name>, avatar.jpg
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePosixPath
from typing import IO, Any

from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone

from .models import User

ZIP_ROOT = "my-data"
CHUNK = 1024 * 1024


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _rows(queryset, fields: Iterable[str]) -> list[dict]:
    return [dict(row) for row in queryset.values(*fields)]


def personal_files_bytes(*, user: User) -> int:
    """The bytes of the files an export of `user` would copy (their materials)."""
    from tenant_apps.sessions.models import Material

    return Material.objects.filter(uploaded_by=user).aggregate(total=Sum("size"))["total"] or 0


def personal_data(*, user: User) -> dict[str, Any]:
    """Every JSON document of the export, by file name (without the files themselves)."""
    from rest_framework.authtoken.models import Token

    from tenant_apps.admin_console.models import AuditEntry
    from tenant_apps.billing.models import Earning, Payment, PayoutAccount, Refund
    from tenant_apps.notifications.models import Delivery, Notification, Preference
    from tenant_apps.sessions.models import (
        Attendance,
        AvailabilityOverride,
        Booking,
        BookingTransition,
        CalendarFeed,
        ChatMessage,
        Enrollment,
        GroupSession,
        Material,
        MentorProfile,
        Review,
        WeeklyAvailability,
    )

    mentor = MentorProfile.objects.filter(user=user).first()
    account = {
        "id": user.pk,
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "mentor_status": user.mentor_status,
        "mentor_application": user.mentor_application,
        "timezone": user.timezone,
        "phone": user.phone,
        "avatar": _avatar_file(user) or None,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
        "email_verified_at": user.email_verified_at,
        "is_active": user.is_active,
        "has_api_token": Token.objects.filter(user=user).exists(),
    }
    profile: dict[str, Any] = {"account": account, "mentor_profile": None}
    if mentor is not None:
        profile["mentor_profile"] = {
            **_rows(
                MentorProfile.objects.filter(pk=mentor.pk),
                [
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
                ],
            )[0],
            "weekly_hours": _rows(
                WeeklyAvailability.objects.filter(mentor=mentor), ["weekday", "start_time", "end_time"]
            ),
            "availability_overrides": _rows(
                AvailabilityOverride.objects.filter(mentor=mentor), ["date", "kind", "start_time", "end_time"]
            ),
            "payout_accounts": _rows(
                PayoutAccount.objects.filter(mentor=mentor), ["gateway", "account_id", "ready", "updated_at"]
            ),
        }
    feed = CalendarFeed.objects.filter(user=user).first()
    profile["calendar_feed"] = {"created_at": feed.created_at} if feed else None

    consents = {
        "sms_opt_in": user.sms_opt_in,
        "email_verified_at": user.email_verified_at,
        "notification_preferences": _rows(
            Preference.objects.filter(user=user).order_by("event"), ["event", "in_app", "email", "sms"]
        ),
    }

    booking_fields = [
        "id",
        "status",
        "starts_at",
        "ends_at",
        "price_minor",
        "currency",
        "free_allowance",
        "topic",
        "cancel_reason",
        "learner_confirmed_at",
        "created_at",
    ]
    bookings = Booking.objects.filter(Q(learner=user) | Q(mentor__user=user)).select_related(
        "mentor__user", "learner"
    )
    history: dict[int, list[dict]] = {}
    for row in BookingTransition.objects.filter(booking__in=bookings).order_by("at", "pk"):
        history.setdefault(row.booking_id, []).append(
            {
                "from": row.from_status,
                "to": row.to_status,
                "at": row.at,
                "by_you": row.actor_id == user.pk,
                "note": row.note,
            }
        )
    booking_docs = []
    for booking in bookings.order_by("starts_at", "pk"):
        as_learner = booking.learner_id == user.pk
        doc = {field: getattr(booking, field) for field in booking_fields}
        doc["your_role"] = "learner" if as_learner else "mentor"
        doc["with"] = str(booking.mentor.user) if as_learner else str(booking.learner)
        doc["history"] = history.get(booking.pk, [])
        booking_docs.append(doc)

    group_docs = {
        "places": [
            {
                "group_session_id": enrollment.group_session_id,
                "title": enrollment.group_session.title,
                "starts_at": enrollment.group_session.starts_at,
                "status": enrollment.status,
                "created_at": enrollment.created_at,
            }
            for enrollment in Enrollment.objects.filter(learner=user).select_related("group_session")
        ],
        "led_as_mentor": _rows(
            GroupSession.objects.filter(mentor__user=user),
            [
                "id",
                "title",
                "description",
                "starts_at",
                "ends_at",
                "capacity",
                "price_minor",
                "currency",
                "status",
            ],
        ),
    }

    payments = []
    for payment in Payment.objects.filter(learner=user).order_by("created_at", "pk"):
        payments.append(
            {
                "reference": payment.reference,
                "booking_id": payment.booking_id,
                "gateway": payment.gateway,
                "amount_minor": payment.amount_minor,
                "currency": payment.currency,
                "status": payment.status,
                "refunded_minor": payment.refunded_minor,
                "paid_at": payment.paid_at,
                "created_at": payment.created_at,
                "receipt": reverse("billing:receipt", args=[payment.reference]) if payment.is_paid else None,
                "refunds": _rows(
                    Refund.objects.filter(payment=payment),
                    [
                        "reference",
                        "amount_minor",
                        "currency",
                        "kind",
                        "reason",
                        "status",
                        "created_at",
                        "completed_at",
                    ],
                ),
            }
        )
    money: dict[str, Any] = {"payments": payments, "earnings": [], "payouts": []}
    if mentor is not None:
        money["earnings"] = _rows(
            Earning.objects.filter(mentor=mentor),
            [
                "booking_id",
                "gross_minor",
                "commission_minor",
                "amount_minor",
                "currency",
                "status",
                "released_at",
            ],
        )
        money["payouts"] = _rows(
            mentor.payouts.all(),
            ["reference", "gateway", "amount_minor", "currency", "status", "created_at", "paid_at"],
        )

    reviews = {
        "written": _rows(
            Review.objects.filter(booking__learner=user),
            ["booking_id", "rating", "comment", "mentor_reply", "created_at", "replied_at"],
        ),
        "received": _rows(
            Review.objects.filter(booking__mentor__user=user),
            ["booking_id", "rating", "comment", "mentor_reply", "created_at", "replied_at"],
        ),
    }

    chat = _rows(
        ChatMessage.objects.filter(author=user).order_by("created_at", "pk"),
        ["booking_id", "group_session_id", "body", "created_at"],
    )
    attendance = _rows(
        Attendance.objects.filter(user=user).order_by("joined_at", "pk"),
        ["booking_id", "group_session_id", "joined_at", "left_at"],
    )

    deliveries: dict[int, list[dict]] = {}
    for row in Delivery.objects.filter(notification__recipient=user).values(
        "notification_id", "channel", "status", "to", "created_at"
    ):
        deliveries.setdefault(row.pop("notification_id"), []).append(row)
    notifications = [
        {**row, "deliveries": deliveries.get(row["id"], [])}
        for row in Notification.objects.filter(recipient=user)
        .order_by("created_at", "pk")
        .values("id", "event", "title", "body", "url", "created_at", "read_at")
    ]

    materials = [
        {
            "id": material.pk,
            "booking_id": material.booking_id,
            "name": material.original_name,
            "content_type": material.content_type,
            "size": material.size,
            "created_at": material.created_at,
            "file": f"files/materials/{_material_file(material)}",
        }
        for material in Material.objects.filter(uploaded_by=user).order_by("created_at", "pk")
    ]

    audit = _rows(
        AuditEntry.objects.filter(Q(actor=user) | Q(target=user.email)).order_by("at", "pk"),
        ["at", "action", "actor_label", "target", "changes"],
    )

    return {
        "profile.json": profile,
        "consents.json": consents,
        "bookings.json": booking_docs,
        "group_sessions.json": group_docs,
        "payments.json": money,
        "reviews.json": reviews,
        "chat.json": chat,
        "attendance.json": attendance,
        "notifications.json": notifications,
        "materials.json": materials,
        "audit.json": audit,
    }


def _avatar_file(user: User) -> str:
    if not user.avatar:
        return ""
    return f"files/avatar{PurePosixPath(user.avatar.name).suffix}"


def _material_file(material) -> str:
    return f"{material.pk}-{material.original_name}".replace("/", "_")


README = """Your data at {institution}, as of {at} (UTC).

Each .json file is UTF-8 JSON. Times are ISO 8601 in UTC; amounts are integers in the currency's
smallest unit (pence, cents, paise).

  profile.json         your account, mentor profile, availability, payout accounts, calendar feed
  consents.json        SMS opt-in, email confirmation, notification preferences
  bookings.json        your 1:1 sessions as learner and as mentor, with their history
  group_sessions.json  group sessions you joined, and the ones you led
  payments.json        your payments, refunds and receipts; your earnings and payouts as a mentor
  reviews.json         reviews you wrote; reviews you received and your replies
  chat.json            chat messages you sent in live rooms
  attendance.json      when you were in a live room
  notifications.json   notifications you received and where each was delivered
  materials.json       files you uploaded to sessions (copies under files/materials/)
  audit.json           audit-log entries made by you or about your account
"""


def personal_export_write(*, user: User, institution_name: str, out: IO[bytes]) -> int:
    """Write the zip of `user`'s data to `out`; returns the number of files copied in."""
    documents = personal_data(user=user)
    copied = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            f"{ZIP_ROOT}/README.txt",
            README.format(institution=institution_name, at=timezone.now().strftime("%Y-%m-%d %H:%M")),
        )
        for name, document in documents.items():
            body = json.dumps(document, default=_json_default, indent=1, ensure_ascii=False)
            archive.writestr(f"{ZIP_ROOT}/{name}", body)
        if user.avatar:
            copied += _copy(archive, user.avatar, f"{ZIP_ROOT}/{_avatar_file(user)}")
        from tenant_apps.sessions.models import Material

        for material in Material.objects.filter(uploaded_by=user).order_by("pk"):
            copied += _copy(archive, material.file, f"{ZIP_ROOT}/files/materials/{_material_file(material)}")
    return copied


def _copy(archive: zipfile.ZipFile, field_file, arcname: str) -> int:
    """Copy one stored file into the zip in chunks; a file missing from storage is skipped."""
    try:
        source = field_file.storage.open(field_file.name, "rb")
    except (FileNotFoundError, OSError):
        return 0
    with source, archive.open(arcname, "w", force_zip64=True) as target:
        while chunk := source.read(CHUNK):
            target.write(chunk)
    return 1
