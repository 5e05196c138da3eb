"""Parameter counts of the paper's 7B configuration per part, built on the meta device (no memory, no weights)."""

import torch

from engine.configuration import MedVersaConfig
from engine.heads import DetectionHead, SegmentationHead2D
from engine.modeling import VisualAdapter
from engine.vision import SwinEncoder2D


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_7b_parts_have_the_published_sizes():
    config = MedVersaConfig.paper_7b()
    with torch.device("meta"):
        swin = SwinEncoder2D(config.swin)
        adapter_2d = VisualAdapter(config.swin.out_channels, config.hidden_size, config.visual_grid)
        adapter_3d = VisualAdapter(config.unet3d.channels[-1], config.hidden_size, config.visual_grid)
        detection = DetectionHead(config.hidden_size, config.detection)
        seg2d = SegmentationHead2D(config.hidden_size, config.seg2d)
    assert round(_count(swin) / 1e6, 1) == 86.7  # Swin-B (Liu et al. 2021: 88M with its ImageNet head)
    assert _count(adapter_2d) == 2 * 1024 + 1024 * 4096 + 4096 == 4_200_448  # 4.20M
    assert _count(adapter_3d) == 2 * 256 + 256 * 4096 + 4096 == 1_053_184  # 1.05M
    assert _count(detection) == 1_058_564  # LN(4096) -> 4096x256 -> LN(256) -> 256x4 (Fig. 8a)
    assert _count(seg2d.encoder) == 11_176_512  # torchvision ResNet-18 without fc
    # segmentation_models_pytorch Unet decoder (256-128-64-32-16) with GroupNorm, and its 3x3 head
    assert _count(seg2d.decoder) == 3_151_552 and _count(seg2d.segmentation_head) == 145
