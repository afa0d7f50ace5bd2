"""Workflow definitions, their immutable versions, the spec language and (later) triggers."""
