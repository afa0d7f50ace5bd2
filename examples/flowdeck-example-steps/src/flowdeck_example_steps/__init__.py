"""Example step types for Flowdeck, declared under the `flowdeck.step_types` entry point group."""
