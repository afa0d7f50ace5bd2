"""REST API of the workflows app (mounted under /api/v1/)."""

urlpatterns: list = []
