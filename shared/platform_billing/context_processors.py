"""The banner that tells people where the institution stands with its subscription."""

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format

from .models import Subscription

TRIAL_WARNING_DAYS = 5


def plan_notice(request: HttpRequest) -> dict:
    subscription = getattr(request, "subscription", None)
    if subscription is None or not subscription:
        return {"plan_notice": None}
    user = getattr(request, "user", None)
    is_admin = bool(user and user.is_authenticated and user.is_tenant_admin)
    status = subscription.status
    St = Subscription.Status
    notice = None
    if status == St.SUSPENDED:
        if is_admin:
            notice = {
                "level": "error",
                "text": "Your PeerLearn subscription is suspended: the site is readable but takes no new "
                "bookings. Pay or choose a plan to reopen it.",
                "link": "/plan/",
                "link_text": "Plan & billing",
            }
        else:
            notice = {
                "level": "warning",
                "text": "This site is not taking new bookings at the moment. Your existing sessions are "
                "unaffected; the institution has been told.",
            }
    elif status == St.PAST_DUE and is_admin:
        from django.conf import settings

        since = subscription.past_due_since or timezone.now()
        stops = since + timedelta(days=settings.PLATFORM_GRACE_DAYS)
        notice = {
            "level": "warning",
            "text": "The payment for your PeerLearn subscription failed. Update your payment details: "
            f"bookings stop on {date_format(timezone.localtime(stops), 'j F Y')} otherwise.",
            "link": "/plan/",
            "link_text": "Update payment details",
        }
    elif status == St.TRIALING and is_admin and subscription.trial_ends_at:
        left = subscription.trial_ends_at - timezone.now()
        if left <= timedelta(days=TRIAL_WARNING_DAYS):
            ends = date_format(timezone.localtime(subscription.trial_ends_at), "j F Y")
            notice = {
                "level": "info",
                "text": f"Your free trial ends on {ends}. Choose a plan to keep taking bookings.",
                "link": "/plan/",
                "link_text": "Choose a plan",
            }
    return {"plan_notice": notice}
