"""Pages for group sessions: the list, one session with enrol/leave, and publishing one."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from shared.core.errors import ApplicationError
from tenant_apps.accounts.forms import add_service_errors

from .. import groups as services
from ..models import MentorProfile
from ..profiles import price_to_minor

GROUPS_PER_PAGE = 24


class GroupSessionForm(forms.Form):
    title = forms.CharField(max_length=160)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=5000)
    starts_at = forms.DateTimeField(
        label="Starts at (your time zone)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )
    minutes = forms.IntegerField(min_value=15, max_value=480, initial=60, label="Length (minutes)")
    capacity = forms.IntegerField(min_value=1, max_value=500, initial=10)
    price = forms.CharField(
        initial="0", label="Price per seat", help_text="0 for a free session, e.g. 25.00."
    )

    def __init__(self, *args, currency: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["price"].label = f"Price per seat ({currency})"

    def clean_price(self) -> int:
        try:
            return price_to_minor(self.cleaned_data["price"], self.currency)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


def _get(group_id: int):
    try:
        return services.group_session_get(group_session_id=group_id)
    except ApplicationError:
        raise Http404("No such group session.") from None


def group_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(services.group_sessions_upcoming(), GROUPS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "mentoring/groups.html", {"page": page, "groups": page.object_list})


def group_detail(request: HttpRequest, group_id: int) -> HttpResponse:
    session = _get(group_id)
    context = {
        "group": session,
        "enrollment": services.enrollment_of(group_session=session, learner=request.user),
        "is_mentor": request.user.is_authenticated and session.mentor.user_id == request.user.pk,
        "seats_left": max(session.capacity - session.enrolled, 0),
    }
    return render(request, "mentoring/group_detail.html", context)


@login_required
@require_POST
def group_enrol(request: HttpRequest, group_id: int) -> HttpResponse:
    session = _get(group_id)
    try:
        enrollment = services.enrollment_create(group_session=session, learner=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        if enrollment.status == enrollment.Status.ENROLLED:
            messages.success(request, "You have a seat.")
        else:
            messages.info(
                request, "The session is full: you are on the waitlist and will get the next free seat."
            )
    return redirect(reverse("mentoring:group_detail", args=[session.pk]))


@login_required
@require_POST
def group_leave(request: HttpRequest, group_id: int) -> HttpResponse:
    session = _get(group_id)
    enrollment = services.enrollment_of(group_session=session, learner=request.user)
    if enrollment is None:
        messages.error(request, "You are not enrolled in this session.")
    else:
        services.enrollment_cancel(enrollment=enrollment, actor=request.user)
        messages.success(request, "You have left the session.")
    return redirect(reverse("mentoring:group_detail", args=[session.pk]))


@login_required
@require_POST
def group_cancel(request: HttpRequest, group_id: int) -> HttpResponse:
    session = _get(group_id)
    try:
        services.group_session_cancel(group_session=session, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The group session is cancelled.")
    return redirect(reverse("mentoring:group_detail", args=[session.pk]))


@login_required
def group_create(request: HttpRequest) -> HttpResponse:
    mentor = MentorProfile.objects.select_related("user").filter(user=request.user).first()
    if mentor is None or not request.user.is_mentor:
        messages.error(request, "Only approved mentors can publish group sessions.")
        return redirect("mentoring:groups")
    form = GroupSessionForm(request.POST or None, currency=request.tenant.currency)
    if request.method == "POST" and form.is_valid():
        try:
            values = dict(form.cleaned_data)
            values["price_minor"] = values.pop("price")
            session = services.group_session_create(mentor=mentor, **values)
        except ApplicationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "Your group session is published.")
            return redirect(reverse("mentoring:group_detail", args=[session.pk]))
    return render(request, "mentoring/group_form.html", {"form": form}, status=400 if form.errors else 200)


urlpatterns = [
    path("groups/", group_list, name="groups"),
    path("groups/new/", group_create, name="group_create"),
    path("groups/<int:group_id>/", group_detail, name="group_detail"),
    path("groups/<int:group_id>/enrol/", group_enrol, name="group_enrol"),
    path("groups/<int:group_id>/leave/", group_leave, name="group_leave"),
    path("groups/<int:group_id>/cancel/", group_cancel, name="group_cancel"),
]
