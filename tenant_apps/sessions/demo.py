"""Demo mentoring data for `make run`: profiles, weekly hours, past and future sessions, a group."""

import random
from datetime import datetime, time, timedelta

from django.utils import timezone

from tenant_apps.accounts.models import User

from .bookings import blocked_range
from .models import Booking, BookingTransition, GroupSession, MentorProfile, Review, WeeklyAvailability
from .search import mentor_search_refresh
from .slots import mentor_next_free_slot_refresh, mentor_slots

PROFILES = {
    "ada@northwind.edu": {
        "headline": "Data engineering and analytics pipelines",
        "bio": "Fifteen years building data platforms. I help with SQL, Python, dbt and getting "
        "your first data job.\nHappy to review portfolios.",
        "expertise": ["python", "sql", "data engineering", "careers"],
        "languages": ["English", "French"],
        "years_experience": 15,
        "session_lengths": [30, 60],
        "price_minor": 0,
        "hours": [(0, 9, 12), (2, 13, 17), (4, 9, 12)],
    },
    "alan@northwind.edu": {
        "headline": "Algorithms, theory of computation, interview preparation",
        "bio": "Lecturer in computer science. Bring your proofs, puzzles and interview questions.",
        "expertise": ["algorithms", "mathematics", "interviews"],
        "languages": ["English", "German"],
        "years_experience": 20,
        "session_lengths": [45, 60],
        "price_minor": 2500,
        "requires_approval": True,
        "hours": [(1, 10, 16), (3, 10, 16)],
    },
    "grace@lambda.dev": {
        "headline": "Compilers, debugging and shipping your first project",
        "bio": "I have mentored hundreds of bootcamp graduates. Let's get your project over the line.",
        "expertise": ["javascript", "debugging", "compilers", "careers"],
        "languages": ["English", "Spanish"],
        "years_experience": 25,
        "session_lengths": [30, 45],
        "price_minor": 0,
        "hours": [(0, 8, 18), (1, 8, 18), (2, 8, 18), (3, 8, 18), (4, 8, 14)],
    },
    "linus@lambda.dev": {
        "headline": "Systems programming, Linux and Git",
        "bio": "Kernel hacker. Ask me about C, Rust, Git internals and code review.",
        "expertise": ["c", "rust", "git", "linux"],
        "languages": ["English", "Swedish", "Finnish"],
        "years_experience": 12,
        "session_lengths": [30, 60],
        "price_minor": 4000,
        "hours": [(1, 16, 20), (3, 16, 20), (5, 10, 13)],
    },
}


def seed_mentoring() -> None:
    """Idempotent: mentors that already have a profile are left as they are."""
    rng = random.Random(7)  # noqa: S311 (demo data, not secrets)
    learners = list(User.objects.filter(role=User.Role.LEARNER, is_active=True))
    for email, spec in PROFILES.items():
        user = User.objects.filter(email=email).first()
        if user is None or MentorProfile.objects.filter(user=user).exists():
            continue
        spec = dict(spec)
        hours = spec.pop("hours")
        profile = MentorProfile.objects.create(user=user, minimum_notice_minutes=60, **spec)
        WeeklyAvailability.objects.bulk_create(
            WeeklyAvailability(mentor=profile, weekday=day, start_time=time(start), end_time=time(end))
            for day, start, end in hours
        )
        mentor_search_refresh(mentor_id=profile.pk)
        _sessions(profile, learners, rng)
        mentor_next_free_slot_refresh(mentor_id=profile.pk)


def _add(profile: MentorProfile, learner: User, starts_at: datetime, minutes: int, status: str) -> Booking:
    ends_at = starts_at + timedelta(minutes=minutes)
    booking = Booking.objects.create(
        mentor=profile,
        learner=learner,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked=blocked_range(mentor=profile, starts_at=starts_at, ends_at=ends_at),
        status=status,
        price_minor=profile.price_minor,
        currency=_currency(),
        topic="Portfolio review" if status == "completed" else "Next steps",
    )
    BookingTransition.objects.create(booking=booking, from_status="", to_status=status, actor=learner)
    return booking


def _currency() -> str:
    from django.db import connection

    return connection.tenant.currency


def _sessions(profile: MentorProfile, learners: list[User], rng: random.Random) -> None:
    if not learners:
        return
    minutes = profile.session_lengths[0]
    now = timezone.now()
    # Two past sessions (one reviewed) and two upcoming ones in free slots.
    for weeks_ago in (1, 2):
        starts_at = (now - timedelta(weeks=weeks_ago)).replace(minute=0, second=0, microsecond=0)
        booking = _add(profile, rng.choice(learners), starts_at, minutes, Booking.Status.COMPLETED)
        if weeks_ago == 2:
            Review.objects.create(booking=booking, rating=5, comment="Clear, kind and practical. Thank you!")
            profile.rating_average, profile.rating_count = 5, 1
            profile.save(update_fields=["rating_average", "rating_count"])
    upcoming = mentor_slots(mentor=profile, minutes=minutes)
    for slot in upcoming[3:4] + upcoming[12:13]:
        _add(profile, rng.choice(learners), slot.starts_at, minutes, Booking.Status.CONFIRMED)
    if profile.price_minor == 0 and upcoming:
        start = upcoming[-1].starts_at
        GroupSession.objects.get_or_create(
            mentor=profile,
            title=f"Open office hours with {profile.user.get_short_name()}",
            defaults={
                "description": "Bring a question; everyone learns from everyone's.",
                "starts_at": start,
                "ends_at": start + timedelta(minutes=60),
                "capacity": 8,
                "currency": _currency(),
            },
        )
