"""The trained ranker network as plain numpy arrays, for scoring one request at a time.

Why not torch at serving time: a request scores ~150 rows through a few small layers,
and torch's per-call dispatch (inference mode, module hooks, ~20 small ops with their
allocations) costs more than the arithmetic. Here the four objective towers are fused
into one wide layer and one block-diagonal output layer, and a request is three
matrix products plus the wide part: the same function, a fraction of the time.
`Ranker` uses this for inference; training stays in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class NumpyNet:
    """Logits (n, objectives) of a `MultiTaskNet`, computed with numpy in float32."""

    lo: np.ndarray  # (f,) clip bounds of the training range
    hi: np.ndarray
    mean: np.ndarray  # (f,) standardization
    inv_std: np.ndarray
    bottom: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (in, out), bias) per layer
    tower_hidden: tuple[np.ndarray, np.ndarray]  # all towers' hidden layers side by side
    tower_out: tuple[np.ndarray, np.ndarray]  # block-diagonal: tower j feeds objective j
    wide: tuple[np.ndarray, np.ndarray]

    @classmethod
    def from_torch(cls, net: nn.Module) -> NumpyNet:
        def arrays(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
            w = layer.weight.detach().numpy().T.astype(np.float32)
            return np.ascontiguousarray(w), layer.bias.detach().numpy().astype(np.float32)

        with torch.no_grad():
            bottom = tuple(arrays(m) for m in net.bottom if isinstance(m, nn.Linear))
            hidden = [arrays(t[0]) for t in net.towers]
            outs = [arrays(t[2]) for t in net.towers]
            width = sum(w.shape[1] for w, _ in hidden)
            out_w = np.zeros((width, len(outs)), dtype=np.float32)
            col = 0
            for j, (w, _) in enumerate(outs):
                out_w[col : col + w.shape[0], j] = w[:, 0]
                col += w.shape[0]
            return cls(
                lo=net.lo.numpy().astype(np.float32),
                hi=net.hi.numpy().astype(np.float32),
                mean=net.mean.numpy().astype(np.float32),
                inv_std=(1.0 / net.std).numpy().astype(np.float32),
                bottom=bottom,
                tower_hidden=(
                    np.ascontiguousarray(np.hstack([w for w, _ in hidden])),
                    np.concatenate([b for _, b in hidden]),
                ),
                tower_out=(out_w, np.concatenate([b for _, b in outs])),
                wide=arrays(net.wide),
            )

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = np.maximum(x, self.lo)  # np.clip costs twice as much on these shapes
        np.minimum(z, self.hi, out=z)
        z -= self.mean
        z *= self.inv_std
        h = z
        for w, b in self.bottom:
            h = h @ w
            h += b
            np.maximum(h, 0.0, out=h)
        t = h @ self.tower_hidden[0]
        t += self.tower_hidden[1]
        np.maximum(t, 0.0, out=t)
        out = t @ self.tower_out[0]
        out += self.tower_out[1]
        out += z @ self.wide[0]
        out += self.wide[1]
        return out

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        logits = self.logits(np.asarray(x, dtype=np.float32))
        return 1.0 / (1.0 + np.exp(-logits))
