"""People of one institution (or, in the public schema, platform staff)."""

import uuid

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone as dj_timezone

from tenants.validators import validate_timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        fields.setdefault("role", User.Role.ADMIN)
        return self.create_user(email, password, **fields)


def avatar_path(user: "User", filename: str) -> str:
    # A fresh name per upload: a cached old avatar never shows in place of the new one.
    return f"avatars/{uuid.uuid4().hex}.jpg"


class User(AbstractBaseUser, PermissionsMixin):
    class Role(models.TextChoices):
        LEARNER = "learner", "Learner"
        MENTOR = "mentor", "Mentor"
        ADMIN = "admin", "Institution admin"

    class MentorStatus(models.TextChoices):
        NONE = "", "Not a mentor"
        PENDING = "pending", "Application pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.LEARNER)
    mentor_status = models.CharField(
        max_length=10, choices=MentorStatus.choices, default=MentorStatus.NONE, blank=True
    )
    mentor_application = models.TextField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    avatar = models.ImageField(upload_to=avatar_path, blank=True)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # A mobile number in E.164 (+ and up to 15 digits), and the person's consent to text messages.
    phone = models.CharField(max_length=16, blank=True, db_index=True)
    sms_opt_in = models.BooleanField(default=False)

    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=dj_timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        ordering = ["full_name", "email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    @property
    def is_tenant_admin(self) -> bool:
        return self.is_active and self.role == self.Role.ADMIN

    @property
    def can_receive_sms(self) -> bool:
        """Opted in, with a number to send to."""
        return self.sms_opt_in and bool(self.phone)

    @property
    def is_mentor(self) -> bool:
        return self.role == self.Role.MENTOR and self.mentor_status == self.MentorStatus.APPROVED

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def avatar_url(self) -> str:
        return self.avatar.url if self.avatar else ""

    @property
    def initials(self) -> str:
        parts = [p for p in self.full_name.split() if p]
        return "".join(p[0] for p in parts[:2]).upper() or self.email[:1].upper()


class Invitation(models.Model):
    """An invitation to join the institution with a role; the way in under an invite-only policy."""

    email = models.EmailField()
    role = models.CharField(max_length=10, choices=User.Role.choices, default=User.Role.LEARNER)
    token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.get_role_display()})"

    @property
    def is_usable(self) -> bool:
        return self.accepted_at is None and self.expires_at > dj_timezone.now()


class LoginLink(models.Model):
    """A single-use, short-lived sign-in, e.g. handing a new admin from the platform host to theirs."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"Sign-in link for {self.user_id}"
