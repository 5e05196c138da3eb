"""Parameter layouts of published weight files, written from their descriptions (papers, library conventions),
independently of the engine's modules, so that loading them tests the engine's layout rather than itself."""

import torch

from engine.configuration import SwinSettings


def torchvision_resnet18_layout():
    """``name -> shape`` of torchvision's ``resnet18()`` state dict (He et al. 2016, Table 1; BasicBlock with a
    1x1 projection shortcut where the stride or width changes)."""
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, channels):
        shapes.update({f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,),
                       f"{prefix}.running_mean": (channels,), f"{prefix}.running_var": (channels,),
                       f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    inplanes = 64
    for layer, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{layer}.{block}"
            cin = inplanes if block == 0 else planes
            shapes[f"{prefix}.conv1.weight"] = (planes, cin, 3, 3)
            bn(f"{prefix}.bn1", planes)
            shapes[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{prefix}.bn2", planes)
            if block == 0 and layer > 1:
                shapes[f"{prefix}.downsample.0.weight"] = (planes, cin, 1, 1)
                bn(f"{prefix}.downsample.1", planes)
        inplanes = planes
    shapes.update({"fc.weight": (1000, 512), "fc.bias": (1000,)})
    return shapes


def hub_swin_layout(s: SwinSettings):
    """``name -> shape`` of a ``SwinForImageClassification`` file on the Hugging Face hub (the parameter names
    transformers used when ``microsoft/swin-base-patch4-window7-224`` was published), with its 1000-class head."""
    c, w = s.embed_dim, s.window_size
    shapes = {"swin.embeddings.patch_embeddings.projection.weight": (c, 3, s.patch_size, s.patch_size),
              "swin.embeddings.patch_embeddings.projection.bias": (c,),
              "swin.embeddings.norm.weight": (c,), "swin.embeddings.norm.bias": (c,)}
    for stage, (depth, heads) in enumerate(zip(s.depths, s.num_heads)):
        dim = c * 2 ** stage
        for block in range(depth):
            p = f"swin.encoder.layers.{stage}.blocks.{block}."
            shapes.update({p + "layernorm_before.weight": (dim,), p + "layernorm_before.bias": (dim,),
                           p + "attention.self.relative_position_bias_table": ((2 * w - 1) ** 2, heads),
                           p + "attention.self.relative_position_index": (w * w, w * w),
                           p + "layernorm_after.weight": (dim,), p + "layernorm_after.bias": (dim,),
                           p + "intermediate.dense.weight": (4 * dim, dim), p + "intermediate.dense.bias": (4 * dim,),
                           p + "output.dense.weight": (dim, 4 * dim), p + "output.dense.bias": (dim,),
                           p + "attention.output.dense.weight": (dim, dim), p + "attention.output.dense.bias": (dim,)})
            for proj in ("query", "key", "value"):
                shapes.update({p + f"attention.self.{proj}.weight": (dim, dim), p + f"attention.self.{proj}.bias": (dim,)})
        if stage < len(s.depths) - 1:
            p = f"swin.encoder.layers.{stage}.downsample."
            shapes.update({p + "reduction.weight": (2 * dim, 4 * dim), p + "norm.weight": (4 * dim,),
                           p + "norm.bias": (4 * dim,)})
    last = c * 2 ** (len(s.depths) - 1)
    shapes.update({"swin.layernorm.weight": (last,), "swin.layernorm.bias": (last,),
                   "classifier.weight": (1000, last), "classifier.bias": (1000,)})
    return shapes


def smp_unet_2d_layout(decoder_channels, prefix="model_seg_2d."):
    """``name -> shape`` of the released 2D UNet (engine-notes.md: ``segmentation_models_pytorch`` layout): a
    ``Unet`` with a ResNet-18 encoder (torchvision names, no ``fc``) and BatchNorm replaced by GroupNorm (paper
    Fig. 8b: affine scale/shift only, no running statistics), decoder blocks ``conv1``/``conv2`` = (conv, norm,
    ReLU) whose first conv reads ``[upsampled, skip]``, a 3x3 ``segmentation_head.0`` to one channel; plus the
    GroupNorm after the prompt addition (``bottleneck_norm``, engine-notes.md)."""
    shapes = {}
    for key, shape in torchvision_resnet18_layout().items():
        if not key.startswith("fc.") and not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            shapes[f"{prefix}encoder.{key}"] = shape
    shapes.update({f"{prefix}bottleneck_norm.weight": (512,), f"{prefix}bottleneck_norm.bias": (512,)})
    encoder = (512, 256, 128, 64, 64)  # deepest first
    inputs = (encoder[0], *decoder_channels[:-1])
    skips = (*encoder[1:], 0)
    for i, (cin, skip, cout) in enumerate(zip(inputs, skips, decoder_channels)):
        block = f"{prefix}decoder.blocks.{i}."
        shapes.update({block + "conv1.0.weight": (cout, cin + skip, 3, 3), block + "conv1.1.weight": (cout,),
                       block + "conv1.1.bias": (cout,), block + "conv2.0.weight": (cout, cout, 3, 3),
                       block + "conv2.1.weight": (cout,), block + "conv2.1.bias": (cout,)})
    shapes.update({f"{prefix}segmentation_head.0.weight": (1, decoder_channels[-1], 3, 3),
                   f"{prefix}segmentation_head.0.bias": (1,)})
    return shapes


def swin_relative_position_index(window: int):
    """``(window**2, window**2)`` long: for each pair of positions in a window, the row of the relative position
    bias table, ``(dy + window - 1) * (2 * window - 1) + (dx + window - 1)`` (Liu et al. 2021, section 3.2)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]
