"""Label embeddings for conditioning. A label of -1 means "missing" and embeds to zeros (a neutral input)."""
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class OneHotEmbedding(nn.Module):
    """One-hot code of a class id: (batch,) LongTensor -> (batch, n_classes); -1 -> all zeros.

    Ids above the range are clamped to the last class (export inlets are clamped the same way).
    """

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = int(n_classes)
        self.out_dim = int(n_classes)

    def forward(self, labels: Tensor) -> Tensor:
        known = labels >= 0
        ids = labels.clamp(0, self.n_classes - 1)
        return F.one_hot(ids, self.n_classes).to(torch.float32) * known.unsqueeze(-1).to(torch.float32)


class LearnedEmbedding(nn.Module):
    """Learned vector per class: (batch,) LongTensor -> (batch, embedding_dim); -1 -> zeros."""

    def __init__(self, n_classes: int, embedding_dim: int = 8):
        super().__init__()
        self.n_classes = int(n_classes)
        self.out_dim = int(embedding_dim)
        self.table = nn.Embedding(self.n_classes, self.out_dim)

    def forward(self, labels: Tensor) -> Tensor:
        known = labels >= 0
        ids = labels.clamp(0, self.n_classes - 1)
        return self.table(ids) * known.unsqueeze(-1).to(self.table.weight.dtype)


EMBEDDINGS = {"OneHot": OneHotEmbedding, "Embedding": LearnedEmbedding}


def make_embedding(kind: str, n_classes: int, embedding_dim: Optional[int] = None) -> nn.Module:
    """Build the embedding named in config (``OneHot`` or ``Embedding``, vschaos2 names)."""
    if kind not in EMBEDDINGS:
        raise ValueError(f"unknown embedding {kind!r}: choose one of {sorted(EMBEDDINGS)}")
    if kind == "OneHot":
        return OneHotEmbedding(n_classes)
    return LearnedEmbedding(n_classes, embedding_dim if embedding_dim is not None else 8)
