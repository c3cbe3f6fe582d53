"""Mentors, their availability, bookings (with their history), group sessions, materials, reviews."""

import secrets
import uuid

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import (
    ArrayField,
    BigIntegerRangeField,
    DateTimeRangeField,
    RangeOperators,
)
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from shared.core.fields import EncryptedTextField

SESSION_LENGTH_CHOICES = (15, 30, 45, 60, 90, 120)


class MentorProfile(models.Model):
    """What learners see of a mentor, and the rules of the mentor's calendar."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentor_profile"
    )
    headline = models.CharField(max_length=160, blank=True)
    bio = models.TextField(blank=True, max_length=5000)
    expertise = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    languages = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    years_experience = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(80)])
    session_lengths = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    # In the institution's currency, minor units; 0 = free.
    price_minor = models.PositiveIntegerField(default=0)
    requires_approval = models.BooleanField(
        default=False, help_text="Requests wait for the mentor's approval before they are confirmed."
    )

    # Calendar rules. Weekly hours are in the mentor's own time zone (the user's).
    buffer_before_minutes = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(240)])
    buffer_after_minutes = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(240)])
    minimum_notice_minutes = models.PositiveIntegerField(
        default=12 * 60, validators=[MaxValueValidator(60 * 24 * 30)]
    )
    booking_horizon_days = models.PositiveSmallIntegerField(
        default=56, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    max_sessions_per_day = models.PositiveSmallIntegerField(
        default=6, validators=[MinValueValidator(1), MaxValueValidator(48)]
    )

    # Kept up to date by services, read by the directory.
    search_document = SearchVectorField(null=True, editable=False)
    rating_average = models.DecimalField(
        max_digits=3, decimal_places=2, null=True, blank=True, editable=False
    )
    rating_count = models.PositiveIntegerField(default=0, editable=False)
    next_free_slot_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_free_slot_checked_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            GinIndex(fields=["search_document"], name="mentor_search_idx"),
            GinIndex(fields=["expertise"], name="mentor_expertise_idx"),
            GinIndex(fields=["languages"], name="mentor_languages_idx"),
        ]

    def __str__(self) -> str:
        return str(self.user)

    @property
    def timezone(self) -> str:
        return self.user.timezone


class WeeklyAvailability(models.Model):
    """A recurring window, e.g. Mondays 09:00–12:00 in the mentor's time zone."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    mentor = models.ForeignKey(MentorProfile, on_delete=models.CASCADE, related_name="weekly_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()

    class Meta:
        ordering = ["weekday", "start_time"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_time__gt=models.F("start_time")), name="weekly_hours_end_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}–{self.end_time:%H:%M}"


class AvailabilityOverride(models.Model):
    """A date that differs from the week: extra hours, or a day off."""

    class Kind(models.TextChoices):
        EXTRA = "extra", "Extra hours"
        OFF = "off", "Day off"

    mentor = models.ForeignKey(MentorProfile, on_delete=models.CASCADE, related_name="overrides")
    date = models.DateField()
    kind = models.CharField(max_length=5, choices=Kind.choices)
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)

    class Meta:
        ordering = ["date", "start_time"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="off") | Q(start_time__isnull=False, end_time__gt=models.F("start_time")),
                name="override_extra_has_hours",
            )
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.get_kind_display()}"


class MentorPoint(models.Func):
    """`int8range(mentor_id, mentor_id, '[]')`: a mentor as a range, for the exclusion constraint."""

    function = "int8range"
    template = "%(function)s(%(expressions)s, '[]')"
    output_field = BigIntegerRangeField()

    def __init__(self) -> None:
        super().__init__(models.F("mentor"), models.F("mentor"))


class Booking(models.Model):
    """A 1:1 session between a learner and a mentor; its status changes only in lifecycle.py."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        HELD = "held", "Held for payment"
        CONFIRMED = "confirmed", "Confirmed"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"
        RESCHEDULED = "rescheduled", "Rescheduled"
        COMPLETED = "completed", "Completed"
        NO_SHOW = "no_show", "No-show"

    # Statuses that occupy the mentor's time (the exclusion constraint covers these).
    LIVE_STATUSES = (Status.REQUESTED, Status.HELD, Status.CONFIRMED)

    mentor = models.ForeignKey(MentorProfile, on_delete=models.PROTECT, related_name="bookings")
    learner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    # The session plus the mentor's buffers: what no other live booking may overlap.
    blocked = DateTimeRangeField()
    status = models.CharField(max_length=12, choices=Status.choices, db_index=True)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    price_minor = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    # One of the learner's free sessions of the pricing policy: the mentor's price, not charged.
    free_allowance = models.BooleanField(default=False)
    # The learner confirmed a session the mentor marked completed (releases the mentor's earning
    # when the live room's attendance did not already show both).
    learner_confirmed_at = models.DateTimeField(null=True, blank=True)
    topic = models.CharField(max_length=200, blank=True)
    cancel_reason = models.TextField(blank=True, max_length=1000)
    rescheduled_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rescheduled_to"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["starts_at"]
        indexes = [
            models.Index(fields=["mentor", "starts_at"]),
            models.Index(fields=["learner", "starts_at"]),
            models.Index(fields=["status", "hold_expires_at"]),
        ]
        constraints = [
            # "Same mentor" is written as overlapping one-point ranges, which GiST indexes natively:
            # no btree_gist extension needed (the embedded Postgres of `make run` has no contrib).
            ExclusionConstraint(
                name="booking_no_double_booking",
                expressions=[(MentorPoint(), RangeOperators.OVERLAPS), ("blocked", RangeOperators.OVERLAPS)],
                condition=Q(status__in=["requested", "held", "confirmed"]),
                violation_error_message="The mentor is already booked at that time.",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="booking_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.learner} with {self.mentor} at {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    def is_participant(self, user) -> bool:
        return user.is_authenticated and user.pk in (self.learner_id, self.mentor.user_id)


class BookingTransition(models.Model):
    """Every change of a booking's status: who, when, from, to."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.booking_id}: {self.from_status or '∅'} → {self.to_status}"


class GroupSession(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"

    mentor = models.ForeignKey(MentorProfile, on_delete=models.PROTECT, related_name="group_sessions")
    title = models.CharField(max_length=160)
    description = models.TextField(blank=True, max_length=5000)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    capacity = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(500)])
    price_minor = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at"]
        # The upcoming sessions, soonest first (the group sessions page and its API).
        indexes = [models.Index(fields=["status", "starts_at"], name="groupsession_status_starts")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="group_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return self.title


class Enrollment(models.Model):
    class Status(models.TextChoices):
        ENROLLED = "enrolled", "Enrolled"
        WAITLISTED = "waitlisted", "On the waitlist"
        CANCELLED = "cancelled", "Cancelled"

    group_session = models.ForeignKey(GroupSession, on_delete=models.CASCADE, related_name="enrollments")
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="enrollments"
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["group_session", "learner"],
                condition=Q(status__in=["enrolled", "waitlisted"]),
                name="one_active_enrollment_per_learner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.learner} in {self.group_session} ({self.status})"


def material_path(material: "Material", filename: str) -> str:
    # Never the uploader's file name on disk: it is kept in `original_name` only.
    return f"materials/{material.booking_id}/{uuid.uuid4().hex}"


class Material(models.Model):
    """A file attached to a booking; downloadable by its participants only."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="materials")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file = models.FileField(upload_to=material_path, max_length=200)
    original_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.original_name


class Review(models.Model):
    booking = models.OneToOneField(Booking, on_delete=models.CASCADE, related_name="review")
    rating = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    comment = models.TextField(blank=True, max_length=2000)
    mentor_reply = models.TextField(blank=True, max_length=2000)
    replied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(rating__gte=1, rating__lte=5), name="review_rating_1_to_5")
        ]

    def __str__(self) -> str:
        return f"{self.rating}★ for booking {self.booking_id}"


def new_feed_token() -> str:
    return secrets.token_urlsafe(24)


class CalendarFeed(models.Model):
    """A private, revocable URL listing a user's sessions for their calendar app."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feed"
    )
    token = models.CharField(max_length=64, unique=True, default=new_feed_token)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Calendar feed of {self.user}"


class LiveRoomSettings(models.Model):
    """The institution's ICE servers for live rooms (one row). TURN uses short-lived credentials
    minted from `turn_secret` (the shared-secret scheme of coturn's `use-auth-secret`)."""

    stun_urls = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    turn_urls = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    turn_secret = EncryptedTextField(blank=True)
    turn_credential_ttl_seconds = models.PositiveIntegerField(
        default=3600, validators=[MinValueValidator(60), MaxValueValidator(24 * 3600)]
    )

    class Meta:
        verbose_name_plural = "live room settings"

    def __str__(self) -> str:
        return "Live room settings"


class ChatMessage(models.Model):
    """A chat line said in a live room; recent ones are replayed to whoever joins."""

    booking = models.ForeignKey(Booking, null=True, blank=True, on_delete=models.CASCADE, related_name="chat")
    group_session = models.ForeignKey(
        GroupSession, null=True, blank=True, on_delete=models.CASCADE, related_name="chat"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(booking__isnull=False, group_session__isnull=True)
                | Q(booking__isnull=True, group_session__isnull=False),
                name="chat_in_exactly_one_room",
            )
        ]

    def __str__(self) -> str:
        return f"{self.author_id}: {self.body[:40]}"


class Attendance(models.Model):
    """One stay of one participant in a live room: when they joined and when they left."""

    booking = models.ForeignKey(
        Booking, null=True, blank=True, on_delete=models.CASCADE, related_name="attendance"
    )
    group_session = models.ForeignKey(
        GroupSession, null=True, blank=True, on_delete=models.CASCADE, related_name="attendance"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "pk"]
        indexes = [models.Index(fields=["booking", "user"]), models.Index(fields=["group_session", "user"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(booking__isnull=False, group_session__isnull=True)
                | Q(booking__isnull=True, group_session__isnull=False),
                name="attendance_in_exactly_one_room",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in room from {self.joined_at:%H:%M}"
