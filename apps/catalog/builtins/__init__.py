"""Built-in step types. Each module registers its types when imported."""
