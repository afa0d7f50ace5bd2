"""Queries are encoded by ONNX Runtime from the model exported once: in float32 the vectors are the
model's own; with 8-bit weights (the default) they stay within cosine 0.98 and rank alike."""

import numpy as np

from apps.knowledge.embedding import OnnxQueryModel, encode_query

TEXTS = [
    "Step load_invoices failed: LockNotAvailable: could not obtain lock on relation invoices within 5000ms",
    "disk full",
    # Longer than the model reads (256 word pieces): both cut it the same way.
    "The nightly reconciliation failed after the upstream export arrived late. " * 40,
]
DOCUMENTS = [
    "The TLS certificate of the partner endpoint expired overnight and every handshake failed.",
    "The landing zone disk filled up: no space left on device while writing the extract.",
    "A deadlock between two loaders: the database chose one as victim and rolled it back.",
    "The schedule ran an hour early after the clocks changed for daylight saving time.",
    "The vendor API answered 429 Too Many Requests and the client gave up after three retries.",
]
QUERIES = [
    "x509: certificate has expired or is not yet valid when calling the partner API",
    "OSError: [Errno 28] No space left on device: /data/landing/orders.csv",
    "ERROR: deadlock detected while updating invoices",
    "Job started at 01:00 instead of 02:00 on the morning of the DST switch",
    "HTTP 429 rate limit exceeded from the payments API",
]


def test_float32_query_vectors_match_the_models_own(real_encoder, knowledge_var_dir):
    onnx = OnnxQueryModel(real_encoder.model, knowledge_var_dir / "onnx", precision="float32")
    exported = list((knowledge_var_dir / "onnx").glob("*.onnx"))
    assert len(exported) == 1 and exported[0].stat().st_size > 10_000_000

    ours = onnx.encode(TEXTS)
    theirs = real_encoder.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (3, 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert np.all((ours * theirs).sum(axis=1) > 0.99999)


def test_int8_query_vectors_stay_close_and_rank_documents_alike(real_encoder, knowledge_var_dir):
    onnx = OnnxQueryModel(real_encoder.model, knowledge_var_dir / "onnx", precision="int8")
    sizes = {path.name: path.stat().st_size for path in (knowledge_var_dir / "onnx").glob("*.onnx")}
    quantized = [name for name in sizes if name.endswith("-int8.onnx")]
    assert len(sizes) == 2 and len(quantized) == 1
    assert sizes[quantized[0]] < min(sizes.values()) * 2 < max(sizes.values())  # about a quarter of float32

    ours = onnx.encode(TEXTS)
    theirs = real_encoder.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert np.all((ours * theirs).sum(axis=1) > 0.98)
    documents = real_encoder.model.encode(DOCUMENTS, normalize_embeddings=True, convert_to_numpy=True)
    for query in QUERIES:
        exact = documents @ real_encoder.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        assert np.argmax(documents @ onnx.encode([query])[0]) == np.argmax(exact)


def test_a_query_is_encoded_through_onnx_runtime_in_int8_by_default(using_real_model):
    vector = encode_query(TEXTS[0])
    assert isinstance(using_real_model._queries, OnnxQueryModel)
    assert using_real_model._queries.precision == "int8"
    batch = using_real_model.model.encode([TEXTS[0]], normalize_embeddings=True, convert_to_numpy=True)[0]
    assert float(vector @ batch) > 0.98
