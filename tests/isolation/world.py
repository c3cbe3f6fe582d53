"""Two institutions with the same shapes of data, for the tenant isolation suite.

Institution A holds a full set of objects; every text a page or a file could show carries a
unique marker (`leakapubx…` for what any visitor of A's site may see, `leakaprvx…` for everything
else). Institution B is built by the same steps in a fresh schema, so B's rows have the same
primary keys as A's and carry `leakb…` markers instead. A response that contains an A marker where
A's data must not be is a leak, whatever its status code.
"""

from __future__ import annotations

import io
import secrets
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.backends.cached_db import SessionStore
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import schema_context, tenant_context
from PIL import Image
from rest_framework.authtoken.models import Token

from shared.core.testing import PASSWORD, HostClient, drop_institution, host_of, signup_for
from shared.reminders.models import DueReminder
from shared.reminders.services import reminders_schedule
from tenant_apps.accounts.models import Invitation, User
from tenant_apps.accounts.services import email_verification_token
from tenant_apps.admin_console.members import welcome_tokens
from tenant_apps.admin_console.models import AuditEntry, DataExport, MemberImport
from tenant_apps.billing import services as billing_services
from tenant_apps.billing.models import (
    Earning,
    GatewayAccount,
    Gateways,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    Payout,
    PayoutAccount,
    Refund,
    WebhookEvent,
    pricing_policy,
)
from tenant_apps.notifications.models import (
    Delivery,
    InstitutionDefault,
    Notification,
    Preference,
    SmsSettings,
)
from tenant_apps.sessions.models import (
    Attendance,
    AvailabilityOverride,
    Booking,
    BookingTransition,
    CalendarFeed,
    ChatMessage,
    Enrollment,
    GroupSession,
    LiveRoomSettings,
    Material,
    MentorProfile,
    Review,
    WeeklyAvailability,
)
from tenant_apps.sessions.reviews import mentor_rating_refresh
from tenant_apps.sessions.search import mentor_search_refresh
from tenants.directory import directory
from tenants.models import Domain, Institution
from tenants.services import institution_provision

from .fingerprint import fingerprint

PUB, PRV = "pub", "prv"
LEDGER_PAIRS = (("gateway_cash", 1), ("learner_funds", -1))


@dataclass
class Side:
    """One institution's world: its people, objects and secrets, by role in the story."""

    label: str  # "a" or "b"
    institution: Institution
    users: dict[str, User] = field(default_factory=dict)
    objects: dict[str, object] = field(default_factory=dict)
    # Secret strings (tokens, capability links' parts) by name.
    secrets: dict[str, str] = field(default_factory=dict)
    # marker → what it marks ("booking.topic of the completed booking").
    markers: dict[str, str] = field(default_factory=dict)
    media_paths: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    _own_rows: dict[str, frozenset] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return host_of(self.institution)

    @property
    def schema(self) -> str:
        return self.institution.schema_name

    def marker(self, kind: str, what: str) -> str:
        value = f"leak{self.label}{kind}x{secrets.token_hex(5)}"
        self.markers[value] = what
        return value

    def pk(self, name: str) -> int:
        return self.objects[name].pk

    def session_cookie(self, user_key: str) -> str:
        """The session key of one of this side's people, signed in (made once, committed: an
        attack's logout or password change is rolled back with the rest of it)."""
        if user_key not in self.sessions:
            user = self.users[user_key]
            with tenant_context(self.institution):
                session = SessionStore()
                session[SESSION_KEY] = str(user.pk)
                session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
                session[HASH_SESSION_KEY] = user.get_session_auth_hash()
                session.save()
            connection.set_schema_to_public()
            self.sessions[user_key] = session.session_key
        return self.sessions[user_key]

    def own_rows(self, user_key: str) -> frozenset[tuple[str, str]]:
        """Rows that belong to this person alone (their account, profile, hours, feed, settings):
        what they may change themselves."""
        if user_key in self._own_rows:
            return self._own_rows[user_key]
        user = self.users[user_key]
        with tenant_context(self.institution):
            rows = {("accounts_user", str(user.pk))}
            rows |= {
                ("authtoken_token", key)
                for key in Token.objects.filter(user=user).values_list("key", flat=True)
            }
            rows |= {
                ("mentoring_calendarfeed", str(pk))
                for pk in CalendarFeed.objects.filter(user=user).values_list("pk", flat=True)
            }
            rows |= {
                ("notifications_preference", str(pk))
                for pk in Preference.objects.filter(user=user).values_list("pk", flat=True)
            }
            for profile in MentorProfile.objects.filter(user=user):
                rows.add(("mentoring_mentorprofile", str(profile.pk)))
                rows |= {
                    ("mentoring_weeklyavailability", str(pk))
                    for pk in profile.weekly_hours.values_list("pk", flat=True)
                }
                rows |= {
                    ("mentoring_availabilityoverride", str(pk))
                    for pk in profile.overrides.values_list("pk", flat=True)
                }
        connection.set_schema_to_public()
        self._own_rows[user_key] = frozenset(rows)
        return self._own_rows[user_key]

    def rebaseline(self) -> None:
        """Read the committed fingerprint (what every rolled-back attack is compared with)."""
        self.baseline = fingerprint(self.institution)

    def client(self, user_key: str | None = None) -> HostClient:
        """A client on this side's host, signed in as `user_key` if given."""
        client = HostClient(self.host, raise_request_exception=True)
        if user_key is not None:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.session_cookie(user_key)
        return client


@dataclass
class World:
    a: Side
    b: Side

    def side(self, label: str) -> Side:
        return self.a if label == "a" else self.b

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a


# --- Building one side ---------------------------------------------------------------------------


def _person(side: Side, key: str, *, role: str, name: str, email: str, **fields) -> User:
    user = User(email=email, full_name=name, role=role, **fields)
    user.set_password(PASSWORD)
    user.save()
    side.users[key] = user
    return user


def _mentor_profile(side: Side, user: User, *, public: bool) -> MentorProfile:
    mark = (lambda what: side.marker(PUB, what)) if public else (lambda what: f"Plain {what}")
    profile = MentorProfile.objects.create(
        user=user,
        headline=mark("mentor headline"),
        bio=mark("mentor bio"),
        expertise=[mark("mentor expertise tag").lower()],
        languages=["english"],
        session_lengths=[30, 60],
        price_minor=2_000,
        minimum_notice_minutes=0,
    )
    for weekday in range(7):
        WeeklyAvailability.objects.create(
            mentor=profile, weekday=weekday, start_time=time(0), end_time=time(23)
        )
    mentor_search_refresh(mentor_id=profile.pk)
    return profile


def _booking(
    side: Side,
    key: str,
    mentor: MentorProfile,
    learner: User,
    *,
    starts_in: timedelta,
    status: str,
    minutes: int = 30,
    **fields,
) -> Booking:
    starts_at = timezone.now().replace(second=0, microsecond=0) + starts_in
    ends_at = starts_at + timedelta(minutes=minutes)
    booking = Booking.objects.create(
        mentor=mentor,
        learner=learner,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked=DateTimeTZRange(starts_at, ends_at),
        status=status,
        price_minor=2_000,
        currency="GBP",
        topic=side.marker(PRV, f"topic of the {key} booking"),
        cancel_reason=side.marker(PRV, f"cancel reason of the {key} booking")
        if status == "cancelled"
        else "",
        **fields,
    )
    BookingTransition.objects.create(
        booking=booking,
        from_status="",
        to_status=status,
        actor=learner,
        note=side.marker(PRV, f"transition note of the {key} booking"),
    )
    side.objects[f"booking_{key}"] = booking
    return booking


def _payment(side: Side, key: str, booking: Booking, *, status: str, refunded: int = 0) -> Payment:
    payment = Payment.objects.create(
        reference=side.marker(PRV, f"reference of the {key} payment"),
        booking=booking,
        learner=booking.learner,
        gateway=Gateways.SANDBOX,
        amount_minor=booking.price_minor,
        currency=booking.currency,
        fee_minor=60,
        refunded_minor=refunded,
        status=status,
        provider_ref=f"sbx_cs_{side.label}_{key}",
        provider_payment_id=side.marker(PRV, f"provider payment id of the {key} payment"),
        paid_at=timezone.now() - timedelta(days=3),
    )
    with transaction.atomic():  # the ledger's trigger checks each transaction balances at commit
        _ledger_transaction(side, key, payment)
    side.objects[f"payment_{key}"] = payment
    return payment


def _ledger_transaction(side: Side, key: str, payment: Payment) -> None:
    ledger = LedgerTransaction.objects.create(
        key=f"payment:{payment.pk}",
        kind="payment",
        payment=payment,
        booking_id=payment.booking_id,
        memo=side.marker(PRV, f"ledger memo of the {key} payment"),
    )
    for account, sign in LEDGER_PAIRS:
        LedgerEntry.objects.create(
            transaction=ledger, account=account, amount_minor=sign * payment.amount_minor, currency="GBP"
        )


def _jpeg() -> bytes:
    """A 1x1 JPEG (a marker is appended to it: image viewers ignore trailing bytes)."""
    out = io.BytesIO()
    Image.new("RGB", (1, 1)).save(out, "JPEG")
    return out.getvalue()


def _file(name: str, content: bytes) -> ContentFile:
    return ContentFile(content, name=name)


def _build_side(side: Side, login_token: str) -> None:
    """Everything of one institution, created in a fixed order (so both sides get the same ids)."""
    institution = side.institution
    now = timezone.now()
    with tenant_context(institution):
        policy = pricing_policy()
        policy.gateway = Gateways.SANDBOX
        policy.save()
        side.objects["pricing_policy"] = policy
        admin = User.objects.get(role=User.Role.ADMIN)
        admin.full_name = "Ada " + side.marker(PRV, "admin's surname")
        admin.save(update_fields=["full_name"])
        side.users["admin"] = admin
        side.secrets["login_link_token"] = login_token

        mentor = _person(
            side,
            "mentor",
            role=User.Role.MENTOR,
            name="Mo " + side.marker(PUB, "mentor's surname"),
            email="mentor@iso.example",
            mentor_status=User.MentorStatus.APPROVED,
        )
        owner = _person(
            side,
            "owner",
            role=User.Role.LEARNER,
            name="Olive " + side.marker(PRV, "owner learner's surname"),
            email="owner@iso.example",
            phone="+447700900123",
            sms_opt_in=True,
        )
        _person(side, "learner", role=User.Role.LEARNER, name="Other Learner", email="learner@iso.example")
        other_mentor = _person(
            side,
            "other_mentor",
            role=User.Role.MENTOR,
            name="Other Mentor",
            email="other-mentor@iso.example",
            mentor_status=User.MentorStatus.APPROVED,
        )
        _person(
            side,
            "applicant",
            role=User.Role.LEARNER,
            name="Abe " + side.marker(PRV, "mentor applicant's surname"),
            email="applicant@iso.example",
            mentor_status=User.MentorStatus.PENDING,
            mentor_application=side.marker(PRV, "mentor application"),
        )
        owner.avatar.save(
            "avatar.jpg", _file("avatar.jpg", _jpeg() + side.marker(PUB, "avatar file").encode())
        )
        side.media_paths["avatar"] = owner.avatar.name

        profile = _mentor_profile(side, mentor, public=True)
        side.objects["mentor_profile"] = profile
        side.objects["other_mentor_profile"] = _mentor_profile(side, other_mentor, public=False)
        side.objects["override"] = AvailabilityOverride.objects.create(
            mentor=profile, date=date.today() + timedelta(days=40), kind=AvailabilityOverride.Kind.OFF
        )

        # Bookings of the owner with the mentor, in every status.
        completed = _booking(
            side, "completed", profile, owner, starts_in=-timedelta(days=3), status="completed"
        )
        confirmed = _booking(
            side, "confirmed", profile, owner, starts_in=timedelta(minutes=5), status="confirmed"
        )
        held = _booking(
            side,
            "held",
            profile,
            owner,
            starts_in=timedelta(days=3),
            status="held",
            hold_expires_at=now + timedelta(hours=2),
        )
        for offset, status in enumerate(
            ("requested", "declined", "expired", "cancelled", "rescheduled", "no_show"), start=4
        ):
            _booking(side, status, profile, owner, starts_in=timedelta(days=offset), status=status)

        paid = _payment(side, "completed", completed, status=Payment.Status.PARTIALLY_REFUNDED, refunded=500)
        _payment(side, "confirmed", confirmed, status=Payment.Status.SUCCEEDED)
        urls = billing_services.ReturnUrls(
            success=f"http://{side.host}/billing/return/",
            cancel=f"http://{side.host}/c/",
            callback=f"http://{side.host}/cb/",
        )
        side.objects["payment_held"] = billing_services.payment_start(
            booking=held, learner=owner, urls_for=lambda payment: urls
        )
        side.objects["refund"] = Refund.objects.create(
            reference=side.marker(PRV, "refund reference"),
            payment=paid,
            amount_minor=500,
            currency="GBP",
            kind=Refund.Kind.MANUAL,
            reason=side.marker(PRV, "refund reason"),
            status=Refund.Status.SUCCEEDED,
            requested_by=admin,
            completed_at=now,
        )
        side.objects["payout_account"] = PayoutAccount.objects.create(
            mentor=profile,
            gateway=Gateways.SANDBOX,
            account_id=side.marker(PRV, "payout account id"),
            ready=True,
        )
        payout = Payout.objects.create(
            reference=side.marker(PRV, "payout reference"),
            mentor=profile,
            gateway=Gateways.SANDBOX,
            account_id=side.objects["payout_account"].account_id,
            amount_minor=1_350,
            currency="GBP",
            status=Payout.Status.PAID,
            created_by=admin,
            paid_at=now,
        )
        side.objects["payout"] = payout
        side.objects["earning"] = Earning.objects.create(
            booking=completed,
            mentor=profile,
            gross_minor=1_500,
            commission_minor=150,
            amount_minor=1_350,
            currency="GBP",
            status=Earning.Status.PAID,
            payout=payout,
            released_at=now - timedelta(days=2),
        )
        side.objects["webhook_event"] = WebhookEvent.objects.create(
            gateway=Gateways.SANDBOX,
            event_id=f"evt_{side.label}_1",
            type="checkout.paid",
            kind="payment_succeeded",
            payload={"note": side.marker(PRV, "webhook payload")},
            provider_created_at=now,
            processed_at=now,
        )
        side.objects["gateway_account"] = GatewayAccount.objects.create(
            gateway=Gateways.STRIPE,
            public_key=side.marker(PRV, "stripe publishable key"),
            secret_key=side.marker(PRV, "stripe secret key"),
            webhook_secret=side.marker(PRV, "stripe webhook secret"),
        )

        side.objects["review"] = Review.objects.create(
            booking=completed,
            rating=4,
            comment=side.marker(PUB, "review comment"),
            mentor_reply=side.marker(PUB, "mentor's reply to the review"),
            replied_at=now,
        )
        mentor_rating_refresh(mentor_id=profile.pk)

        material = Material(
            booking=completed,
            uploaded_by=owner,
            original_name=f"{side.marker(PRV, 'material file name')}.txt",
            content_type="text/plain",
            size=64,
        )
        material.file.save(
            "notes.txt", _file("notes.txt", side.marker(PRV, "material file content").encode()), save=False
        )
        material.save()
        side.objects["material"] = material
        side.media_paths["material"] = material.file.name

        for key, booking in (("completed", completed), ("confirmed", confirmed)):
            side.objects[f"chat_{key}"] = ChatMessage.objects.create(
                booking=booking, author=owner, body=side.marker(PRV, f"chat line in the {key} booking's room")
            )
        for user in (owner, mentor):
            Attendance.objects.create(
                booking=completed, user=user, joined_at=completed.starts_at, left_at=completed.ends_at
            )

        group = GroupSession.objects.create(
            mentor=profile,
            title=side.marker(PUB, "group session title"),
            description=side.marker(PUB, "group session description"),
            starts_at=now + timedelta(minutes=5),
            ends_at=now + timedelta(minutes=65),
            capacity=10,
            price_minor=0,
            currency="GBP",
        )
        side.objects["group"] = group
        side.objects["enrollment"] = Enrollment.objects.create(
            group_session=group, learner=owner, status=Enrollment.Status.ENROLLED
        )
        side.objects["chat_group"] = ChatMessage.objects.create(
            group_session=group, author=owner, body=side.marker(PRV, "chat line in the group room")
        )

        notification = Notification.objects.create(
            recipient=owner,
            event="booking_confirmed",
            title=side.marker(PRV, "notification title"),
            body=side.marker(PRV, "notification body"),
            url=f"/sessions/{confirmed.pk}/",
        )
        side.objects["notification"] = notification
        side.objects["delivery"] = Delivery.objects.create(
            notification=notification,
            channel="email",
            status=Delivery.Status.SENT,
            to=owner.email,
            provider_id=side.marker(PRV, "delivery provider id"),
        )
        side.objects["preference"] = Preference.objects.create(
            user=owner, event="booking_confirmed", sms=True
        )
        side.objects["institution_default"] = InstitutionDefault.objects.create(event="review_requested")
        side.objects["sms_settings"] = SmsSettings.objects.create(
            use_own_account=True,
            account_sid=side.marker(PRV, "twilio account sid"),
            auth_token=side.marker(PRV, "twilio auth token"),
            from_number="+447700900999",
        )
        side.objects["live_settings"] = LiveRoomSettings.objects.create(
            # Every signed-in member gets the STUN servers (to join a room): not a secret, unlike TURN's.
            stun_urls=[f"stun:{side.marker(PUB, 'stun host')}.example:3478"],
            turn_secret=side.marker(PRV, "turn secret"),
        )

        side.objects["audit_entry"] = AuditEntry.objects.create(
            actor=admin,
            actor_label=side.marker(PRV, "audit actor label"),
            action="member.role_changed",
            target=side.marker(PRV, "audit target"),
            changes={"role": ["learner", side.marker(PRV, "audit change")]},
        )
        side.objects["member_import"] = MemberImport.objects.create(
            created_by=admin,
            file_name=f"{side.marker(PRV, 'import file name')}.csv",
            content=f"email,name\n{side.marker(PRV, 'import row')}@example.org,Someone\n",
            status=MemberImport.Status.DONE,
            total_rows=1,
            processed_rows=1,
            errors=[{"row": 2, "email": "x@example.org", "message": side.marker(PRV, "import error")}],
            finished_at=now,
        )
        side.objects["invitation"] = Invitation.objects.create(
            email="invitee@iso.example",
            token=side.marker(PRV, "invitation token"),
            invited_by=admin,
            expires_at=now + timedelta(days=7),
        )
        for kind, person, what in (
            (DataExport.Kind.PERSONAL, owner, "owner's personal data export file"),
            (DataExport.Kind.INSTITUTION, admin, "institution export file"),
        ):
            stored = default_storage.save(
                f"exports/{uuid.uuid4().hex}.zip", _file("x.zip", side.marker(PRV, what).encode())
            )
            side.objects[f"export_{kind}"] = DataExport.objects.create(
                kind=kind,
                requested_by=person,
                status=DataExport.Status.READY,
                file_name=stored,
                size=64,
                finished_at=now,
                expires_at=now + timedelta(days=7),
            )
            side.media_paths[f"export_{kind}"] = stored
        side.objects["auth_group"] = Group.objects.create(name=side.marker(PRV, "auth group name"))
        feed = CalendarFeed.objects.create(user=owner, token=side.marker(PRV, "calendar feed token"))
        side.objects["calendar_feed"] = feed
        side.secrets["calendar_token"] = feed.token
        token = Token.objects.create(user=owner, key=(side.marker(PRV, "owner's API token") + "0" * 40)[:40])
        side.objects["token"] = token
        side.secrets["owner_api_token"] = token.key
        admin_token = Token.objects.create(
            user=admin, key=(side.marker(PRV, "admin's API token") + "1" * 40)[:40]
        )
        side.secrets["admin_api_token"] = admin_token.key
        side.secrets["verify_token"] = email_verification_token(user=owner)
        side.secrets["owner_uidb64"] = urlsafe_base64_encode(force_bytes(owner.pk))
        side.secrets["owner_reset_token"] = default_token_generator.make_token(owner)
        side.secrets["owner_welcome_token"] = welcome_tokens.make_token(owner)
        side.objects["content_type_booking"] = ContentType.objects.get_for_model(Booking)
        reminders_schedule(
            subject="booking", object_id=confirmed.pk, starts_at=confirmed.starts_at + timedelta(days=2)
        )

    # Public rows of the institution: its logo (under its media prefix) and a domain of its own.
    with tenant_context(institution):
        institution.logo.save(
            "logo.png", _file("logo.png", b"\x89PNG" + side.marker(PUB, "logo file").encode()), save=False
        )
        side.media_paths["logo"] = institution.logo.name
    with schema_context("public"):
        institution.name = f"{side.marker(PUB, 'institution name')} Institute"
        institution.save(update_fields=["name", "logo"])
        side.objects["domain"] = Domain.objects.create(
            domain=f"{side.marker(PRV, 'custom domain')}.example",
            tenant=institution,
            is_primary=False,
            verification_token=secrets.token_hex(16),
        )
    directory.invalidate()
    connection.set_schema_to_public()


def build_world() -> World:
    """Institutions A and B, committed; `destroy_world` removes them."""
    sides: list[Side] = []
    try:
        for label in ("a", "b"):
            provisioning = institution_provision(signup=signup_for(f"iso{label}{uuid.uuid4().hex[:6]}"))
            side = Side(label=label, institution=provisioning.institution)
            sides.append(side)
            _build_side(side, provisioning.login_token)
        world = World(*sides)
        check_ids_collide(world)
        for side in sides:  # made now, so that they are committed
            for user_key in side.users:
                side.session_cookie(user_key)
                side.own_rows(user_key)
            side.rebaseline()
    except BaseException:
        _drop(sides)
        raise
    return world


def destroy_world(world: World) -> None:
    _drop([world.a, world.b])


def _drop(sides: list[Side]) -> None:
    connection.set_schema_to_public()
    for side in sides:
        with schema_context("public"):
            DueReminder.objects.filter(schema_name=side.schema).delete()
        drop_institution(side.institution)
        shutil.rmtree(Path(settings.MEDIA_ROOT) / side.schema, ignore_errors=True)
    directory.invalidate()


def check_ids_collide(world: World) -> None:
    """B's objects have A's primary keys: an attacker on B's host asks for A's ids and gets B's."""
    different = {
        name: (obj.pk, world.b.objects[name].pk)
        for name, obj in world.a.objects.items()
        if isinstance(obj.pk, int) and name != "domain" and obj.pk != world.b.objects[name].pk
    }
    different |= {
        name: (user.pk, world.b.users[name].pk)
        for name, user in world.a.users.items()
        if user.pk != world.b.users[name].pk
    }
    assert not different, f"A's and B's ids differ: {different}"


# --- Reading responses --------------------------------------------------------------------------


def response_text(response) -> str:
    """Everything a response carries, as lower-case text: headers, body, and a ZIP's members."""
    body = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    parts = [f"{name}: {value}" for name, value in response.items()]
    if body.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            for name in archive.namelist():
                parts.append(name)
                parts.append(archive.read(name).decode("latin-1"))
    else:
        # iCalendar folds long lines ("\r\n " continues the line).
        parts.append(body.replace(b"\r\n ", b"").replace(b"\r\n\t", b"").decode("latin-1"))
    return "\n".join(parts).lower()


def world_object_for_model(side: Side, label: str):
    """One of the side's objects of the model `app_label.model_name`, or None."""
    model = apps.get_model(label)
    concrete = model._meta.concrete_model
    if concrete is User:
        return side.users["owner"]
    for name in sorted(side.objects):
        if isinstance(side.objects[name], concrete):
            return side.objects[name]
    return None
