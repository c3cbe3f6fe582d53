"""Reading people of the current institution."""

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet

from .models import User

MEMBERS_PER_PAGE = 25


def member_queryset(*, role: str = "", query: str = "") -> QuerySet[User]:
    members = User.objects.all().order_by("full_name", "email")
    if role in User.Role.values:
        members = members.filter(role=role)
    if query:
        members = members.filter(Q(full_name__icontains=query) | Q(email__icontains=query))
    return members


def member_page(*, role: str = "", query: str = "", page_number: str | int | None = None) -> Page:
    return Paginator(member_queryset(role=role, query=query), MEMBERS_PER_PAGE).get_page(page_number)


def pending_mentor_applications() -> QuerySet[User]:
    return User.objects.filter(mentor_status=User.MentorStatus.PENDING).order_by("date_joined")


def member_counts() -> dict[str, int]:
    return User.objects.aggregate(
        learners=Count("pk", filter=Q(role=User.Role.LEARNER, is_active=True)),
        mentors=Count("pk", filter=Q(role=User.Role.MENTOR, mentor_status=User.MentorStatus.APPROVED)),
        pending=Count("pk", filter=Q(mentor_status=User.MentorStatus.PENDING)),
        admins=Count("pk", filter=Q(role=User.Role.ADMIN, is_active=True)),
    )
