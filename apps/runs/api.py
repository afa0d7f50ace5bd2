"""REST API of the runs app (mounted under /api/v1/)."""

urlpatterns: list = []
