"""A person's rights over their data: download it, and delete their account.

Download: a zip of JSON files and the files they uploaded (data_export.py). Small accounts get it
at once, built into a temporary file and streamed; an account whose files pass
PERSONAL_EXPORT_SYNC_MAX_BYTES is prepared by the worker, kept for DATA_EXPORT_DOWNLOAD_DAYS and
announced by email. Either way once per PERSONAL_EXPORT_INTERVAL_SECONDS, counted in the database
(DataExport rows), so the limit holds across processes and without Redis.

Deletion: the person is erased and the records others rely on stay. Their name, email (replaced
by a placeholder unique in the institution), phone, avatar, profile texts, messages and uploads go,
with their sign-in (password, sessions, API token, links); bookings, payments, refunds, earnings
and ledger entries stay, pointing at the anonymised account. Upcoming sessions they booked are
cancelled through the normal cancellation (refunds per the institution's policy). A mentor with
upcoming sessions, or the last administrator, is told what to do first.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.formats import date_format

from shared.core.errors import ApplicationError
from tenant_apps.admin_console.audit import audit_record
from tenant_apps.admin_console.models import AuditEntry, DataExport
from tenants.models import Institution

from .data_export import personal_export_write, personal_files_bytes
from .models import Invitation, LoginLink, User

logger = logging.getLogger(__name__)

ERASED_EMAIL_DOMAIN = "erased.invalid"
ERASED_NAME = "Deleted member"
ERASED_CHAT = "[Message removed: its author deleted their account.]"


def erased_email(user: User) -> str:
    """The placeholder address of a deleted account: unique in the institution, says nothing."""
    return f"deleted-{user.pk}@{ERASED_EMAIL_DOMAIN}"


def is_erased(user: User) -> bool:
    return user.email.endswith(f"@{ERASED_EMAIL_DOMAIN}")


# --- Download my data ----------------------------------------------------------------------------


def personal_exports(*, user: User) -> list[DataExport]:
    return list(DataExport.objects.filter(kind=DataExport.Kind.PERSONAL, requested_by=user)[:10])


def personal_export_refusal(*, user: User) -> str | None:
    """Why `user` may not ask for their data now (None: they may)."""
    interval = timedelta(seconds=settings.PERSONAL_EXPORT_INTERVAL_SECONDS)
    last = (
        DataExport.objects.filter(kind=DataExport.Kind.PERSONAL, requested_by=user)
        .exclude(status=DataExport.Status.FAILED)
        .order_by("-created_at")
        .first()
    )
    if last is None or last.created_at <= timezone.now() - interval:
        return None
    asked = date_format(timezone.localtime(last.created_at), "H:i")
    again = date_format(timezone.localtime(last.created_at + interval), "H:i")
    return f"You asked for your data at {asked}. You can ask again after {again}."


@dataclass
class PersonalExport:
    export: DataExport
    file: tempfile.SpooledTemporaryFile | None  # the zip, when it was built at once


def personal_export_start(*, user: User, institution: Institution) -> PersonalExport:
    """Build `user`'s zip now (small accounts) or queue it for the worker; refuses within the interval."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one request at a time per person
        refusal = personal_export_refusal(user=user)
        if refusal:
            raise ApplicationError(refusal, code="too_soon", status=429)
        export = DataExport.objects.create(kind=DataExport.Kind.PERSONAL, requested_by=user)
        audit_record(actor=user, action="export.personal", target=user.email)
        if personal_files_bytes(user=user) > settings.PERSONAL_EXPORT_SYNC_MAX_BYTES:
            from .tasks import personal_export_run

            export_id = export.pk
            transaction.on_commit(lambda: personal_export_run.delay(export_id))
            return PersonalExport(export=export, file=None)
    # Built outside the transaction: no lock is held while the files are copied.
    # Closed by the response that streams it (FileResponse closes its file).
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    try:
        personal_export_write(user=user, institution_name=institution.name, out=out)
    except Exception:
        out.close()
        from tenant_apps.admin_console.exports import export_failed

        export_failed(export_id=export.pk, error="Building the zip failed.")
        raise
    out.seek(0, 2)
    DataExport.objects.filter(pk=export.pk).update(
        status=DataExport.Status.READY, size=out.tell(), finished_at=timezone.now()
    )
    out.seek(0)
    export.refresh_from_db()
    return PersonalExport(export=export, file=out)


def personal_export_run(*, export_id: int) -> DataExport | None:
    """The worker's part for a large account: build the zip, keep it, email the link."""
    from django.db import connection

    from tenant_apps.admin_console.exports import export_store

    export = (
        DataExport.objects.select_related("requested_by")
        .filter(pk=export_id, kind=DataExport.Kind.PERSONAL)
        .first()
    )
    if export is None or export.status == DataExport.Status.READY or export.requested_by is None:
        return export
    user, institution = export.requested_by, connection.tenant
    DataExport.objects.filter(pk=export_id).update(status=DataExport.Status.RUNNING)
    with tempfile.TemporaryFile() as out:
        personal_export_write(user=user, institution_name=institution.name, out=out)
        out.seek(0)
        export = export_store(export=export, source=File(out), name="my-data.zip")
    from .services import _site_url

    context = {
        "user": user,
        "institution": institution,
        "url": _site_url(institution, "accounts:data"),
        "days": settings.DATA_EXPORT_DOWNLOAD_DAYS,
    }
    send_mail(
        subject=f"Your data from {institution.name} is ready",
        message=render_to_string("accounts/email/data_ready.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
    return export


def personal_export_for_download(*, user: User, export_id: int) -> DataExport | None:
    """One of `user`'s own prepared exports (None for anyone else's, or an unknown id)."""
    return DataExport.objects.filter(pk=export_id, kind=DataExport.Kind.PERSONAL, requested_by=user).first()


# --- Delete my account ---------------------------------------------------------------------------


def account_deletion_refusal(*, user: User) -> str | None:
    """Why `user` cannot delete their account yet, and what to do first (None: they can)."""
    from tenant_apps.sessions.models import Booking, GroupSession

    now = timezone.now()
    if user.role == User.Role.ADMIN:
        others = User.objects.filter(role=User.Role.ADMIN, is_active=True).exclude(pk=user.pk)
        if not others.exists():
            return (
                "You are the only administrator of this site. Make another member an administrator "
                "(Admin console → Members), then delete your account."
            )
    upcoming = (
        Booking.objects.filter(mentor__user=user, status__in=Booking.LIVE_STATUSES, ends_at__gt=now).count()
        + GroupSession.objects.filter(
            mentor__user=user, status=GroupSession.Status.SCHEDULED, ends_at__gt=now
        ).count()
    )
    if upcoming:
        sessions = "session" if upcoming == 1 else "sessions"
        return (
            f"You have {upcoming} upcoming {sessions} as a mentor. Cancel them from your dashboard "
            "(learners are refunded) or wait until they are over, then delete your account."
        )
    return None


@dataclass
class AccountDeletion:
    bookings_cancelled: int
    places_given_up: int


@transaction.atomic
def account_delete(*, user: User, password: str) -> AccountDeletion:
    """Erase `user` (who confirmed with their password) and keep the records others rely on."""
    from rest_framework.authtoken.models import Token

    from tenant_apps.notifications.models import Notification, Preference
    from tenant_apps.sessions.bookings import booking_cancel
    from tenant_apps.sessions.groups import enrollment_cancel
    from tenant_apps.sessions.models import (
        Booking,
        CalendarFeed,
        ChatMessage,
        Enrollment,
        Material,
        MentorProfile,
        Review,
    )
    from tenant_apps.sessions.search import mentor_search_refresh

    # Administrators are locked together: two removing themselves at once cannot both pass.
    list(User.objects.select_for_update().filter(Q(pk=user.pk) | Q(role=User.Role.ADMIN, is_active=True)))
    user = User.objects.get(pk=user.pk)
    if not user.is_active:
        raise ApplicationError("This account is already closed.", status=409)
    if not user.check_password(password):
        message = "That is not your password."
        raise ApplicationError(message, code="wrong_password", fields={"password": [message]})
    refusal = account_deletion_refusal(user=user)
    if refusal:
        raise ApplicationError(refusal, code="deletion_refused", status=409)

    now = timezone.now()
    # Upcoming sessions booked as a learner end through the normal cancellation (refund per policy).
    reason = "The learner closed their account."
    cancelled = 0
    for booking in Booking.objects.filter(learner=user, status__in=Booking.LIVE_STATUSES, starts_at__gt=now):
        booking_cancel(booking=booking, actor=user, reason=reason)
        cancelled += 1
    places = 0
    for enrollment in Enrollment.objects.filter(
        learner=user,
        status__in=[Enrollment.Status.ENROLLED, Enrollment.Status.WAITLISTED],
        group_session__starts_at__gt=now,
    ):
        enrollment_cancel(enrollment=enrollment, actor=user)
        places += 1

    old_email = user.email
    files = [user.avatar.name] if user.avatar else []
    user.email = erased_email(user)
    user.full_name = ERASED_NAME
    user.phone = ""
    user.sms_opt_in = False
    user.mentor_application = ""
    user.timezone = "UTC"
    user.avatar = ""
    user.email_verified_at = None
    user.last_login = None
    user.is_active = user.is_staff = user.is_superuser = False
    user.set_unusable_password()  # every session's auth hash stops matching: all sessions end
    user.save()
    user.groups.clear()
    user.user_permissions.clear()

    mentor = MentorProfile.objects.filter(user=user).first()
    if mentor is not None:
        MentorProfile.objects.filter(pk=mentor.pk).update(headline="", bio="", expertise=[], languages=[])
        mentor_search_refresh(mentor_id=mentor.pk)
        Review.objects.filter(booking__mentor=mentor).update(mentor_reply="")

    Token.objects.filter(user=user).delete()
    LoginLink.objects.filter(user=user).delete()
    CalendarFeed.objects.filter(user=user).delete()
    Invitation.objects.filter(email__iexact=old_email).delete()
    Preference.objects.filter(user=user).delete()
    Notification.objects.filter(recipient=user).delete()
    ChatMessage.objects.filter(author=user).update(body=ERASED_CHAT)
    Review.objects.filter(booking__learner=user).update(comment="")
    Booking.objects.filter(learner=user).update(topic="")
    # What the gateway's checkout was given (name and email to prefill): not needed any more.
    from tenant_apps.billing.models import Payment

    Payment.objects.filter(learner=user).update(checkout={})
    for material in Material.objects.filter(uploaded_by=user):
        files.append(material.file.name)
        material.delete()
    from tenant_apps.admin_console.exports import export_file_delete

    for export in DataExport.objects.filter(kind=DataExport.Kind.PERSONAL, requested_by=user):
        export_file_delete(export)
        export.delete()
    # The audit log keeps what happened; the person's name and address leave it.
    label = f"{ERASED_NAME} <{user.email}>"
    AuditEntry.objects.filter(actor=user).update(actor_label=label, address=None)
    AuditEntry.objects.filter(target=old_email).update(target=user.email)
    deletion = audit_record(
        actor=user,
        action="member.deleted",
        target=user.email,
        changes={"bookings_cancelled": [None, cancelled], "group_places_given_up": [None, places]},
    )
    # Not even the record of the deletion keeps the client address it came from.
    AuditEntry.objects.filter(pk=deletion.pk).update(address=None)
    transaction.on_commit(lambda: _delete_files(files))
    logger.info("account %s deleted (%d bookings cancelled)", user.pk, cancelled)
    return AccountDeletion(bookings_cancelled=cancelled, places_given_up=places)


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # a file already gone or storage unavailable: logged, the account is erased
            logger.warning("could not delete %s of a deleted account", name, exc_info=True)
