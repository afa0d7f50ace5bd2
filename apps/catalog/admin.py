"""Django admin for connections and allowed hosts: writes go through the catalog services
(audited, platform admins only), and the secret is write-only."""

from django.contrib import admin

from apps.catalog import services
from apps.catalog.forms import AllowedHostForm, ConnectionForm
from apps.catalog.models import AllowedHost, Connection


class PlatformAdminOnly(admin.ModelAdmin):
    def has_add_permission(self, request, *args):
        return request.user.is_platform_admin and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_platform_admin and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_platform_admin and super().has_delete_permission(request, obj)


@admin.register(Connection)
class ConnectionAdmin(PlatformAdminOnly):
    form = ConnectionForm
    list_display = ("name", "kind", "url", "allow_writes", "secret_state", "updated_at")
    list_filter = ("kind", "allow_writes")
    search_fields = ("name", "url", "description")
    fields = ("name", "kind", "url", "secret", "clear_secret", "allow_writes", "description",
              "team", "shared_with", "shared_with_all")

    @admin.display(description="Secret")
    def secret_state(self, connection: Connection) -> str:
        return "set" if connection.has_secret else "not set"

    def save_model(self, request, obj, form, change):
        if change:
            saved = services.update_connection(request.user, obj.pk, secret=form.secret_change(),
                                               **form.public_fields(), **form.sharing())
        else:
            saved = services.create_connection(request.user, secret=form.cleaned_data.get("secret") or "",
                                               **form.public_fields(), **form.sharing())
        obj.pk, obj.encrypted_secret = saved.pk, saved.encrypted_secret

    def save_related(self, request, form, formsets, change):
        # update_connection already set shared_with (audited); the form must not set it again.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        services.delete_connection(request.user, obj.pk)

    def delete_queryset(self, request, queryset):
        for connection in queryset:
            services.delete_connection(request.user, connection.pk)


@admin.register(AllowedHost)
class AllowedHostAdmin(PlatformAdminOnly):
    form = AllowedHostForm
    list_display = ("pattern", "allow_private", "note", "created_at")
    search_fields = ("pattern", "note")

    def has_change_permission(self, request, obj=None):
        # An entry is never edited in place, so the audit log shows exactly what was allowed when:
        # remove it and add the new one.
        return False

    def save_model(self, request, obj, form, change):
        obj.pk = services.add_allowed_host(request.user, pattern=obj.pattern, allow_private=obj.allow_private,
                                           note=obj.note).pk

    def delete_model(self, request, obj):
        services.remove_allowed_host(request.user, obj.pk)

    def delete_queryset(self, request, queryset):
        for host in queryset:
            services.remove_allowed_host(request.user, host.pk)
