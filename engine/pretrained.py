"""ImageNet initialisation of the vision backbones from local files (paper sections 4.3-4.4, Fig. 8).

The paper starts the 2D encoder (Swin-B) and the encoder of the 2D segmentation UNet (ResNet-18) from ImageNet
weights. Nothing is downloaded: the user provides the files.

- ResNet-18: a state dict in torchvision's layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
  ``layer2.0.downsample.0``, ``fc``; timm's ResNet-18 uses the same names), as ``.safetensors`` or a PyTorch
  ``.pth``/``.pt``/``.bin`` file. Our encoder uses ``GroupNorm(16)`` instead of BatchNorm (paper Fig. 8b): the
  BatchNorm scale and shift become the GroupNorm scale and shift, the running statistics are dropped (GroupNorm
  keeps none), and so is the ImageNet classifier ``fc``.
- Swin-B: the Hugging Face layout of ``microsoft/swin-base-patch4-window7-224`` (``SwinForImageClassification``
  or ``SwinModel`` names, older or current), either a model folder (``config.json`` + weights) or a single weights
  file. It is read by ``transformers`` itself (``SwinModel.from_pretrained``, local files only), which renames
  older parameter names to the current ones; the ImageNet ``classifier`` and the recomputable
  ``relative_position_index`` buffers are dropped.

Loading is strict: a key that is neither used nor one of the dropped kinds, an encoder weight that receives
nothing, or a shape that differs raises :class:`engine.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import SwinConfig, SwinModel

from engine.checkpoint import CheckpointError, load_torch_file
from engine.heads.segmentation import GroupNormResNet18Features
from engine.modeling import MedVersaModel
from engine.vision import SwinEncoder2D

_TORCH_SUFFIXES = {".pth", ".pt", ".bin"}
#: ImageNet ResNet-18 keys that our GroupNorm encoder has no place for.
_RESNET_DROPPED = re.compile(r"^fc\.(weight|bias)$|\.(running_mean|running_var|num_batches_tracked)$")
#: Swin keys that transformers reports as unexpected and that we drop on purpose.
_SWIN_DROPPED = re.compile(r"^classifier\.|relative_position_index$")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or of a PyTorch ``.pth``/``.pt``/``.bin`` state dict (read with
    ``weights_only=True``: no code runs).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: another suffix, a file that is not a ``torch.save`` of tensors and plain values (e.g. a
            pickle that would run code: refused, naming the file), or not a flat ``name -> tensor`` dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_file(path)
    if suffix not in _TORCH_SUFFIXES:
        raise CheckpointError(f"{path}: weights must be .safetensors or a PyTorch {sorted(_TORCH_SUFFIXES)} file")
    state = load_torch_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict (name -> tensor)")
    return state


def _copy_strictly(what: str, module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    reshaped = {k: (tuple(v.shape), tuple(expected[k].shape)) for k, v in weights.items()
                if k in expected and v.shape != expected[k].shape}
    if missing or unexpected or reshaped:
        raise CheckpointError(f"{what}: {len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected "
                              f"key(s) {unexpected[:5]}, {len(reshaped)} shape mismatch(es) "
                              f"{dict(list(reshaped.items())[:5])} (file shape, model shape)")
    module.load_state_dict(weights, strict=True)


def load_imagenet_resnet18(encoder: GroupNormResNet18Features, path: str | Path) -> None:
    """Load ImageNet ResNet-18 weights (torchvision layout, see the module docstring) into the 2D UNet encoder.

    Raises:
        FileNotFoundError, CheckpointError: see :func:`read_state_dict`; keys or shapes that do not match.
    """
    weights = {k: v for k, v in read_state_dict(path).items() if not _RESNET_DROPPED.search(k)}
    _copy_strictly(f"ImageNet ResNet-18 {path}", encoder, weights)


def load_imagenet_swin(encoder: SwinEncoder2D, path: str | Path) -> None:
    """Load ImageNet Swin weights (Hugging Face layout, folder or single file; see the module docstring) into
    the 2D encoder. A folder's ``config.json`` must describe the same architecture as the encoder's settings.

    Raises:
        FileNotFoundError: no such file or folder.
        CheckpointError: another architecture, or keys/shapes that do not match.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Swin weights not found: {path}")
    ours = encoder.swin.config
    with tempfile.TemporaryDirectory() as tmp:
        folder = path
        if path.is_file():  # a bare weights file: give transformers our architecture beside it
            suffix = path.suffix.lower()
            if suffix != ".safetensors" and suffix not in _TORCH_SUFFIXES:
                raise CheckpointError(f"{path}: weights must be .safetensors or a PyTorch file")
            folder = Path(tmp)
            ours.save_pretrained(folder)
            name = "model.safetensors" if suffix == ".safetensors" else "pytorch_model.bin"
            (folder / name).symlink_to(path.resolve())
        elif not (path / "config.json").is_file():
            raise CheckpointError(f"Swin folder {path} has no config.json")
        else:
            theirs = SwinConfig.from_pretrained(path, local_files_only=True)
            fields = ("image_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size")
            differ = {f: (getattr(theirs, f), getattr(ours, f)) for f in fields
                      if list(_as_list(getattr(theirs, f))) != list(_as_list(getattr(ours, f)))}
            if differ:
                raise CheckpointError(f"Swin folder {path} holds another architecture (file, ours): {differ}")
        try:
            loaded, info = SwinModel.from_pretrained(folder, local_files_only=True, output_loading_info=True,
                                                     add_pooling_layer=False, ignore_mismatched_sizes=True)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read Swin weights from {path}: {err}") from err
    unexpected = [k for k in info["unexpected_keys"] if not _SWIN_DROPPED.search(k)]
    problems = [f"{len(keys)} {kind} {sorted(keys)[:5]}" for kind, keys in
                (("missing key(s)", info["missing_keys"]), ("unexpected key(s)", unexpected),
                 ("shape mismatch(es)", info["mismatched_keys"]), ("error(s)", info["error_msgs"])) if keys]
    if problems:
        raise CheckpointError(f"ImageNet Swin {path}: " + "; ".join(problems))
    _copy_strictly(f"ImageNet Swin {path}", encoder.swin, loaded.state_dict())


def _as_list(value):
    return value if isinstance(value, (list, tuple)) else [value]


def load_imagenet_weights(model: MedVersaModel, resnet18: str | Path | None = None,
                          swin: str | Path | None = None) -> None:
    """Initialise a freshly built model's backbones from ImageNet files (paper 4.3-4.4): ``resnet18`` into the
    2D segmentation UNet encoder, ``swin`` into the 2D vision encoder; ``None`` leaves that part as it is.

    Raises:
        FileNotFoundError, CheckpointError: see :func:`load_imagenet_resnet18` and :func:`load_imagenet_swin`.
    """
    if resnet18 is not None:
        load_imagenet_resnet18(model.seg2d_head.encoder, resnet18)
    if swin is not None:
        load_imagenet_swin(model.backbone.encoder_2d, swin)
