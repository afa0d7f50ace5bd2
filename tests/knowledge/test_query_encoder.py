"""Queries are encoded by ONNX Runtime from the model exported once; the vectors are the model's."""

import numpy as np

from apps.knowledge.embedding import OnnxQueryModel, encode_query

TEXTS = [
    "Step load_invoices failed: LockNotAvailable: could not obtain lock on relation invoices within 5000ms",
    "disk full",
    # Longer than the model reads (256 word pieces): both cut it the same way.
    "The nightly reconciliation failed after the upstream export arrived late. " * 40,
]


def test_onnx_query_vectors_match_the_models_own(real_encoder, knowledge_var_dir):
    onnx = OnnxQueryModel(real_encoder.model, knowledge_var_dir / "onnx")
    exported = list((knowledge_var_dir / "onnx").glob("*.onnx"))
    assert len(exported) == 1 and exported[0].stat().st_size > 10_000_000

    ours = onnx.encode(TEXTS)
    theirs = real_encoder.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (3, 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert np.all((ours * theirs).sum(axis=1) > 0.99999)


def test_a_query_is_encoded_through_onnx_runtime(using_real_model):
    vector = encode_query(TEXTS[0])
    assert isinstance(using_real_model._queries, OnnxQueryModel)
    batch = using_real_model.model.encode([TEXTS[0]], normalize_embeddings=True, convert_to_numpy=True)[0]
    assert float(vector @ batch) > 0.99999
