"""Detection head: one normalized xyxy box per ``<DET>`` token (paper section 4.2, Fig. 8)."""

from __future__ import annotations

import torch
from torch import nn

from engine.configuration import BoxActivation, DetectionSettings


class DetectionHead(nn.Module):
    """LayerNorm(E) -> Linear(E, hidden) -> ReLU -> LayerNorm(hidden) -> Linear(hidden, 4) [-> sigmoid].

    Input ``(K, E)`` task-token hidden states; output ``(K, 4)`` boxes as normalized xyxy (x to the right, y down,
    relative to the image width/height). With ``box_activation="none"`` (the released code and weights, which
    trained the raw outputs with 100 x SmoothL1; engine-notes.md) the outputs are not bounded and may be unordered;
    with ``"sigmoid"`` they lie in (0, 1). Training losses use these outputs as they are; returned boxes go
    through :func:`normalized_xyxy`.

    Args:
        hidden_size: ``E``, the LLM width.
        settings: hidden width and box activation (:class:`engine.configuration.DetectionSettings`).
    """

    def __init__(self, hidden_size: int, settings: DetectionSettings):
        super().__init__()
        self.settings = settings
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden_size),
            nn.Linear(hidden_size, settings.hidden),
            nn.ReLU(),
            nn.LayerNorm(settings.hidden),
            nn.Linear(settings.hidden, 4),
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """``(K, E)`` -> ``(K, 4)`` normalized xyxy boxes, unclamped (states are cast to the head's dtype)."""
        boxes = self.mlp(states.to(self.mlp[1].weight.dtype))
        return torch.sigmoid(boxes) if self.settings.box_activation is BoxActivation.SIGMOID else boxes


def normalized_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Head outputs ``(K, 4)`` -> valid normalized xyxy boxes ``(K, 4)``: each coordinate pair ordered
    (``x0 <= x1``, ``y0 <= y1``) and clamped to ``[0, 1]``, the image's extent. Same dtype and device."""
    x0, x1 = torch.minimum(boxes[:, 0], boxes[:, 2]), torch.maximum(boxes[:, 0], boxes[:, 2])
    y0, y1 = torch.minimum(boxes[:, 1], boxes[:, 3]), torch.maximum(boxes[:, 1], boxes[:, 3])
    return torch.stack([x0, y0, x1, y1], dim=1).clamp(0.0, 1.0)
