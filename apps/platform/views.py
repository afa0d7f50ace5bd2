"""Pages of the platform app."""
