"""The sentence space an index's vectors are in: stock, or an adopted map (adoption.py decides which;
indexing, learning and suggestions only read it here, so they need nothing of the adoption itself).
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from apps.knowledge import adaptation
from apps.paths import knowledge_directory


def adaptation_directory() -> Path:
    return knowledge_directory() / "adaptation"


def adopted_space() -> str | None:
    """The file name of the adopted map, None for the stock space."""
    try:
        return json.loads((adaptation_directory() / "adoption.json").read_text()).get("space")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@lru_cache(maxsize=4)
def _load(directory: str, name: str) -> np.ndarray:
    return np.load(Path(directory) / name)


def space_map(name: str | None) -> np.ndarray | None:
    return _load(str(adaptation_directory()), name) if name else None


def index_map(index) -> np.ndarray | None:
    """The map the index's vectors were built with (None: stock), for queries and updates of that index."""
    return space_map(index.meta.get("space"))


def index_label_vectors(index, names: dict[str, str]) -> dict[str, np.ndarray]:
    """The vectors of the categories' names (slug -> name) in the index's space."""
    from apps.knowledge.fusion import label_vectors

    matrix = index_map(index)
    return {slug: adaptation.apply(matrix, vector) for slug, vector in label_vectors(names).items()}
