"""Adapting the sentence space to a team's own root causes: a linear map over the frozen embeddings.

The stock model groups short incident texts by the system they name (payments, DNS, a database)
more than by what caused the failure. A team's resolved incidents say which texts share a cause,
so the space is bent towards that, SetFit-style: pairs of incidents of one root cause are pulled
together and the other incidents of the same batch pushed away (a supervised contrastive loss, the
in-batch softmax of sentence-transformers' MultipleNegativesRankingLoss with every same-cause
incident a positive). Fine-tuning the transformer itself takes minutes a fold on 2 CPU cores, so
only a square map over its (cached) output is trained, starting at the identity and pulled back
towards it: a few hundred milliseconds for a few hundred incidents, and one 384x384 product at
query time, nothing next to encoding.

Every vector of an index (incidents, runbooks, category descriptions, label names) and every query
goes through the same map (`apply`), so the stock model and its embedding cache stay as they are.
Functions over arrays, no database: `evaluation` fits a map inside each fold from the other folds
only, `adoption` fits one on the team's history and keeps it only when `knowledge_eval`'s
cross-validation says it ranks better.
"""

import numpy as np

# Chosen by 5-fold cross-validation on the labelled sets in fixtures/incidents (README, Knowledge).
STEPS = 150
LEARNING_RATE = 0.001
SCALE = 20.0  # MultipleNegativesRankingLoss's default: cosines x 20 before the softmax
IDENTITY_PULL = 1.0  # weight of |W - I|^2 against the mean contrastive loss
MIN_EXAMPLES = 30  # as fusion.MIN_EXAMPLES: fewer incidents (or one cause) leave the stock space


def apply(matrix: np.ndarray | None, vectors: np.ndarray) -> np.ndarray:
    """Vectors mapped into the adapted space, unit length again (the stock ones without a map)."""
    if matrix is None:
        return vectors
    mapped = np.asarray(vectors, dtype=np.float32) @ matrix.T
    norms = np.linalg.norm(mapped, axis=-1, keepdims=True)
    return (mapped / np.where(norms == 0, 1, norms)).astype(np.float32)


def fit(vectors: np.ndarray, labels: list[str], *, steps: int = STEPS, pull: float = IDENTITY_PULL,
        learning_rate: float = LEARNING_RATE, scale: float = SCALE,
        seed: int = 13) -> np.ndarray | None:
    """The map W (d x d) under which incidents of one root cause are nearest each other; None when
    there is too little to learn from (fewer than MIN_EXAMPLES incidents, or no cause with two)."""
    import torch  # only a fit needs it

    labels = list(labels)
    codes = {label: n for n, label in enumerate(sorted(set(labels)))}
    y = torch.tensor([codes[label] for label in labels])
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(labels), dtype=torch.bool)
    anchors = same.any(dim=1)  # an incident alone in its cause has no positive
    if len(labels) < MIN_EXAMPLES or int(anchors.sum()) < 2 or len(codes) < 2:
        return None
    torch.manual_seed(seed)
    x = torch.tensor(np.asarray(vectors, dtype=np.float32))
    identity = torch.eye(x.shape[1])
    weight = identity.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=learning_rate)
    self_mask = torch.eye(len(labels), dtype=torch.bool)
    for _ in range(steps):
        z = torch.nn.functional.normalize(x @ weight.T, dim=1)
        logits = (scale * z @ z.T).masked_fill(self_mask, float("-inf"))
        log_p = torch.log_softmax(logits, dim=1).masked_fill(~same, 0.0)
        # Each anchor: the mean log-probability of its same-cause incidents among all the others.
        contrastive = -(log_p.sum(dim=1)[anchors] / same.sum(dim=1)[anchors]).mean()
        loss = contrastive + pull * ((weight - identity) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return weight.detach().numpy().astype(np.float32)
