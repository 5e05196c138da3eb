"""Segmentation heads: UNets whose bottleneck is prompted by a task-token hidden state (paper section 4.3, Fig. 8).

2D (Fig. 8b): a UNet with the standard ResNet-18 encoder (He et al. 2016: projection shortcuts, the ImageNet
topology, 11,176,512 parameters without ``fc``) and the decoder of a ``segmentation_models_pytorch`` ``Unet``
(nearest 2x upsampling, concatenation ``[upsampled, skip]``, two 3x3 conv -> norm -> ReLU per level, a 3x3 conv
segmentation head), every BatchNorm replaced by ``GroupNorm(16)`` as in the paper. Parameter names follow those
layouts (torchvision for the encoder, ``segmentation_models_pytorch`` for the decoder and head), so ImageNet
ResNet-18 weights (:mod:`engine.pretrained`) and the released 2D UNet (:mod:`engine.checkpoint`) load by name.
The ``<2DSEG>`` state -> LayerNorm -> Linear(E, 512) is broadcast-added to the deepest ``512 x h x w`` map, then
GroupNorm, then the decoder.

3D (Fig. 8c): the ``<3DSEG>`` state -> LayerNorm -> Linear(E, C) is added to the 3D UNet bottleneck, then the
decoder with skips. Any number ``K`` of task tokens works: each token gives its own mask of the image it refers to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import UnetOutBlock, UnetUpBlock
from monai.networks.nets.resnet import ResNet, ResNetFeatures, get_inplanes
from monai.networks.utils import replace_modules
from torch import nn

from engine.checkpointing import CheckpointedBlocks
from engine.configuration import Seg2DSettings, UNet3DSettings

RESNET18_CHANNELS = (64, 64, 128, 256, 512)


class GroupNormResNet18Features(ResNetFeatures):
    """The standard ResNet-18 (He et al., CVPR 2016; torchvision's topology and parameter names) as a feature
    extractor, with ``GroupNorm(num_groups)`` instead of every BatchNorm; built from MONAI's ``ResNet`` (no
    torchvision).

    Input ``(B, 3, H, W)``; output 5 maps with channels 64, 64, 128, 256, 512 at strides 2, 4, 8, 16, 32 (the
    stem after ReLU, then ``layer1``-``layer4``). MONAI's ``ResNetFeatures("resnet18")`` uses shortcut type "A"
    (zero-padded identity shortcuts, 11,002,688 parameters), which cannot hold ImageNet weights, so the network is
    built with shortcut type "B" (1x1 conv projection, no bias) like torchvision; ``fc`` is not built.
    MONAI 1.6's ``ResNet(norm=...)`` only applies ``norm`` to the stem, so every BatchNorm is swapped afterwards.
    """

    def __init__(self, num_groups: int):
        # ResNetFeatures.__init__ fixes shortcut type "A" for resnet18; its forward (the 5 maps) is what we reuse.
        ResNet.__init__(self, block="basic", layers=[2, 2, 2, 2], block_inplanes=get_inplanes(), spatial_dims=2,
                        n_input_channels=3, conv1_t_stride=2, shortcut_type="B", feed_forward=False,
                        bias_downsample=False)
        batch_norms = [name for name, m in self.named_modules() if isinstance(m, nn.BatchNorm2d)]
        for name in batch_norms:
            channels = self.get_submodule(name).num_features
            replace_modules(self, name, nn.GroupNorm(num_groups, channels), strict_match=True)


def _conv_norm_relu(in_channels: int, out_channels: int, num_groups: int) -> nn.Sequential:
    """3x3 conv (no bias) -> GroupNorm -> ReLU (``segmentation_models_pytorch`` ``Conv2dReLU`` with the norm swapped)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.GroupNorm(num_groups, out_channels), nn.ReLU(inplace=True))


class UNetDecoderBlock(nn.Module):
    """One decoder level: nearest 2x upsampling, concatenation with the skip map (``[upsampled, skip]``), then two
    3x3 conv -> GroupNorm -> ReLU. ``(B, in, h, w)`` + ``(B, skip, 2h, 2w)`` -> ``(B, out, 2h, 2w)``."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, num_groups: int):
        super().__init__()
        self.conv1 = _conv_norm_relu(in_channels + skip_channels, out_channels, num_groups)
        self.conv2 = _conv_norm_relu(out_channels, out_channels, num_groups)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder2D(CheckpointedBlocks, nn.Module):
    """The ``segmentation_models_pytorch`` ``Unet`` decoder for a 5-stage encoder (no centre block, as for
    ResNet encoders): level ``i`` upsamples the previous output and joins the encoder map 4 - i levels up; the last
    level has no skip and reaches the input resolution.

    ``forward(features)`` takes the 5 encoder maps shallow to deep and returns ``(B, decoder_channels[-1], H, W)``.
    """

    def __init__(self, encoder_channels: tuple[int, ...], decoder_channels: tuple[int, ...], num_groups: int):
        super().__init__()
        deep_first = encoder_channels[::-1]  # (512, 256, 128, 64, 64) for ResNet-18
        in_channels = (deep_first[0], *decoder_channels[:-1])
        skip_channels = (*deep_first[1:], 0)
        self.blocks = nn.ModuleList(
            UNetDecoderBlock(cin, cskip, cout, num_groups)
            for cin, cskip, cout in zip(in_channels, skip_channels, decoder_channels)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x, skips = features[-1], features[-2::-1]
        for level, block in enumerate(self.blocks):
            x = self.run_block(block, x, skips[level] if level < len(skips) else None)
        return x


def _expand(features: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    return features.index_select(0, image_index)


class SegmentationHead2D(nn.Module):
    """2D segmentation UNet prompted by ``<2DSEG>`` states (paper Fig. 8b).

    ``forward(images (N, 3, H, W), states (K, E), image_index (K,)) -> (K, 1, H, W)`` mask logits, where
    ``image_index[k]`` names the image segmented for token ``k`` and ``H = W = settings.image_size`` (a multiple of
    32). Sub-modules: ``encoder`` (:class:`GroupNormResNet18Features`), ``prompt``, ``bottleneck_norm``,
    ``decoder`` (:class:`UNetDecoder2D`), ``segmentation_head`` (3x3 conv to one channel, with bias).
    """

    def __init__(self, hidden_size: int, settings: Seg2DSettings):
        super().__init__()
        self.encoder = GroupNormResNet18Features(settings.num_groups)
        self.prompt = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, RESNET18_CHANNELS[-1]))
        self.bottleneck_norm = nn.GroupNorm(settings.num_groups, RESNET18_CHANNELS[-1])
        self.decoder = UNetDecoder2D(RESNET18_CHANNELS, settings.decoder_channels, settings.num_groups)
        self.segmentation_head = nn.Sequential(nn.Conv2d(settings.decoder_channels[-1], 1, 3, padding=1))

    def forward(self, images: torch.Tensor, states: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(K, 1, H, W)`` for ``K`` task tokens (see class docstring)."""
        features = [_expand(f, image_index) for f in self.encoder(images)]
        prompt = self.prompt(states.to(self.prompt[1].weight.dtype))[:, :, None, None]
        features[-1] = self.bottleneck_norm(features[-1] + prompt)
        return self.segmentation_head(self.decoder(features))


class SegmentationHead3D(CheckpointedBlocks, nn.Module):
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
            x = self.run_block(block, x, skip)
        return self.out(x)
