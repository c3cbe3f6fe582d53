"""Mentoring pages of an institution's site (namespace "mentoring")."""

from .views import availability, bookings, directory, extras, groups, live

app_name = "mentoring"

urlpatterns = [
    *directory.urlpatterns,
    *availability.urlpatterns,
    *bookings.urlpatterns,
    *groups.urlpatterns,
    *extras.urlpatterns,
    *live.urlpatterns,
]
