"""Segmentation heads: UNets whose bottleneck is prompted by a task-token hidden state (paper section 4.2).

2D: a UNet with a MONAI ResNet-18 encoder and GroupNorm instead of BatchNorm; the ``<2DSEG>`` state ->
LayerNorm -> Linear(E, 512) is broadcast-added to the deepest ``512 x h x w`` map, then GroupNorm and the MONAI
UNet decoder. 3D: the ``<3DSEG>`` state -> LayerNorm -> Linear(E, C) is added to the 3D UNet bottleneck, then
the decoder with skips. Any number ``K`` of task tokens per image works: each token gives its own mask.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import UnetOutBlock, UnetUpBlock
from monai.networks.nets.flexible_unet import SegmentationHead, UNetDecoder
from monai.networks.nets.resnet import ResNetFeatures
from monai.networks.utils import replace_modules
from torch import nn

from engine.configuration import Seg2DSettings, UNet3DSettings

RESNET18_CHANNELS = (64, 64, 128, 256, 512)


class GroupNormResNet18Features(ResNetFeatures):
    """MONAI's ResNet-18 feature extractor with GroupNorm layers instead of BatchNorm (no torchvision).

    Input ``(B, 3, H, W)``; output 5 maps with channels 64, 64, 128, 256, 512 at strides 2, 4, 8, 16, 32.
    MONAI 1.6's ``ResNet(norm=...)`` only applies ``norm`` to the stem (the residual blocks keep BatchNorm), so
    every BatchNorm is swapped for ``GroupNorm(num_groups)`` after construction.
    He et al., "Deep Residual Learning", CVPR 2016.
    """

    def __init__(self, num_groups: int):
        super().__init__("resnet18", pretrained=False, spatial_dims=2, in_channels=3)
        batch_norms = [name for name, m in self.named_modules() if isinstance(m, nn.BatchNorm2d)]
        for name in batch_norms:
            channels = self.get_submodule(name).num_features
            replace_modules(self, name, nn.GroupNorm(num_groups, channels), strict_match=True)


def _expand(features: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    return features.index_select(0, image_index)


class SegmentationHead2D(nn.Module):
    """2D segmentation UNet prompted by ``<2DSEG>`` states.

    ``forward(images (N, 3, H, W), states (K, E), image_index (K,)) -> (K, 1, H, W)`` mask logits, where
    ``image_index[k]`` names the image segmented for token ``k`` and ``H = W = settings.image_size``.
    """

    def __init__(self, hidden_size: int, settings: Seg2DSettings):
        super().__init__()
        groups = ("group", {"num_groups": settings.num_groups})
        self.encoder = GroupNormResNet18Features(settings.num_groups)
        self.prompt = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, RESNET18_CHANNELS[-1]))
        self.bottleneck_norm = nn.GroupNorm(settings.num_groups, RESNET18_CHANNELS[-1])
        self.decoder = UNetDecoder(
            spatial_dims=2,
            encoder_channels=(3, *RESNET18_CHANNELS),
            decoder_channels=settings.decoder_channels,
            act=("relu", {"inplace": True}),
            norm=groups,
            dropout=0.0,
            bias=False,
            upsample="nontrainable",
            pre_conv="default",
            interp_mode="nearest",
            align_corners=None,
            is_pad=True,
        )
        self.head = SegmentationHead(spatial_dims=2, in_channels=settings.decoder_channels[-1], out_channels=1,
                                     kernel_size=3, act=None)

    def forward(self, images: torch.Tensor, states: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(K, 1, H, W)`` for ``K`` task tokens (see class docstring)."""
        features = [_expand(f, image_index) for f in self.encoder(images)]
        prompt = self.prompt(states.to(self.prompt[1].weight.dtype))[:, :, None, None]
        features[-1] = self.bottleneck_norm(features[-1] + prompt)
        return self.head(self.decoder(features, len(features) - 1))


class SegmentationHead3D(nn.Module):
    """Decoder half of the 3D UNet prompted by ``<3DSEG>`` states.

    ``forward(features, states (K, E), image_index (K,)) -> (K, 1, D, H, W)`` mask logits, where ``features`` is
    the per-level output of :class:`engine.vision.UNetEncoder3D` for ``N`` volumes and ``image_index[k]`` names
    the volume segmented for token ``k``.
    """

    def __init__(self, hidden_size: int, settings: UNet3DSettings):
        super().__init__()
        channels = settings.channels
        norm = ("group", {"num_groups": settings.num_groups})
        self.prompt = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, channels[-1]))
        self.up = nn.ModuleList(
            UnetUpBlock(3, cin, cout, kernel_size=3, stride=1, upsample_kernel_size=2, norm_name=norm)
            for cin, cout in zip(channels[:0:-1], channels[-2::-1])
        )
        self.out = UnetOutBlock(3, channels[0], 1)

    def forward(self, features: list[torch.Tensor], states: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(K, 1, D, H, W)`` (see class docstring)."""
        features = [_expand(f, image_index) for f in features]
        x = features[-1] + self.prompt(states.to(self.prompt[1].weight.dtype))[:, :, None, None, None]
        for block, skip in zip(self.up, features[-2::-1]):
            x = block(x, skip)
        return self.out(x)
