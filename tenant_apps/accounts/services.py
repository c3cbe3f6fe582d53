"""Everything that changes people's accounts in an institution."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from shared.core.errors import ApplicationError
from shared.platform_billing.limits import require_room
from shared.platform_billing.models import Limit
from tenant_apps.admin_console.audit import audit_record
from tenants.models import Institution

from .avatars import avatar_from_upload
from .models import Invitation, LoginLink, User

EMAIL_VERIFICATION_SALT = "accounts.email-verification"


# --- Sign-up ----------------------------------------------------------------------------------


def signup_refusal(*, institution: Institution, email: str) -> str | None:
    """Why `email` may not sign up on its own under the institution's policy (None: it may)."""
    policy = institution.signup_policy
    if policy == Institution.SignupPolicy.INVITE_ONLY:
        return f"{institution.name} is invitation only. Ask an administrator to invite you."
    if policy == Institution.SignupPolicy.EMAIL_DOMAINS:
        domain = email.rsplit("@", 1)[-1].lower()
        allowed = [d.lower().lstrip("@") for d in institution.signup_email_domains]
        if domain not in allowed:
            listed = ", ".join(f"@{d}" for d in allowed) or "(none configured)"
            return f"Sign-up at {institution.name} is open to addresses ending in {listed} only."
    return None


def _password_errors(*, password: str, user: User) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0], fields={"password": exc.messages}) from None


@transaction.atomic
def user_signup(
    *,
    institution: Institution,
    email: str,
    full_name: str,
    password: str,
    timezone_name: str = "UTC",
    mentor_application: str | None = None,
    invitation: Invitation | None = None,
) -> User:
    """A learner (or, with `mentor_application`, a mentor applicant) joins the institution."""
    email = User.objects.normalize_email(email).strip().lower()
    if invitation is not None:
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if not invitation.is_usable:
            raise ApplicationError("This invitation has expired or was already used.")
        if invitation.email.lower() != email:
            raise ApplicationError(
                "Please sign up with the address the invitation was sent to.",
                fields={"email": [f"The invitation is for {invitation.email}."]},
            )
    else:
        refusal = signup_refusal(institution=institution, email=email)
        if refusal:
            raise ApplicationError(refusal, code="signup_not_allowed", fields={"email": [refusal]})
    if User.objects.filter(email__iexact=email).exists():
        message = "An account with this email already exists. Sign in or reset your password."
        raise ApplicationError(message, code="email_taken", fields={"email": [message]})

    user = User(email=email, full_name=full_name.strip(), timezone=timezone_name)
    if invitation is not None:
        user.role = invitation.role
        user.email_verified_at = timezone.now()  # the invitation reached this address
        if invitation.role == User.Role.MENTOR:
            user.mentor_status = User.MentorStatus.APPROVED
        if invitation.role == User.Role.ADMIN:
            user.is_staff = user.is_superuser = True
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
    elif mentor_application is not None:
        user.role = User.Role.MENTOR
        user.mentor_status = User.MentorStatus.PENDING
        user.mentor_application = mentor_application.strip()
    _password_errors(password=password, user=user)
    if user.role == User.Role.LEARNER:
        require_room(Limit.ACTIVE_LEARNERS, institution=institution)
    elif user.role == User.Role.MENTOR and user.mentor_status == User.MentorStatus.APPROVED:
        require_room(Limit.ACTIVE_MENTORS, institution=institution)
    user.set_password(password)
    user.full_clean()
    user.save()
    if not user.email_verified:
        transaction.on_commit(lambda: email_verification_send(user=user, institution=institution))
    return user


@transaction.atomic
def mentor_apply(*, user: User, application: str) -> User:
    """A signed-in learner asks to become a mentor; an institution admin decides."""
    if user.role == User.Role.ADMIN:
        raise ApplicationError("Administrators cannot apply to be mentors.")
    if user.mentor_status in (User.MentorStatus.PENDING, User.MentorStatus.APPROVED):
        raise ApplicationError("You have already applied to be a mentor.")
    user.role = User.Role.MENTOR
    user.mentor_status = User.MentorStatus.PENDING
    user.mentor_application = application.strip()
    user.save(update_fields=["role", "mentor_status", "mentor_application"])
    return user


# --- Email verification -----------------------------------------------------------------------


def _site_url(institution: Institution, view_name: str, *args: str, query: str = "") -> str:
    """An absolute link to a page of the institution's site, whichever host is asking."""
    path = reverse(view_name, args=args, urlconf=settings.ROOT_URLCONF) + query
    domain = institution.get_primary_domain()
    host = domain.domain if domain else settings.PLATFORM_DOMAIN
    return f"{settings.SITE_SCHEME}://{host}{settings.SITE_PORT_SUFFIX}{path}"


def email_verification_token(*, user: User) -> str:
    # The schema is signed in too: ids and emails repeat across institutions (one person, two
    # accounts), and a link one institution sent must verify nothing in another.
    payload = {"user": user.pk, "email": user.email, "schema": connection.schema_name}
    return signing.dumps(payload, salt=EMAIL_VERIFICATION_SALT)


def email_verification_send(*, user: User, institution: Institution) -> None:
    token = email_verification_token(user=user)
    url = _site_url(institution, "accounts:verify_email", token)
    context = {"user": user, "institution": institution, "url": url}
    send_mail(
        subject=f"Confirm your email for {institution.name}",
        message=render_to_string("accounts/email/verify_email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )


def email_verify(*, token: str) -> User:
    try:
        data = signing.loads(token, salt=EMAIL_VERIFICATION_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE)
    except signing.SignatureExpired:
        raise ApplicationError("This confirmation link has expired. Request a new one.") from None
    except signing.BadSignature:
        raise ApplicationError("This confirmation link is not valid.") from None
    user = User.objects.filter(pk=data.get("user"), email=data.get("email")).first()
    if user is None or data.get("schema") != connection.schema_name:
        raise ApplicationError("This confirmation link is not valid.")
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
    return user


# --- Single-use login links -------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login_link_create(*, user: User) -> str:
    """A token that signs `user` in once, within LOGIN_LINK_MAX_AGE seconds."""
    now = timezone.now()
    # Expired links are removed as new ones are made: the table stays tiny.
    LoginLink.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()
    token = secrets.token_urlsafe(32)
    LoginLink.objects.create(
        token_hash=_token_hash(token),
        user=user,
        expires_at=now + timedelta(seconds=settings.LOGIN_LINK_MAX_AGE),
    )
    return token


def login_link_consume(*, token: str) -> User:
    """The user a login link signs in; the link is spent. Raises if unknown, used or expired."""
    now = timezone.now()
    link = (
        LoginLink.objects.select_related("user")
        .filter(token_hash=_token_hash(token), used_at__isnull=True, expires_at__gt=now)
        .first()
    )
    # The conditional update is what makes the link single-use under concurrent clicks.
    if link is None or not LoginLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=now):
        raise ApplicationError(
            "This sign-in link has expired or was already used. Please sign in with your password.",
            code="login_link_invalid",
        )
    if not link.user.is_active:
        raise ApplicationError("This account is deactivated.", code="login_link_invalid")
    return link.user


# --- Passwords and API tokens ------------------------------------------------------------------


@transaction.atomic
def password_changed(*, user: User, via: str) -> None:
    """After a new password is set (a reset link, a welcome link): API tokens made with the old one
    stop working, and the change is in the audit log."""
    revoked, _ = Token.objects.filter(user=user).delete()
    changes: dict = {"via": [None, via]}
    if revoked:
        changes["api_token"] = ["active", "revoked"]
    audit_record(actor=user, action="auth.password_changed", target=user.email, changes=changes)


@transaction.atomic
def api_token_issue(*, user: User) -> tuple[Token, bool]:
    """The user's API token, made on first use (one token per person); (token, whether it is new)."""
    token, created = Token.objects.get_or_create(user=user)
    if created:
        audit_record(actor=user, action="auth.token_created", target=user.email)
    return token, created


@transaction.atomic
def api_token_revoke(*, user: User) -> bool:
    """Delete the user's API token (signing every API client of theirs out); False if they had none."""
    revoked, _ = Token.objects.filter(user=user).delete()
    if revoked:
        audit_record(actor=user, action="auth.token_revoked", target=user.email)
    return bool(revoked)


# --- Profile ----------------------------------------------------------------------------------


@transaction.atomic
def profile_update(
    *,
    user: User,
    full_name: str | None = None,
    timezone_name: str | None = None,
    avatar: UploadedFile | None = None,
    remove_avatar: bool = False,
) -> User:
    fields: list[str] = []
    if full_name is not None:
        user.full_name = full_name.strip()
        fields.append("full_name")
    if timezone_name is not None:
        user.timezone = timezone_name
        fields.append("timezone")
    old_avatar = user.avatar.name if user.avatar else ""
    if avatar is not None:
        user.avatar.save("avatar.jpg", avatar_from_upload(avatar), save=False)
        fields.append("avatar")
    elif remove_avatar and old_avatar:
        user.avatar = ""
        fields.append("avatar")
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        if "avatar" in fields and user.avatar:
            user.avatar.storage.delete(user.avatar.name)
        raise ApplicationError("Please correct the errors below.", fields=exc.message_dict) from None
    user.save(update_fields=fields)
    if old_avatar and "avatar" in fields:
        storage = user.avatar.storage
        transaction.on_commit(lambda: storage.delete(old_avatar))
    return user


# --- Members (institution admins) -------------------------------------------------------------


def _require_admin(actor: User) -> None:
    if not actor.is_tenant_admin:
        raise ApplicationError("Only institution administrators can do this.", status=403)


@transaction.atomic
def mentor_decide(*, actor: User, member: User, approve: bool) -> User:
    _require_admin(actor)
    member = User.objects.select_for_update().get(pk=member.pk)
    if member.mentor_status != User.MentorStatus.PENDING:
        raise ApplicationError(f"{member} has no pending mentor application.")
    if approve and member.is_active:
        require_room(Limit.ACTIVE_MENTORS)
    before = {"role": member.role, "mentor_status": member.mentor_status}
    member.mentor_status = User.MentorStatus.APPROVED if approve else User.MentorStatus.REJECTED
    if not approve:
        member.role = User.Role.LEARNER
    member.save(update_fields=["mentor_status", "role"])
    audit_record(
        actor=actor,
        action="mentor.approved" if approve else "mentor.rejected",
        target=member.email,
        changes={
            "role": [before["role"], member.role],
            "mentor_status": [before["mentor_status"], member.mentor_status],
        },
    )
    if approve:
        from tenant_apps.notifications.events import mentor_approved

        mentor_approved(user=member)
    return member


@transaction.atomic
def member_role_change(*, actor: User, member: User, role: str) -> User:
    _require_admin(actor)
    if role not in User.Role.values:
        raise ApplicationError(
            "Choose learner, mentor or institution admin.", fields={"role": ["Unknown role."]}
        )
    member = User.objects.select_for_update().get(pk=member.pk)
    role_before = member.role
    other_admins = User.objects.filter(role=User.Role.ADMIN, is_active=True).exclude(pk=actor.pk)
    if member.pk == actor.pk and role != User.Role.ADMIN and not other_admins.exists():
        raise ApplicationError("You are the only administrator; make someone else one first.")
    if member.is_active and role != member.role:
        if role == User.Role.MENTOR:
            require_room(Limit.ACTIVE_MENTORS)
        elif role == User.Role.LEARNER:
            require_room(Limit.ACTIVE_LEARNERS)
    member.role = role
    member.is_staff = member.is_superuser = role == User.Role.ADMIN
    if role == User.Role.MENTOR:
        member.mentor_status = User.MentorStatus.APPROVED
    elif member.mentor_status == User.MentorStatus.PENDING:
        member.mentor_status = User.MentorStatus.NONE
    member.save(update_fields=["role", "is_staff", "is_superuser", "mentor_status"])
    if role != role_before:
        audit_record(
            actor=actor,
            action="member.role_changed",
            target=member.email,
            changes={"role": [role_before, role]},
        )
    return member


def _active_admins_locked() -> list[User]:
    """The active administrators, locked until the transaction ends: two admins removing each
    other at the same moment take turns, so the institution always keeps one."""
    return list(User.objects.select_for_update().filter(role=User.Role.ADMIN, is_active=True).order_by("pk"))


@transaction.atomic
def member_deactivate(*, actor: User, member: User) -> User:
    """The member can no longer sign in (sessions and API tokens stop working); nothing is deleted."""
    _require_admin(actor)
    admins = _active_admins_locked()
    if actor.pk not in {admin.pk for admin in admins}:
        raise ApplicationError("Only institution administrators can do this.", status=403)
    member = User.objects.select_for_update().get(pk=member.pk)
    if member.pk == actor.pk:
        raise ApplicationError("You cannot deactivate your own account.")
    if not member.is_active:
        raise ApplicationError(f"{member} is already deactivated.")
    if member.role == User.Role.ADMIN and not [admin for admin in admins if admin.pk != member.pk]:
        raise ApplicationError(f"{member} is the last administrator; make someone else one first.")
    member.is_active = False
    member.save(update_fields=["is_active"])
    audit_record(
        actor=actor, action="member.deactivated", target=member.email, changes={"active": [True, False]}
    )
    return member


@transaction.atomic
def member_reactivate(*, actor: User, member: User) -> User:
    """A deactivated member may sign in again, if the plan has room for them."""
    _require_admin(actor)
    member = User.objects.select_for_update().get(pk=member.pk)
    if member.is_active:
        raise ApplicationError(f"{member} is already active.")
    if member.role == User.Role.LEARNER:
        require_room(Limit.ACTIVE_LEARNERS)
    elif member.is_mentor:
        require_room(Limit.ACTIVE_MENTORS)
    member.is_active = True
    member.save(update_fields=["is_active"])
    audit_record(
        actor=actor, action="member.reactivated", target=member.email, changes={"active": [False, True]}
    )
    return member


@transaction.atomic
def invitation_create(*, actor: User, institution: Institution, email: str, role: str) -> Invitation:
    _require_admin(actor)
    email = User.objects.normalize_email(email).strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        message = "This person already has an account."
        raise ApplicationError(message, fields={"email": [message]})
    invitation = Invitation(
        email=email,
        role=role,
        token=secrets.token_urlsafe(32),
        invited_by=actor,
        expires_at=timezone.now() + timedelta(days=14),
    )
    invitation.full_clean()
    invitation.save()
    audit_record(actor=actor, action="member.invited", target=email, changes={"role": [None, role]})
    url = _site_url(institution, "accounts:signup", query=f"?invitation={invitation.token}")
    context = {"invitation": invitation, "institution": institution, "url": url}
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You are invited to {institution.name}",
            message=render_to_string("accounts/email/invitation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[email],
        )
    )
    return invitation
