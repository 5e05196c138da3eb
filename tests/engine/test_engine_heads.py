import pytest
import torch

from engine.configuration import DetectionSettings
from engine.heads import DetectionHead, normalized_xyxy

RAW = torch.tensor([[-0.2, 0.1, 1.3, 0.5], [0.7, 0.9, 0.2, 0.4]])


def _head_with_outputs(settings, outputs):
    """A head whose last layer ignores its input and outputs ``outputs`` (bias only)."""
    head = DetectionHead(8, settings)
    with torch.no_grad():
        head.mlp[4].weight.zero_()
        head.mlp[4].bias.copy_(outputs)
    return head


@pytest.mark.parametrize(
    "activation, expected",
    [("none", RAW[0]),  # engine-notes.md: LN -> Linear -> ReLU -> LN -> Linear(256, 4) is the box
     ("sigmoid", torch.sigmoid(RAW[0]))],
)
def test_box_activation(activation, expected):
    head = _head_with_outputs(DetectionSettings(hidden=4, box_activation=activation), RAW[0])
    boxes = head(torch.randn(3, 8))  # (K=3, E=8) -> (3, 4)
    assert boxes.shape == (3, 4)
    torch.testing.assert_close(boxes, expected.expand(3, 4), rtol=0, atol=0)


def test_normalized_xyxy_orders_and_clamps():
    # (K, 4) raw outputs -> (K, 4) valid boxes inside the image
    expected = torch.tensor([[0.0, 0.1, 1.0, 0.5], [0.2, 0.4, 0.7, 0.9]])
    torch.testing.assert_close(normalized_xyxy(RAW), expected, rtol=0, atol=0)


def test_unknown_box_activation_is_refused():
    with pytest.raises(ValueError, match=r"box_activation must be one of \['none', 'sigmoid'\], got 'relu'"):
        DetectionSettings(box_activation="relu")
