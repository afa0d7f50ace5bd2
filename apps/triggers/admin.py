from django.contrib import admin

from apps.triggers.models import BusinessCalendar, Holiday


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 1


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    """Platform admins keep the holiday calendars that schedules follow (`calendar:`)."""

    inlines = [HolidayInline]
    list_display = ["slug", "name"]
