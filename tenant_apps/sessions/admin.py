"""Mentoring in the institution's Django admin (statuses change only through the services)."""

from django import forms
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse

from tenant_apps.accounts.admin import tenant_admin_site

from .models import (
    Booking,
    BookingTransition,
    GroupSession,
    LiveRoomSettings,
    MentorProfile,
    Review,
    WeeklyAvailability,
)


class WeeklyAvailabilityInline(admin.TabularInline):
    model = WeeklyAvailability
    extra = 0


class MentorProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "headline", "price_minor", "rating_average", "rating_count")
    search_fields = ("user__full_name", "user__email", "headline")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    inlines = [WeeklyAvailabilityInline]


class BookingTransitionInline(admin.TabularInline):
    model = BookingTransition
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "actor", "note", "at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class BookingAdmin(admin.ModelAdmin):
    list_display = ("starts_at", "mentor", "learner", "status", "price_minor", "currency")
    list_filter = ("status",)
    list_select_related = ("mentor__user", "learner")
    search_fields = ("learner__email", "mentor__user__email", "topic")
    date_hierarchy = "starts_at"
    inlines = [BookingTransitionInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Booking._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


class GroupSessionAdmin(admin.ModelAdmin):
    list_display = ("title", "mentor", "starts_at", "capacity", "status")
    list_filter = ("status",)
    list_select_related = ("mentor__user",)


class ReviewAdmin(admin.ModelAdmin):
    list_display = ("booking", "rating", "created_at")
    readonly_fields = ("booking", "rating", "comment", "created_at")

    def has_add_permission(self, request) -> bool:
        return False  # learners write reviews (of their own completed sessions), never the admin site


tenant_admin_site.register(MentorProfile, MentorProfileAdmin)
tenant_admin_site.register(Booking, BookingAdmin)
tenant_admin_site.register(GroupSession, GroupSessionAdmin)
tenant_admin_site.register(Review, ReviewAdmin)


# --- Live rooms: the institution's ICE servers (one row) ---------------------------------------


class LiveRoomSettingsForm(forms.ModelForm):
    """The TURN secret is write-only: never sent back to the browser; left empty, it stays as it is."""

    turn_secret = forms.CharField(
        label="TURN shared secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The static-auth-secret of your coturn server (use-auth-secret). Leave empty to keep the "
        "current one.",
    )
    clear_turn_secret = forms.BooleanField(label="Remove the TURN secret", required=False)

    class Meta:
        model = LiveRoomSettings
        fields = ("stun_urls", "turn_urls", "turn_secret", "turn_credential_ttl_seconds")
        help_texts = {
            "stun_urls": "Comma-separated, e.g. stun:stun.example.org:3478",
            "turn_urls": "Comma-separated, e.g. "
            "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349",
            "turn_credential_ttl_seconds": "How long the TURN credentials given to a participant stay valid.",
        }

    def _urls(self, name: str, schemes: tuple[str, ...]) -> list[str]:
        urls = [url.strip() for url in self.cleaned_data.get(name) or [] if url.strip()]
        for url in urls:
            if not url.startswith(schemes) or any(char.isspace() for char in url):
                raise forms.ValidationError(f"“{url}” must start with {' or '.join(schemes)}.")
        return urls

    def clean_stun_urls(self) -> list[str]:
        return self._urls("stun_urls", ("stun:", "stuns:"))

    def clean_turn_urls(self) -> list[str]:
        return self._urls("turn_urls", ("turn:", "turns:"))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("clear_turn_secret"):
            data["turn_secret"] = ""
        elif not data.get("turn_secret"):
            data["turn_secret"] = self.instance.turn_secret if self.instance.pk else ""
        if data.get("turn_urls") and not data["turn_secret"]:
            self.add_error("turn_secret", "TURN servers need the shared secret.")
        return data


class LiveRoomSettingsAdmin(admin.ModelAdmin):
    """A singleton: the list opens the one row (or the form to create it)."""

    form = LiveRoomSettingsForm
    fields = ("stun_urls", "turn_urls", "turn_secret", "clear_turn_secret", "turn_credential_ttl_seconds")

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and not LiveRoomSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        row = LiveRoomSettings.objects.order_by("pk").first()
        name = "change" if row else "add"
        return redirect(
            reverse(f"{self.admin_site.name}:mentoring_liveroomsettings_{name}", args=[row.pk] if row else [])
        )


tenant_admin_site.register(LiveRoomSettings, LiveRoomSettingsAdmin)
