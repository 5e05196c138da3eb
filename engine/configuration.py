"""Composite MedVersa configuration: LLM location, vision encoders, heads, LoRA, task-token ids and loss weights.

One :class:`MedVersaConfig` fully describes a checkpoint; it is saved as ``config.json`` beside the weights.
The paper's 7B configuration (Llama-2-7B-chat, Swin-B at 224 px, 9 visual tokens, LoRA r=16 alpha=16 on q/v,
dropout 0.1; paper section 4.2 and engine-notes.md) is :meth:`MedVersaConfig.paper_7b`; :meth:`MedVersaConfig.tiny`
is the CPU-sized configuration used by the tests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

CONFIG_NAME = "config.json"

#: Added tokens in the order of the released checkpoint (ids 32000.. after the Llama-2 vocabulary).
IMAGE_TOKEN = "<ImageHere>"
DET_TOKEN = "<DET>"
SEG2D_TOKEN = "<2DSEG>"
SEG3D_TOKEN = "<3DSEG>"
NA_TOKEN = "<N/A>"
ADDED_TOKENS = (IMAGE_TOKEN, DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, NA_TOKEN)

#: CLIP normalisation of the 2D images (engine-notes.md, "2D preprocessing").
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class SwinSettings:
    """2D encoder: a ``transformers`` Swin Transformer (paper: Swin-B, 224 px, frozen ImageNet weights).

    Args:
        image_size: input side in pixels (square, aspect not kept).
        patch_size, embed_dim, depths, num_heads, window_size: as in ``transformers.SwinConfig``.
        frozen: keep the encoder's weights frozen in training.
    """

    image_size: int = 224
    patch_size: int = 4
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 7
    frozen: bool = True

    @property
    def out_channels(self) -> int:
        """Channels of the last hidden state (1024 for Swin-B)."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)


@dataclass
class UNet3DSettings:
    """3D UNet (encoder = 3D vision encoder, decoder = 3D segmentation head).

    Args:
        volume_size: model grid ``(D, H, W)`` in voxels (paper: 64 x 192 x 192).
        channels: DoubleConv channels per level, deepest last (paper: 32-64-128-256-256, four 2x max-pools).
        num_groups: GroupNorm groups (paper: 16).
        hu_window: CT intensities are clipped to this range in Hounsfield units before z-normalisation.
    """

    volume_size: tuple[int, int, int] = (64, 192, 192)
    channels: tuple[int, ...] = (32, 64, 128, 256, 256)
    num_groups: int = 16
    hu_window: tuple[float, float] = (-200.0, 300.0)


@dataclass
class Seg2DSettings:
    """2D segmentation UNet (paper Fig. 8b): the standard ResNet-18 encoder and a ``segmentation_models_pytorch``
    style UNet decoder, GroupNorm instead of BatchNorm (:class:`engine.heads.SegmentationHead2D`).

    Args:
        image_size: input side in pixels (paper: 224; a multiple of 32).
        decoder_channels: UNet decoder channels, one per level (5 levels; ``segmentation_models_pytorch``'s
            default 256-128-64-32-16).
        num_groups: GroupNorm groups in encoder and decoder (paper: 16).
    """

    image_size: int = 224
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    num_groups: int = 16


class BoxActivation(str, Enum):
    """What the detection head applies to its last layer's four outputs."""

    NONE = "none"  # raw outputs are the box (the released code and weights)
    SIGMOID = "sigmoid"  # squashed into (0, 1)


@dataclass
class DetectionSettings:
    """Detection head: LayerNorm(E) -> Linear(E, hidden) -> ReLU -> LayerNorm(hidden) -> Linear(hidden, 4) = one
    normalized xyxy box per ``<DET>`` (paper section 4.2, Fig. 8; engine-notes.md, "Orchestration").

    Args:
        hidden: width of the hidden layer (paper: 256).
        box_activation: ``"none"`` (default): the raw outputs are the box, as in the released code, which trained
            them with SmoothL1 against targets in [0, 1]; converted released weights need it. ``"sigmoid"``: the
            outputs are squashed into (0, 1), an option for heads trained from scratch. Either way the loss is
            taken on the head's output and boxes are clamped to [0, 1] only when returned
            (:func:`engine.heads.detection.normalized_xyxy`).

    Raises:
        ValueError: ``box_activation`` is not one of :class:`BoxActivation`'s values.
    """

    hidden: int = 256
    box_activation: BoxActivation = BoxActivation.NONE

    def __post_init__(self) -> None:
        try:
            self.box_activation = BoxActivation(self.box_activation)
        except ValueError:
            choices = [a.value for a in BoxActivation]
            raise ValueError(f"detection.box_activation must be one of {choices}, got {self.box_activation!r}") from None


@dataclass
class LoraSettings:
    """LoRA on the LLM (paper section 4.4: r=16, alpha=16; dropout 0.1 on q_proj and v_proj, released code).

    Args:
        modules_to_save: LLM modules trained in full and saved with the adapter (peft ``modules_to_save``).
            Empty for the paper's model, whose base LM stays frozen; the learnable tiny configuration
            (:meth:`MedVersaConfig.tiny`) trains its ``lm_head``, since a random frozen head bounds every logit and
            no LoRA can fit text through it.
    """

    r: int = 16
    alpha: int = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    modules_to_save: tuple[str, ...] = ()


@dataclass
class LossWeights:
    """Weights of the loss terms.

    Args:
        language: next-token cross-entropy.
        box: SmoothL1 on normalized xyxy boxes; 100 as in the released code (engine-notes.md, "Losses"; the paper
            gives no value).
        focal, dice: segmentation terms; equal weight as in the paper (section 4.3). The released code used
            10 x focal - log(Dice).
    """

    language: float = 1.0
    box: float = 100.0
    focal: float = 1.0
    dice: float = 1.0


@dataclass
class MedVersaConfig:
    """Everything needed to rebuild a MedVersa model.

    Args:
        llm_path: folder of the causal LM (``AutoModelForCausalLM.from_pretrained``); relative paths are resolved
            against the checkpoint folder.
        hidden_size: width ``E`` of the LLM (4096 for Llama-2-7B).
        visual_grid: adapters pool each image to this grid; ``visual_grid[0] * visual_grid[1]`` visual tokens
            per image (paper: 3 x 3 = 9).
        detection: the detection head (:class:`DetectionSettings`).
        token_ids: ids of the added tokens (:data:`ADDED_TOKENS`) in the tokenizer, filled when the tokenizer is
            built; checked against the tokenizer on load.
        stop_strings: generation stops when the answer ends with one of these (the released prompt format
            ends answers with ``###``).
        max_images: most images per prompt.

    Raises:
        ValueError: impossible combinations (group counts not dividing channels, too few UNet levels for the
            volume grid, empty visual grid).
    """

    llm_path: str = "llm"
    hidden_size: int = 4096
    visual_grid: tuple[int, int] = (3, 3)
    swin: SwinSettings = field(default_factory=SwinSettings)
    unet3d: UNet3DSettings = field(default_factory=UNet3DSettings)
    seg2d: Seg2DSettings = field(default_factory=Seg2DSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    losses: LossWeights = field(default_factory=LossWeights)
    token_ids: dict[str, int] = field(default_factory=dict)
    stop_strings: tuple[str, ...] = ("###",)
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    max_images: int = 8

    def __post_init__(self) -> None:
        if self.visual_grid[0] < 1 or self.visual_grid[1] < 1:
            raise ValueError(f"visual_grid must be positive, got {self.visual_grid}")
        bad = [c for c in self.unet3d.channels if c % self.unet3d.num_groups]
        if bad:
            raise ValueError(
                f"unet3d.num_groups={self.unet3d.num_groups} does not divide channels {list(self.unet3d.channels)}"
            )
        bad = [c for c in self.seg2d.decoder_channels if c % self.seg2d.num_groups]
        if bad or 64 % self.seg2d.num_groups:
            raise ValueError(
                f"seg2d.num_groups={self.seg2d.num_groups} must divide 64 and decoder channels "
                f"{list(self.seg2d.decoder_channels)}"
            )
        if len(self.seg2d.decoder_channels) != 5:
            raise ValueError(f"seg2d.decoder_channels needs 5 levels, got {list(self.seg2d.decoder_channels)}")
        factor = 2 ** (len(self.unet3d.channels) - 1)
        if any(s % factor for s in self.unet3d.volume_size):
            raise ValueError(
                f"unet3d.volume_size {list(self.unet3d.volume_size)} must be divisible by {factor} "
                f"({len(self.unet3d.channels) - 1} max-pools)"
            )

    @property
    def num_visual_tokens(self) -> int:
        """Visual tokens per image (9 in the paper)."""
        return self.visual_grid[0] * self.visual_grid[1]

    @classmethod
    def paper_7b(cls) -> MedVersaConfig:
        """The paper's configuration: Llama-2-7B-chat (hidden 4096), Swin-B 224, 9 tokens, LoRA r=16 alpha=16;
        detection head without box activation and box loss weight 100 (released code and weights)."""
        return cls()

    @classmethod
    def tiny(cls, learnable: bool = False) -> MedVersaConfig:
        """A CPU-sized configuration for tests: hidden 32, 32-px images, a 16 x 48 x 48 volume grid.

        Args:
            learnable: a configuration whose random LM can fit text: its ``lm_head`` trains in full
                (``lora.modules_to_save``) and LoRA (r=8, alpha=16, no dropout) covers q/k/v/o. The default tiny
                model keeps the paper's rules (frozen base LM, LoRA on q/v), and its random frozen head bounds
                every logit (row norms ~0.15: the language loss cannot fall below ~4.7), so it shows the pipeline
                runs but cannot show that language training works. The paper's 7B model has a language prior
                instead (:meth:`paper_7b`, unchanged).
        """
        lora = (LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
                             modules_to_save=("lm_head",))
                if learnable else LoraSettings(r=4, alpha=4, dropout=0.0))
        return cls(
            hidden_size=32,
            swin=SwinSettings(image_size=32, patch_size=4, embed_dim=8, depths=(1, 1), num_heads=(1, 2), window_size=2),
            unet3d=UNet3DSettings(volume_size=(16, 48, 48), channels=(4, 8, 8, 8, 8), num_groups=2),
            seg2d=Seg2DSettings(image_size=32, decoder_channels=(16, 16, 16, 16, 16), num_groups=16),
            detection=DetectionSettings(hidden=16),
            lora=lora,
        )

    def to_dict(self) -> dict:
        """Plain JSON-compatible dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MedVersaConfig:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: unknown keys (a config written by another program or a typo).
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown MedVersa config keys: {unknown}")
        nested = {"swin": SwinSettings, "unet3d": UNet3DSettings, "seg2d": Seg2DSettings,
                  "detection": DetectionSettings, "lora": LoraSettings, "losses": LossWeights}
        kwargs = {}
        for name, value in data.items():
            if name in nested:
                value = nested[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` into ``directory`` (created if missing); returns the file path."""
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> MedVersaConfig:
        """Read ``config.json`` from a checkpoint folder.

        Raises:
            FileNotFoundError: no ``config.json`` in ``directory``.
        """
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no MedVersa {CONFIG_NAME} in checkpoint folder {directory}")
        return cls.from_dict(json.loads(path.read_text()))
