"""Django admin: platform staff on the platform host, institution admins on their own host.

The institution's admin site registers institution models only: public tables (institutions,
domains, plans) are reachable through the search_path and must never appear there.
"""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from .forms import AdminSiteAuthenticationForm
from .models import Invitation, User


class UserCreationForm(forms.ModelForm):
    password = forms.CharField(widget=forms.PasswordInput)

    class Meta:
        model = User
        fields = ("email", "full_name", "role")

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        user.set_password(self.cleaned_data["password"])
        if commit:
            user.save()
        return user


class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "role", "mentor_status", "is_active", "date_joined")
    list_filter = ("role", "mentor_status", "is_active", "is_staff")
    search_fields = ("email", "full_name")
    readonly_fields = ("date_joined", "last_login", "email_verified_at")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "timezone", "avatar")}),
        ("Role", {"fields": ("role", "mentor_status", "mentor_application")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("date_joined", "last_login", "email_verified_at")}),
    )
    add_form = UserCreationForm
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "full_name", "role", "password")}),)


class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "role", "created_at", "expires_at", "accepted_at")
    readonly_fields = ("token", "created_at", "accepted_at", "invited_by")


class TenantAdminSite(admin.AdminSite):
    site_header = "Institution administration"
    site_title = "Institution administration"
    index_title = "Manage your institution"
    login_form = AdminSiteAuthenticationForm

    def each_context(self, request):
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            context["site_header"] = f"{tenant.name} administration"
        return context


tenant_admin_site = TenantAdminSite(name="tenant_admin")
tenant_admin_site.register(User, UserAdmin)
tenant_admin_site.register(Invitation, InvitationAdmin)
tenant_admin_site.register(Group)
tenant_admin_site.register(TokenProxy, TokenAdmin)

# Platform staff (users of the public schema) on the platform host.
admin.site.site_header = "PeerLearn platform administration"
# Platform staff are locked out after repeated failures too (their counters live under "public").
admin.site.login_form = AdminSiteAuthenticationForm
admin.site.register(User, UserAdmin)
