"""Members in bulk: the CSV import (checked on upload, run by the worker in chunks), the welcome
email that lets an imported person choose a password, and the CSV export."""

from __future__ import annotations

import csv
import functools
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode

from shared.core.errors import ApplicationError
from shared.platform_billing.limits import require_room
from shared.platform_billing.models import Limit
from tenant_apps.accounts.models import User
from tenants.validators import timezone_names

from .audit import audit_record
from .models import MemberImport

logger = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
# Rows per transaction: progress moves in these steps, and a worker that dies loses at most one.
IMPORT_CHUNK = 50
REQUIRED_COLUMNS = ("email", "full_name", "role")
OPTIONAL_COLUMNS = ("timezone",)
IMPORT_ROLES = (User.Role.LEARNER, User.Role.MENTOR)
# How long the link of the welcome email lets an imported person choose a password.
WELCOME_LINK_DAYS = 14

MEMBER_STATUSES = {
    "active": "Active",
    "deactivated": "Deactivated",
    "pending": "Mentor application pending",
}


# --- The list ---------------------------------------------------------------------------------


def member_queryset(*, query: str = "", role: str = "", status: str = "") -> QuerySet[User]:
    members = User.objects.order_by("full_name", "email")
    if role in User.Role.values:
        members = members.filter(role=role)
    if status == "active":
        members = members.filter(is_active=True)
    elif status == "deactivated":
        members = members.filter(is_active=False)
    elif status == "pending":
        members = members.filter(mentor_status=User.MentorStatus.PENDING)
    if query:
        members = members.filter(Q(full_name__icontains=query) | Q(email__icontains=query))
    return members


# --- Upload -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRow:
    number: int  # 1-based, the header being row 1 (as a spreadsheet numbers it)
    email: str
    full_name: str
    role: str
    timezone: str


def _column(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def import_rows(content: str) -> list[ImportRow]:
    """The data rows of a checked CSV; blank lines are skipped but keep their numbers."""
    reader = csv.reader(io.StringIO(content))
    header = [_column(name) for name in next(reader, [])]
    rows = []
    for number, record in enumerate(reader, start=2):
        if not any(value.strip() for value in record):
            continue
        values = dict(zip(header, (value.strip() for value in record), strict=False))
        rows.append(
            ImportRow(
                number=number,
                email=values.get("email", ""),
                full_name=values.get("full_name", ""),
                role=values.get("role", "").lower(),
                timezone=values.get("timezone", ""),
            )
        )
    return rows


def import_file_check(*, data: bytes) -> tuple[str, int]:
    """The decoded CSV and its number of data rows; a file that cannot be imported is refused
    as a whole (size, encoding, header), before anything is stored."""

    def refuse(message: str) -> ApplicationError:
        return ApplicationError(message, fields={"file": [message]})

    if len(data) > MAX_IMPORT_BYTES:
        raise refuse(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB. Split it in parts.")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refuse(
            "The file is not UTF-8 text. In your spreadsheet, save it as “CSV UTF-8 (comma delimited)”."
        ) from None
    if "\x00" in content:
        raise refuse("This is not a CSV file. Save your spreadsheet as CSV and upload that.")
    try:
        header = [_column(name) for name in next(csv.reader(io.StringIO(content)), [])]
        rows = import_rows(content)
    except csv.Error as error:
        raise refuse(f"The file cannot be read as CSV ({error}).") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        expected = ", ".join((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))
        raise refuse(
            f"The first row must name the columns: {expected} (timezone is optional). "
            f"Missing: {', '.join(missing)}."
        )
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise refuse(f"The column {', '.join(repeated)} appears more than once.")
    if not rows:
        raise refuse("The file has a header but no people in it.")
    if len(rows) > MAX_IMPORT_ROWS:
        raise refuse(f"The file has {len(rows)} rows; import at most {MAX_IMPORT_ROWS} at a time.")
    return content, len(rows)


@transaction.atomic
def member_import_create(*, actor: User, file_name: str, data: bytes) -> MemberImport:
    """Store a checked CSV and hand it to the worker (after the commit)."""
    if not actor.is_tenant_admin:
        raise ApplicationError("Only institution administrators can do this.", status=403)
    content, total = import_file_check(data=data)
    job = MemberImport.objects.create(
        created_by=actor, file_name=file_name[:200], content=content, total_rows=total
    )
    audit_record(
        actor=actor,
        action="members.import_started",
        target=job.file_name,
        changes={"rows": [None, total]},
    )
    from .tasks import member_import_run

    transaction.on_commit(lambda: member_import_run.delay(job.pk))
    return job


# --- The worker's side ------------------------------------------------------------------------


def _normal_email(email: str) -> str:
    return User.objects.normalize_email(email).strip().lower()


def _first_rows(rows: list[ImportRow]) -> dict[str, int]:
    """Each address → the row it first appears on (rows with an unusable address are ignored)."""
    first: dict[str, int] = {}
    for row in rows:
        email = _normal_email(row.email)
        if email and _valid_email(email):
            first.setdefault(email, row.number)
    return first


@functools.cache
def _zones() -> frozenset[str]:
    return timezone_names()


def _valid_email(email: str) -> bool:
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


def _row_problem(row: ImportRow, email: str, first_rows: dict[str, int], existing: dict[str, bool]) -> str:
    """Why the row cannot be imported, checked before touching the database ("" if it can)."""
    if not row.email:
        return "The email address is missing."
    if not _valid_email(email):
        return f"“{row.email}” is not a valid email address."
    if first_rows.get(email, row.number) != row.number:
        return f"The same address is on row {first_rows[email]}."
    if email in existing:
        return "Already a member." if existing[email] else "Already has an account (deactivated)."
    if not row.full_name:
        return "The full name is missing."
    if len(row.full_name) > User._meta.get_field("full_name").max_length:
        return "The full name is longer than 150 characters."
    if row.role not in IMPORT_ROLES:
        shown = f"“{row.role}”" if row.role else "(empty)"
        return f"Unknown role {shown}: use learner or mentor."
    if row.timezone and row.timezone not in _zones():
        return f"Unknown time zone “{row.timezone}”, e.g. Europe/London."
    return ""


def _import_row(*, row: ImportRow, email: str, default_timezone: str, actor: User | None) -> User:
    user = User(
        email=email,
        full_name=row.full_name,
        role=row.role,
        timezone=row.timezone or default_timezone,
    )
    if row.role == User.Role.MENTOR:
        user.mentor_status = User.MentorStatus.APPROVED
        require_room(Limit.ACTIVE_MENTORS)
    else:
        require_room(Limit.ACTIVE_LEARNERS)
    user.set_unusable_password()
    user.save()
    audit_record(actor=actor, action="member.imported", target=email, changes={"role": [None, row.role]})
    return user


def member_import_process(*, import_id: int) -> MemberImport | None:
    """Run an import to its end, one chunk of rows per transaction.

    Safe to run twice, or after a worker died half-way: the import row is locked for each chunk,
    and a chunk's accounts, its progress and its errors are committed together, so a chunk is
    either done (and skipped next time) or not at all.
    """
    institution = connection.tenant
    default_timezone = getattr(institution, "timezone", "") or "UTC"
    rows: list[ImportRow] | None = None
    first_rows: dict[str, int] = {}
    while True:
        with transaction.atomic():
            job = (
                MemberImport.objects.select_for_update(of=("self",))
                .select_related("created_by")
                .filter(pk=import_id)
                .first()
            )
            if job is None or job.status in (MemberImport.Status.DONE, MemberImport.Status.FAILED):
                return job
            if rows is None:
                rows = import_rows(job.content)
                first_rows = _first_rows(rows)
            chunk = rows[job.processed_rows : job.processed_rows + IMPORT_CHUNK]
            if not chunk:
                job.status = MemberImport.Status.DONE
                job.finished_at = timezone.now()
                job.save(update_fields=["status", "finished_at"])
                audit_record(
                    actor=job.created_by,
                    action="members.import_finished",
                    target=job.file_name,
                    changes={"imported": [None, job.imported], "errors": [None, len(job.errors)]},
                )
                return job
            emails = {row.number: _normal_email(row.email) for row in chunk}
            existing = dict(
                User.objects.filter(email__in=list(emails.values())).values_list("email", "is_active")
            )
            created: list[User] = []
            for row in chunk:
                email = emails[row.number]
                problem = _row_problem(row, email, first_rows, existing)
                if not problem:
                    try:
                        with transaction.atomic():
                            created.append(
                                _import_row(
                                    row=row,
                                    email=email,
                                    default_timezone=default_timezone,
                                    actor=job.created_by,
                                )
                            )
                    except ApplicationError as error:
                        problem = error.message
                if problem:
                    job.errors.append({"row": row.number, "email": row.email, "message": problem})
            job.status = MemberImport.Status.RUNNING
            job.processed_rows += len(chunk)
            job.imported += len(created)
            job.save(update_fields=["status", "processed_rows", "imported", "errors"])
            if created:
                transaction.on_commit(
                    lambda created=created: member_welcome_send(users=created, institution=institution),
                    robust=True,
                )


def member_import_fail(*, import_id: int) -> None:
    """The worker stopped on an unexpected error: the chunks done so far stay imported."""
    MemberImport.objects.filter(pk=import_id).exclude(status=MemberImport.Status.DONE).update(
        status=MemberImport.Status.FAILED, finished_at=timezone.now()
    )


def member_import_progress(job: MemberImport) -> dict:
    percent = 100 if job.status == MemberImport.Status.DONE else 0
    if job.total_rows and job.status != MemberImport.Status.DONE:
        percent = min(100, job.processed_rows * 100 // job.total_rows)
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": job.get_status_display(),
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "imported": job.imported,
        "error_count": len(job.errors),
        "percent": percent,
        "finished": job.status in (MemberImport.Status.DONE, MemberImport.Status.FAILED),
    }


# --- The welcome email ------------------------------------------------------------------------


class WelcomeTokenGenerator(PasswordResetTokenGenerator):
    """Like a password-reset token (spent once a password is set, as the hash changes), with its
    own salt and a lifetime of WELCOME_LINK_DAYS rather than the reset link's few hours."""

    key_salt = "peerlearn.admin_console.members.welcome"

    def check_token(self, user, token) -> bool:
        if not (user and token):
            return False
        try:
            timestamp = base36_to_int(token.split("-")[0])
        except ValueError:
            return False
        if self._num_seconds(self._now()) - timestamp > WELCOME_LINK_DAYS * 24 * 60 * 60:
            return False
        return any(
            self._make_token_with_timestamp(user, timestamp, secret) == token
            for secret in [self.secret, *self.secret_fallbacks]
        )


welcome_tokens = WelcomeTokenGenerator()


def member_welcome_url(*, user: User, institution) -> str:
    path = reverse(
        "manage:member_welcome",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": welcome_tokens.make_token(user),
        },
        urlconf=settings.ROOT_URLCONF,
    )
    domain = institution.get_primary_domain()
    host = domain.domain if domain else settings.PLATFORM_DOMAIN
    return f"{settings.SITE_SCHEME}://{host}{settings.SITE_PORT_SUFFIX}{path}"


def member_welcome_send(*, users: list[User], institution) -> None:
    """One email per person, over one connection: their account exists, here is where to choose
    a password."""
    messages = []
    for user in users:
        context = {
            "user": user,
            "institution": institution,
            "url": member_welcome_url(user=user, institution=institution),
            "days": WELCOME_LINK_DAYS,
        }
        messages.append(
            EmailMessage(
                subject=f"Your {institution.name} account is ready",
                body=render_to_string("admin_console/members_welcome_email.txt", context),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[user.email],
            )
        )
    with get_connection() as mail:
        mail.send_messages(messages)


@transaction.atomic
def member_welcome_resend(*, actor: User, member: User, institution) -> None:
    """Send the welcome email again to a member who has not chosen a password yet."""
    if not actor.is_tenant_admin:
        raise ApplicationError("Only institution administrators can do this.", status=403)
    if member.has_usable_password():
        raise ApplicationError(f"{member} has already chosen a password.")
    if not member.is_active:
        raise ApplicationError(f"{member} is deactivated.")
    audit_record(actor=actor, action="member.welcome_resent", target=member.email)
    transaction.on_commit(lambda: member_welcome_send(users=[member], institution=institution))


def member_welcome_accepted(*, user: User) -> None:
    """The welcome link reached the person: their address is confirmed."""
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])


# --- Export -----------------------------------------------------------------------------------


def csv_cell(value: object) -> str:
    """A value safe to open in a spreadsheet: text that would start a formula is quoted."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


EXPORT_HEADER = ("email", "full_name", "role", "mentor_status", "active", "joined", "last_login")


def member_export_rows() -> Iterator[tuple]:
    """Every member as a CSV row, read with one server-side cursor (one query however many)."""
    yield EXPORT_HEADER
    members = User.objects.order_by("email").values_list(
        "email", "full_name", "role", "mentor_status", "is_active", "date_joined", "last_login"
    )
    for email, name, role, mentor_status, active, joined, last_login in members.iterator(chunk_size=1000):
        yield (
            csv_cell(email),
            csv_cell(name),
            role,
            mentor_status,
            "yes" if active else "no",
            joined.isoformat(timespec="seconds") if joined else "",
            last_login.isoformat(timespec="seconds") if last_login else "",
        )
