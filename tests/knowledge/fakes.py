"""A small deterministic encoder for tests that are not about embedding quality."""

import hashlib

import numpy as np

from apps.knowledge.textproc import lexical_tokens


class HashingEncoder:
    """Bag of words hashed into 256 dimensions: texts sharing words are close, nothing else is."""

    name = "test-hashing-encoder"
    dimension = 256

    def encode(self, texts):
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in lexical_tokens(text):
                vectors[row, int(hashlib.md5(token.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)
