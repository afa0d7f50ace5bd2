"""Incident tests share the knowledge fixtures: a temporary VAR_DIR, fake and real encoders."""

from tests.knowledge.conftest import fake_encoder, knowledge_var_dir, real_encoder, using_real_model  # noqa: F401
