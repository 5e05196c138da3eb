"""Detection head: one normalized xyxy box per ``<DET>`` token (paper section 4.2, Fig. 8)."""

from __future__ import annotations

import torch
from torch import nn


class DetectionHead(nn.Module):
    """LayerNorm(E) -> Linear(E, hidden) -> ReLU -> LayerNorm(hidden) -> Linear(hidden, 4) -> sigmoid.

    Input ``(K, E)`` task-token hidden states; output ``(K, 4)`` boxes as normalized xyxy in ``[0, 1]``
    (x to the right, y down, relative to the image width/height). The sigmoid keeps boxes inside the image.
    """

    def __init__(self, hidden_size: int, head_hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden_size),
            nn.Linear(hidden_size, head_hidden),
            nn.ReLU(),
            nn.LayerNorm(head_hidden),
            nn.Linear(head_hidden, 4),
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """``(K, E)`` -> ``(K, 4)`` normalized xyxy boxes (states are cast to the head's dtype)."""
        return torch.sigmoid(self.mlp(states.to(self.mlp[1].weight.dtype)))
