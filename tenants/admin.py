"""Platform staff manage institutions on the platform host's admin."""

from django.contrib import admin

from .models import Domain, Institution


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Institution)
class InstitutionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "schema_name", "country", "currency", "created_at")
    search_fields = ("name", "slug")
    readonly_fields = ("schema_name", "created_at")
    inlines = [DomainInline]

    def has_add_permission(self, request) -> bool:
        # New institutions come from the provisioning service (sign-up or create_institution).
        return False


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain",)
