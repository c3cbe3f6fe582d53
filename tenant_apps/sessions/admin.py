"""Mentoring in the institution's Django admin (statuses change only through the services)."""

from django.contrib import admin

from tenant_apps.accounts.admin import tenant_admin_site

from .models import Booking, BookingTransition, GroupSession, MentorProfile, Review, WeeklyAvailability


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


tenant_admin_site.register(MentorProfile, MentorProfileAdmin)
tenant_admin_site.register(Booking, BookingAdmin)
tenant_admin_site.register(GroupSession, GroupSessionAdmin)
tenant_admin_site.register(Review, ReviewAdmin)
