"""Vision encoders: the 2D Swin Transformer and the encoder half of the 3D UNet (paper section 4.2).

Both return feature maps; :class:`engine.modeling.VisualAdapter` pools them to the visual tokens.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import UnetBasicBlock
from torch import nn
from transformers import SwinConfig, SwinModel

from engine.checkpointing import CheckpointedBlocks
from engine.configuration import SwinSettings, UNet3DSettings


class SwinEncoder2D(nn.Module):
    """Swin Transformer image encoder (``transformers.SwinModel``) returning its last feature map.

    Input ``(B, 3, H, W)`` CLIP-normalised RGB with ``H = W = settings.image_size``; output ``(B, C, h, w)`` with
    ``C = settings.out_channels`` (1024 for Swin-B) and ``h = w = H / (patch_size * 2 ** (stages - 1))`` (7 at
    224 px). Paper section 4.2; Liu et al., "Swin Transformer", ICCV 2021.

    A frozen encoder is a fixed feature extractor: its gradients are off, stochastic depth is off
    (``drop_path_rate=0``; ``SwinConfig`` defaults to 0.1) and it stays in eval mode when the model is put in
    train mode, so its features are the same in training and inference.

    Args:
        settings: Swin hyper-parameters; ``frozen`` turns off gradients of all encoder weights.
    """

    def __init__(self, settings: SwinSettings):
        super().__init__()
        self.settings = settings
        config = SwinConfig(
            image_size=settings.image_size,
            patch_size=settings.patch_size,
            embed_dim=settings.embed_dim,
            depths=list(settings.depths),
            num_heads=list(settings.num_heads),
            window_size=settings.window_size,
            drop_path_rate=0.0,
        )
        self.swin = SwinModel(config, add_pooling_layer=False)
        if settings.frozen:
            self.swin.requires_grad_(False)
            self.swin.eval()

    def train(self, mode: bool = True) -> SwinEncoder2D:
        """Set train/eval mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.settings.frozen:
            self.swin.eval()
        return self

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encode ``(B, 3, H, W)`` images to a ``(B, C, h, w)`` feature map.

        Raises:
            ValueError: the images are not ``(B, 3, image_size, image_size)``.
        """
        size = self.settings.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(f"2D encoder expects (B, 3, {size}, {size}) images, got {tuple(pixel_values.shape)}")
        hidden = self.swin(pixel_values=pixel_values).last_hidden_state  # (B, h*w, C)
        side = int(round(hidden.shape[1] ** 0.5))
        return hidden.transpose(1, 2).reshape(hidden.shape[0], hidden.shape[2], side, side)


class UNetEncoder3D(CheckpointedBlocks, nn.Module):
    """Encoder half of the 3D UNet: DoubleConv blocks (Conv3d 3x3x3 -> GroupNorm -> LeakyReLU, twice) with a 2x
    max-pool before each deeper level.

    Input ``(B, 1, D, H, W)`` z-normalised CT on the model grid; output the feature map of every level, shallow
    to deep, level ``i`` of shape ``(B, channels[i], D / 2**i, H / 2**i, W / 2**i)`` (deepest ``256 x 4 x 12 x 12``
    at 64 x 192 x 192). Paper section 4.2; Cicek et al., "3D U-Net", MICCAI 2016. Each level's DoubleConv is
    checkpointed when activation checkpointing is on (:mod:`engine.checkpointing`).
    """

    def __init__(self, settings: UNet3DSettings):
        super().__init__()
        self.settings = settings
        norm = ("group", {"num_groups": settings.num_groups})
        in_channels = (1, *settings.channels[:-1])
        self.blocks = nn.ModuleList(
            UnetBasicBlock(3, cin, cout, kernel_size=3, stride=1, norm_name=norm)
            for cin, cout in zip(in_channels, settings.channels)
        )
        self.pool = nn.MaxPool3d(2)

    def forward(self, volume: torch.Tensor) -> list[torch.Tensor]:
        """Encode ``(B, 1, D, H, W)`` volumes; returns one feature map per level (deepest last).

        Raises:
            ValueError: the volumes are not ``(B, 1, *volume_size)``.
        """
        expected = (1, *self.settings.volume_size)
        if volume.ndim != 5 or tuple(volume.shape[1:]) != expected:
            raise ValueError(f"3D encoder expects (B, {', '.join(map(str, expected))}) volumes, got {tuple(volume.shape)}")
        features = []
        x = volume
        for level, block in enumerate(self.blocks):
            if level:
                x = self.pool(x)
            x = self.run_block(block, x)
            features.append(x)
        return features
