"""Mounted at /metrics (outside /api/v1/, where Prometheus expects it)."""

from django.urls import path

from apps.monitoring.metrics import metrics_view

urlpatterns = [path("", metrics_view, name="metrics")]
