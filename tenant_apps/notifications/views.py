"""The notification centre of an institution's site: a person's notifications, their channel
preferences, and for administrators the institution's defaults and the delivery log.

Included by urls.py under /notifications/ (namespace "notifications").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from tenant_apps.accounts.models import User

from . import services
from .models import BUILT_IN_DEFAULTS, Channel, Delivery, Event, InstitutionDefault, Notification, Preference
from .push import push_to_users

logger = logging.getLogger(__name__)

PAGE_SIZE = 30
LOG_PAGE_SIZE = 50
MAX_IDS = 500  # notifications marked read by one request
# The event pushed to a person's other open pages when they read notifications (the bell's count).
READ_EVENT = "notifications_read"

DELIVERY_BADGES = {
    Delivery.Status.PENDING: "badge badge-yellow",
    Delivery.Status.SENT: "badge badge-green",
    Delivery.Status.DELIVERED: "badge badge-green",
    Delivery.Status.FAILED: "badge badge-red",
    Delivery.Status.SKIPPED: "badge badge-gray",
}


def _require_admin(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only institution administrators can see this page.")


def _wants_json(request: HttpRequest) -> bool:
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def _safe_path(request: HttpRequest, url: str) -> str:
    """`url` when it stays on this site, else ""."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return ""


# --- The notification centre ------------------------------------------------------------------------


def unread_summary(*, user: User) -> dict[str, int]:
    """{"unread": n, "latest": the newest notification's id (0 when none)}, in one query.

    The bell counts the pushes it receives after asking; `latest` tells it which of them the
    answer already included."""
    totals = Notification.objects.filter(recipient=user).aggregate(
        unread=Count("pk", filter=Q(read_at__isnull=True)), latest=Max("pk")
    )
    return {"unread": totals["unread"], "latest": totals["latest"] or 0}


def _announce_read(user: User) -> dict[str, int]:
    """Tell the person's other open pages the new count; a push that cannot go changes nothing here."""
    summary = unread_summary(user=user)
    try:
        push_to_users(user_ids=[user.pk], event=READ_EVENT, payload=summary)
    except Exception as error:  # the channel layer is down: the pages catch up when they reconnect
        logger.warning("could not push the unread count of user %s: %s", user.pk, error)
    return summary


@login_required
@require_safe
def notification_list(request: HttpRequest) -> HttpResponse:
    only_unread = request.GET.get("unread") == "1"
    rows = Notification.objects.filter(recipient=request.user).order_by("-created_at", "-pk")
    if only_unread:
        rows = rows.filter(read_at__isnull=True)
    page = Paginator(
        rows.only("pk", "event", "title", "body", "url", "created_at", "read_at"), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    now = timezone.now()
    for notification in page.object_list:
        notification.ago = _ago(notification.created_at, now)
    context = {
        "page": page,
        "only_unread": only_unread,
        "unread": services.unread_count(user=request.user),
        "section": "list",
    }
    return render(request, "notifications/list.html", context)


def _ago(moment: datetime, now: datetime) -> str:
    """How long ago, in words: "just now", "5 minutes ago", "2 days ago"."""
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, now, depth=1)} ago"


def _ids_from(request: HttpRequest) -> list[int] | None:
    """The `id` values posted (None when there are none); ValueError when one is not a number."""
    values = request.POST.getlist("id")
    if not values:
        return None
    if len(values) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} ids")
    ids = [int(value) for value in values]
    if any(not 0 < value < 2**63 for value in ids):
        raise ValueError("ids are positive 64-bit numbers")
    return ids


@login_required
@require_POST
def mark_read(request: HttpRequest) -> HttpResponse:
    """Mark the posted ids read (all of the person's when none); another person's ids change nothing."""
    try:
        ids = _ids_from(request)
    except ValueError:
        if _wants_json(request):
            return JsonResponse({"error": "The ids must be numbers."}, status=400)
        return HttpResponseBadRequest("The ids must be numbers.")
    changed = services.mark_read(user=request.user, notification_ids=ids)
    summary = _announce_read(request.user) if changed else unread_summary(user=request.user)
    if _wants_json(request):
        return JsonResponse({"unread": summary["unread"], "marked": changed})
    if ids is None and changed:
        messages.success(request, "All your notifications are marked read.")
    back = _safe_path(request, request.POST.get("next", "")) or _safe_path(
        request, request.headers.get("referer", "")
    )
    return redirect(back or reverse("notifications:list"))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def notification_open(request: HttpRequest, pk: int) -> HttpResponse:
    """Follow a notification: it is marked read, then its page opens (the list when it has none)."""
    notification = get_object_or_404(
        Notification.objects.only("pk", "url", "read_at", "recipient_id"), pk=pk, recipient=request.user
    )
    if notification.read_at is None and services.mark_read(
        user=request.user, notification_ids=[notification.pk]
    ):
        _announce_read(request.user)
    return redirect(_safe_path(request, notification.url) or reverse("notifications:list"))


@never_cache
@require_safe
def unread(request: HttpRequest) -> HttpResponse:
    """{"unread": n, "latest": id} for the bell's first paint (and after its socket reconnects)."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Please sign in.", "unread": 0, "latest": 0}, status=401)
    return JsonResponse(unread_summary(user=request.user))


# --- Preferences and the institution's defaults -------------------------------------------------------

# (channel, its column's heading, the heading on phones)
GRID_CHANNELS: list[tuple[str, str, str]] = [
    (Channel.IN_APP, "In the app", "App"),
    (Channel.EMAIL, "Email", "Email"),
    (Channel.SMS, "SMS", "SMS"),
]


@dataclass(frozen=True)
class Cell:
    channel: str
    label: str
    name: str  # the checkbox's name: "<event>:<channel>"
    checked: bool
    disabled: bool


@dataclass(frozen=True)
class Row:
    event: str
    label: str
    cells: list[Cell]
    is_default: bool  # no choice of its own: it follows the default


def _grid(chosen: dict[str, set[str]], own: Iterable[str], *, sms_disabled: bool = False) -> list[Row]:
    own = set(own)
    rows = []
    for event, label in Event.choices:
        cells = [
            Cell(
                channel=channel,
                label=channel_label,
                name=f"{event}:{channel}",
                checked=channel in chosen[event] and not (sms_disabled and channel == Channel.SMS),
                disabled=sms_disabled and channel == Channel.SMS,
            )
            for channel, channel_label, _ in GRID_CHANNELS
        ]
        rows.append(Row(event=event, label=label, cells=cells, is_default=event not in own))
    return rows


def _posted_grid(request: HttpRequest) -> dict[str, set[str]]:
    """Each event's ticked channels (unknown names are ignored)."""
    return {
        event: {channel for channel in Channel.values if request.POST.get(f"{event}:{channel}")}
        for event in Event.values
    }


def _flags(channels: set[str]) -> dict[str, bool]:
    return {channel: channel in channels for channel in Channel.values}


def preferences_save(*, user: User, chosen: dict[str, set[str]], sms_available: bool) -> int:
    """Write the person's choices: a Preference for each event that already had one or now differs
    from the institution's default (the others keep following the default). Without an opted-in
    number the SMS boxes are not offered, so what was there for SMS is kept. Returns rows written."""
    defaults = services.institution_defaults()
    existing = {p.event: p for p in Preference.objects.filter(user=user)}
    rows = []
    for event in Event.values:
        wanted = set(chosen.get(event, set())) & set(Channel.values)
        if not sms_available:
            kept = existing[event].sms if event in existing else Channel.SMS in defaults[event]
            wanted = (wanted - {Channel.SMS}) | ({Channel.SMS} if kept else set())
        if event not in existing and wanted == set(defaults[event]):
            continue
        rows.append(Preference(user=user, event=event, **_flags(wanted)))
    if rows:
        Preference.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["user", "event"],
            update_fields=list(Channel.values),
        )
    return len(rows)


def institution_defaults_save(*, chosen: dict[str, set[str]]) -> int:
    """Write the institution's defaults: a row for each event that already had one or now differs
    from the built-in default. Returns rows written."""
    existing = set(InstitutionDefault.objects.values_list("event", flat=True))
    rows = []
    for event in Event.values:
        wanted = set(chosen.get(event, set())) & set(Channel.values)
        if event not in existing and wanted == set(BUILT_IN_DEFAULTS[event]):
            continue
        rows.append(InstitutionDefault(event=event, **_flags(wanted)))
    if rows:
        InstitutionDefault.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["event"], update_fields=list(Channel.values)
        )
    return len(rows)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    user = request.user
    can_sms = user.can_receive_sms
    if request.method == "POST":
        with transaction.atomic():
            if request.POST.get("action") == "reset":
                Preference.objects.filter(user=user).delete()
                messages.success(request, "You now get what your institution sends by default.")
            else:
                preferences_save(user=user, chosen=_posted_grid(request), sms_available=can_sms)
                messages.success(request, "Your notification preferences are saved.")
        return redirect("notifications:preferences")

    chosen = services.institution_defaults()
    own = []
    for preference in Preference.objects.filter(user=user):
        chosen[preference.event] = {c for c in Channel.values if getattr(preference, c)}
        own.append(preference.event)
    context = {
        "rows": _grid(chosen, own, sms_disabled=not can_sms),
        "channels": GRID_CHANNELS,
        "sms_available": can_sms,
        "has_own": bool(own),
        "section": "preferences",
    }
    return render(request, "notifications/preferences.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def defaults(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    if request.method == "POST":
        with transaction.atomic():
            if request.POST.get("action") == "reset":
                InstitutionDefault.objects.all().delete()
                messages.success(request, "The defaults are back to PeerLearn's.")
            else:
                institution_defaults_save(chosen=_posted_grid(request))
                messages.success(request, "The institution's defaults are saved.")
        return redirect("notifications:defaults")

    chosen = {event: set(channels) for event, channels in BUILT_IN_DEFAULTS.items()}
    own = []
    for row in InstitutionDefault.objects.all():
        chosen[row.event] = {c for c in Channel.values if getattr(row, c)}
        own.append(row.event)
    context = {
        "rows": _grid(chosen, own),
        "channels": GRID_CHANNELS,
        "has_own": bool(own),
        "section": "defaults",
    }
    return render(request, "notifications/defaults.html", context)


# --- The delivery log -------------------------------------------------------------------------------


def delivery_log_page(
    *, channel: str = "", status: str = "", query: str = "", number: str | None = None
) -> Page:
    """Deliveries, newest first, with their notification and recipient (two queries a page)."""
    rows = Delivery.objects.select_related("notification__recipient").order_by("-created_at", "-pk")
    if channel:
        rows = rows.filter(channel=channel)
    if status:
        rows = rows.filter(status=status)
    if query:
        rows = rows.filter(
            Q(to__icontains=query)
            | Q(notification__recipient__email__icontains=query)
            | Q(notification__recipient__full_name__icontains=query)
            | Q(provider_id=query)
        )
    page = Paginator(rows, LOG_PAGE_SIZE).get_page(number)
    for delivery in page.object_list:
        delivery.badge = DELIVERY_BADGES.get(delivery.status, "badge badge-gray")
    return page


@login_required
@require_safe
def delivery_log(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    channel = request.GET.get("channel", "")
    channel = channel if channel in Channel.values else ""
    status = request.GET.get("status", "")
    status = status if status in Delivery.Status.values else ""
    query = request.GET.get("q", "").strip()[:100]
    page = delivery_log_page(channel=channel, status=status, query=query, number=request.GET.get("page"))
    context = {
        "page": page,
        "channel": channel,
        "status": status,
        "q": query,
        "channels": [(value, label) for value, label in Channel.choices if value != Channel.IN_APP],
        "statuses": Delivery.Status.choices,
        "section": "log",
    }
    return render(request, "notifications/delivery_log.html", context)


urlpatterns = [
    path("", notification_list, name="list"),
    path("read/", mark_read, name="mark_read"),
    path("<int:pk>/open/", notification_open, name="open"),
    path("unread.json", unread, name="unread"),
    path("preferences/", preferences, name="preferences"),
    path("defaults/", defaults, name="defaults"),
    path("log/", delivery_log, name="delivery_log"),
]
