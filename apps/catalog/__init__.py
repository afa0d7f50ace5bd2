"""Step types: the registry of what a step can do, their parameter schemas and risk, and the
platform-managed connections (with encrypted secrets) and HTTP allow-list they use."""
