"""Pages of the runs app."""
