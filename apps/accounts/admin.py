from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import (
    ApiToken,
    ApproverGroup,
    Membership,
    SsoIdentity,
    Team,
    User,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(User)
class FlowdeckUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Flowdeck", {"fields": ("is_platform_admin",)}))
    list_display = ("username", "email", "first_name", "last_name", "is_platform_admin", "is_active")
    inlines = [MembershipInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("slug", "name")
    inlines = [MembershipInline]


@admin.register(ApproverGroup)
class ApproverGroupAdmin(admin.ModelAdmin):
    list_display = ("slug", "team", "allow_self_approval")
    filter_horizontal = ("members",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    # The hash is useless to a person and should not be copied around.
    exclude = ("key_hash",)
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at")

    def has_add_permission(self, request):
        # A token is issued on its owner's tokens page, where its secret is shown once; here it
        # could only be saved without an owner.
        return False


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "issuer", "subject", "last_sign_in_at")
    # Written at each sign-in from the provider's groups; an edit here would be undone then.
    readonly_fields = ("user", "issuer", "subject", "groups", "mapped_roles", "mapped_approver_groups",
                       "last_sign_in_at")

    def has_add_permission(self, request):
        return False
