"""MedVersa model: visual adapters, the multimodal backbone (encoders + adapters + LLM), and the model with
task heads and losses (paper sections 4.2-4.3, Figs. 7-8).

Images enter the prompt as ``<img{i}>`` + ``num_visual_tokens`` placeholder tokens + ``</img{i}>``; the
placeholder embeddings are replaced by adapter outputs (row-major over the 3 x 3 grid). Task tokens (``<DET>``,
``<2DSEG>``, ``<3DSEG>``) are read at their own positions in the token sequence: the last-layer hidden state
where the input token is the task token prompts the matching head. Training and inference use the same rule.

Outputs are ``transformers`` ``ModelOutput`` dataclasses (attribute, key and tuple access). Activation
checkpointing has one switch, :meth:`MedVersaModel.activation_checkpointing_enable` (the name ``transformers``
5.24's ``Trainer`` calls). The model is a plain ``nn.Module`` around a ``PreTrainedModel`` (the LLM), not a
``PreTrainedModel`` itself: its checkpoint is a base-LM folder, a peft adapter and the module weights
(:mod:`engine.checkpoint`, needed to read the released weights and to keep the 14 GB base LM out of every save),
which ``from_pretrained``/``save_pretrained`` and ``device_map`` placement do not describe.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.losses import DiceFocalLoss
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from engine.checkpointing import CheckpointedBlocks
from engine.configuration import (
    ADDED_TOKENS,
    DET_TOKEN,
    IMAGE_TOKEN,
    SEG2D_TOKEN,
    SEG3D_TOKEN,
    MedVersaConfig,
)
from engine.heads import DetectionHead, SegmentationHead2D, SegmentationHead3D
from engine.vision import SwinEncoder2D, UNetEncoder3D

IGNORE_INDEX = -100


class VisualAdapter(nn.Module):
    """Adaptive average pool to the visual grid -> LayerNorm(C) -> Linear(C, E) (paper section 4.2).

    Input a ``(N, C, h, w)`` or ``(N, C, d, h, w)`` feature map; output ``(N, T, E)`` visual tokens with
    ``T = grid[0] * grid[1]`` in row-major order. 3D maps are pooled to ``(1, grid[0], grid[1])``.
    """

    def __init__(self, in_channels: int, hidden_size: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = tuple(grid)
        self.norm = nn.LayerNorm(in_channels)
        self.proj = nn.Linear(in_channels, hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, C, [d,] h, w)`` -> ``(N, T, E)``."""
        if features.ndim == 5:
            pooled = F.adaptive_avg_pool3d(features, (1, *self.grid))
        else:
            pooled = F.adaptive_avg_pool2d(features, self.grid)
        tokens = pooled.flatten(2).transpose(1, 2)  # (N, T, C)
        return self.proj(self.norm(tokens))


def attach_lora(llm: PreTrainedModel, config: MedVersaConfig) -> PeftModel:
    """Wrap a causal LM with LoRA on ``config.lora.target_modules`` and trainable rows for the added tokens.

    The added-token rows of the input embedding (and of the LM head when it is not tied) are trainable and saved
    with the adapter (the released code froze them by accident, engine-notes.md). Resize the embeddings before
    calling this (a wrapped model cannot be resized).

    Raises:
        ValueError: ``config.token_ids`` lacks an added token, or an id is outside the LM's vocabulary.
    """
    missing = [t for t in ADDED_TOKENS if t not in config.token_ids]
    if missing:
        raise ValueError(f"config.token_ids lacks the added tokens {missing}; build them from the tokenizer first")
    vocab = llm.get_input_embeddings().num_embeddings
    ids = sorted(config.token_ids[t] for t in ADDED_TOKENS)
    if ids[-1] >= vocab:
        raise ValueError(f"added-token id {ids[-1]} is outside the LM vocabulary of {vocab}; resize embeddings first")
    trainable = {"embed_tokens": ids}
    if not llm.config.get_text_config().tie_word_embeddings and "lm_head" not in config.lora.modules_to_save:
        trainable["lm_head"] = ids
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        trainable_token_indices=trainable,
        modules_to_save=list(config.lora.modules_to_save) or None,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft 0.21 asks the model for transformers' deprecated ``is_gradient_checkpointing`` (a FutureWarning from
        # inside the two pinned libraries, nothing a user can act on); silenced here only
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(llm, lora)


def image_kinds(pixel_values_2d: torch.Tensor | None, pixel_values_3d: torch.Tensor | None,
                image_is_3d: torch.Tensor | None) -> torch.Tensor:
    """``(N,)`` bool on CPU, the kind of each image in placeholder order (see :class:`MedVersaInputs`).

    Raises:
        ValueError: ``image_is_3d`` missing while both kinds are given, or its counts differ from the images.
    """
    n2 = 0 if pixel_values_2d is None else pixel_values_2d.shape[0]
    n3 = 0 if pixel_values_3d is None else pixel_values_3d.shape[0]
    if image_is_3d is None:
        if n2 and n3:
            raise ValueError("image_is_3d is required when a batch holds both 2D images and 3D volumes")
        return torch.full((n2 + n3,), bool(n3), dtype=torch.bool)
    image_is_3d = image_is_3d.to(torch.bool).cpu()
    if int(image_is_3d.sum()) != n3 or int((~image_is_3d).sum()) != n2:
        raise ValueError(
            f"image_is_3d marks {int((~image_is_3d).sum())} 2D and {int(image_is_3d.sum())} 3D images, "
            f"but {n2} 2D images and {n3} volumes were given"
        )
    return image_is_3d


@dataclass
class MedVersaInputs:
    """One minibatch.

    Attributes:
        input_ids: ``(B, L)`` long token ids, one BOS each, image placeholders included.
        attention_mask: ``(B, L)`` 1 for real tokens, 0 for padding.
        labels: ``(B, L)`` long target ids, ``-100`` where no loss is taken (prompt, padding); ``None`` at inference.
        pixel_values_2d: ``(N2, 3, H, W)`` CLIP-normalised 2D images, or ``None``.
        pixel_values_3d: ``(N3, 1, D, H, W)`` z-normalised volumes on the model grid, or ``None``.
        image_is_3d: ``(N,)`` bool, the kind of each image in the order its placeholders appear (row-major over the
            batch); may be ``None`` when only one kind is present.
        boxes: ``(K_det, 4)`` target boxes, normalized xyxy, one per ``<DET>`` in ``input_ids`` (row-major order).
        masks_2d: ``(K_2d, 1, H, W)`` binary targets, one per ``<2DSEG>``, on the grid of the image the token
            refers to (``seg2d_image_index``).
        masks_3d: ``(K_3d, 1, D, H, W)`` binary targets, one per ``<3DSEG>``, on the grid of its volume.
        seg2d_image_index, seg3d_image_index: ``(K_2d,)`` / ``(K_3d,)`` long: for each ``<2DSEG>`` / ``<3DSEG>``
            (row-major order) the ``i`` of the ``<img{i}>`` of its row that it segments (paper 4.3, referring
            image instructions; :func:`engine.processing.referred_images` derives it from the text). ``None``, or
            ``-1`` for a token, means the row's only image of that kind (an error when it holds several).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None = None
    pixel_values_2d: torch.Tensor | None = None
    pixel_values_3d: torch.Tensor | None = None
    image_is_3d: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    masks_2d: torch.Tensor | None = None
    masks_3d: torch.Tensor | None = None
    seg2d_image_index: torch.Tensor | None = None
    seg3d_image_index: torch.Tensor | None = None


@dataclass
class BackboneOutput(ModelOutput):
    """Attributes:
    last_hidden_state: ``(B, L, E)`` after the LLM's final norm.
    logits: ``(B, L, V)`` next-token logits.
    image_rows: ``(N,)`` the batch row of each image.
    features_3d: per-level 3D UNet encoder maps of the ``N3`` volumes (deepest last), or ``None``.
    """

    last_hidden_state: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    image_rows: torch.Tensor | None = None
    features_3d: list[torch.Tensor] | None = None


@dataclass
class MedVersaOutput(ModelOutput):
    """A ``transformers`` ``ModelOutput``: ``out.loss``, ``out["loss"]``, ``out.to_tuple()`` (``None`` parts left
    out of keys and tuples).

    Attributes:
    loss: scalar total loss (weighted sum of the parts present), ``None`` without targets.
    language_loss: scalar next-token cross-entropy over ``labels != -100``.
    box_loss: scalar SmoothL1 between the head's outputs (unclamped) and the target normalized xyxy boxes; weighted
        by ``config.losses.box`` in ``loss``.
    seg2d_loss, seg3d_loss: scalar focal + Dice (equal weight by default, paper section 4.3).
    logits: ``(B, L, V)``.
    boxes: ``(K_det, 4)`` the detection head's outputs, one normalized xyxy box per ``<DET>``, unclamped (see
        :class:`engine.heads.DetectionHead`; :func:`engine.heads.normalized_xyxy` makes them valid boxes), or ``None``.
    mask_logits_2d: ``(K_2d, 1, H, W)`` or ``None``; mask_logits_3d: ``(K_3d, 1, D, H, W)`` or ``None``.
    """

    loss: torch.Tensor | None = None
    language_loss: torch.Tensor | None = None
    box_loss: torch.Tensor | None = None
    seg2d_loss: torch.Tensor | None = None
    seg3d_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    mask_logits_2d: torch.Tensor | None = None
    mask_logits_3d: torch.Tensor | None = None


class MedVersaBackbone(nn.Module):
    """Vision encoders + adapters + the (LoRA-wrapped) causal LM; splices visual tokens into the prompt.

    Args:
        config: the composite config (``token_ids`` filled).
        llm: a causal LM, usually wrapped by :func:`attach_lora`.
    """

    def __init__(self, config: MedVersaConfig, llm: PreTrainedModel | PeftModel):
        super().__init__()
        self.config = config
        self.encoder_2d = SwinEncoder2D(config.swin)
        self.encoder_3d = UNetEncoder3D(config.unet3d)
        self.adapter_2d = VisualAdapter(config.swin.out_channels, config.hidden_size, config.visual_grid)
        self.adapter_3d = VisualAdapter(config.unet3d.channels[-1], config.hidden_size, config.visual_grid)
        self.llm = llm
        self.image_token_id = config.token_ids[IMAGE_TOKEN]

    def encode_images(
        self,
        pixel_values_2d: torch.Tensor | None,
        pixel_values_3d: torch.Tensor | None,
        image_is_3d: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Visual tokens ``(N, T, E)`` in placeholder order, and the 3D encoder's per-level maps (or ``None``).

        Raises:
            ValueError: see :func:`image_kinds`.
        """
        image_is_3d = image_kinds(pixel_values_2d, pixel_values_3d, image_is_3d)
        n2, n3 = int((~image_is_3d).sum()), int(image_is_3d.sum())
        parts, features_3d = [], None
        if n2:
            parts.append(self.adapter_2d(self.encoder_2d(pixel_values_2d)))
        if n3:
            features_3d = self.encoder_3d(pixel_values_3d)
            parts.append(self.adapter_3d(features_3d[-1]))
        if not parts:
            return torch.zeros(0, self.config.num_visual_tokens, self.config.hidden_size), None
        stacked = torch.cat(parts)  # 2D first, then 3D
        order = torch.cat([torch.nonzero(~image_is_3d).flatten(), torch.nonzero(image_is_3d).flatten()])
        tokens = torch.empty_like(stacked)
        tokens[order.to(stacked.device)] = stacked
        return tokens, features_3d

    def embed(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, L, E)`` with the image placeholders replaced by ``visual_tokens`` ``(N, T, E)``.

        Raises:
            ValueError: the number of placeholder tokens differs from ``N * T``.
        """
        embeds = self.llm.get_input_embeddings()(input_ids)
        mask = input_ids == self.image_token_id
        expected = visual_tokens.shape[0] * visual_tokens.shape[1]
        if int(mask.sum()) != expected:
            raise ValueError(
                f"the prompt holds {int(mask.sum())} image placeholder tokens but {visual_tokens.shape[0]} images "
                f"give {expected} visual tokens ({self.config.num_visual_tokens} per image)"
            )
        return embeds.masked_scatter(mask[..., None], visual_tokens.to(embeds.device, embeds.dtype))

    def image_rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the batch row of each image, from the first placeholder of each image block."""
        rows = torch.nonzero(input_ids == self.image_token_id)[:, 0]
        return rows[:: self.config.num_visual_tokens]

    def forward(self, inputs: MedVersaInputs) -> BackboneOutput:
        """Run encoders, splice visual tokens, run the LLM; see :class:`BackboneOutput`."""
        visual, features_3d = self.encode_images(inputs.pixel_values_2d, inputs.pixel_values_3d, inputs.image_is_3d)
        embeds = self.embed(inputs.input_ids, visual)
        hidden = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=inputs.attention_mask,
                                        use_cache=False).last_hidden_state
        logits = self.llm.get_output_embeddings()(hidden)
        return BackboneOutput(hidden, logits, self.image_rows(inputs.input_ids), features_3d)


class MedVersaModel(nn.Module):
    """The backbone plus detection and 2D/3D segmentation heads, with the training losses (paper 4.2-4.3).

    Args:
        config: the composite config (``token_ids`` filled).
        llm: a causal LM, usually wrapped by :func:`attach_lora`.

    Raises:
        ValueError: the 2D segmentation size differs from the 2D encoder size (both read the same images).
    """

    def __init__(self, config: MedVersaConfig, llm: PreTrainedModel | PeftModel):
        super().__init__()
        if config.seg2d.image_size != config.swin.image_size:
            raise ValueError(
                f"seg2d.image_size={config.seg2d.image_size} must equal swin.image_size={config.swin.image_size}"
            )
        self.config = config
        self.backbone = MedVersaBackbone(config, llm)
        self.detection_head = DetectionHead(config.hidden_size, config.detection)
        self.seg2d_head = SegmentationHead2D(config.hidden_size, config.seg2d)
        self.seg3d_head = SegmentationHead3D(config.hidden_size, config.unet3d)
        self.seg_loss = DiceFocalLoss(sigmoid=True, lambda_dice=config.losses.dice, lambda_focal=config.losses.focal)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None,
                                        every_n_layers: int = 1, offload: bool = False) -> None:
        """Recompute activations in the backward pass instead of storing them, in training mode: the LLM's decoder
        layers (``transformers`` ``PreTrainedModel.activation_checkpointing_enable``, with ``every_n_layers`` and
        ``offload`` as documented there) and the levels of the 3D UNet encoder/decoder and of the 2D UNet
        decoder. The frozen Swin stores no activations for the backward pass, so it is left as it is. Losses and
        gradients are those without checkpointing.

        Args:
            activation_checkpointing_kwargs: passed to ``torch.utils.checkpoint.checkpoint`` (default
                ``{"use_reentrant": False}``).
        """
        kwargs = dict(activation_checkpointing_kwargs or {"use_reentrant": False})
        self.backbone.llm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs,
                                                          every_n_layers=every_n_layers, offload=offload)
        self._set_vision_checkpointing(True, functools.partial(checkpoint, **kwargs))

    def activation_checkpointing_disable(self) -> None:
        """Store activations again (the default)."""
        self.backbone.llm.activation_checkpointing_disable()
        self._set_vision_checkpointing(False, None)

    @property
    def is_activation_checkpointing(self) -> bool:
        """Whether :meth:`activation_checkpointing_enable` is in effect."""
        return self.backbone.llm.is_activation_checkpointing

    def _set_vision_checkpointing(self, enable: bool, func) -> None:
        for module in self.modules():
            if isinstance(module, CheckpointedBlocks):
                module.gradient_checkpointing = enable
                module._gradient_checkpointing_func = func

    def task_states(self, hidden: torch.Tensor, input_ids: torch.Tensor, token: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states ``(K, E)`` at every position where ``input_ids`` holds ``token``, and their rows ``(K,)``,
        in row-major order."""
        where = torch.nonzero(input_ids == self.config.token_ids[token])
        return hidden[where[:, 0], where[:, 1]], where[:, 0]

    def _segment(self, hidden, ids, token, head, image_input, image_rows, image_is_3d, image_ids, targets,
                 target_name):
        """Mask logits for every ``token`` (2D or 3D head) and, when ``targets`` are given, their focal + Dice loss.

        Returns:
            ``(mask logits or None, loss or None)``.

        Raises:
            ValueError: the number of targets differs from the number of ``token`` tokens; see
                :meth:`referred_image_index`.
        """
        logits = loss = None
        states, rows = self.task_states(hidden, ids, token)
        if states.shape[0]:
            index = self.referred_image_index(rows, image_rows, image_is_3d, token == SEG3D_TOKEN, image_ids)
            logits = head(image_input, states, index)
        if targets is not None:
            _check_count(target_name, targets.shape[0], token, states.shape[0])
            if logits is not None:
                loss = self.seg_loss(logits.float(), targets.float())
        return logits, loss

    @staticmethod
    def referred_image_index(rows: torch.Tensor, image_rows: torch.Tensor, image_is_3d: torch.Tensor, is_3d: bool,
                             image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """For ``K`` task tokens, the index among the batch's images of one kind (the order of
        ``pixel_values_2d`` or ``pixel_values_3d``) of the image each token refers to.

        Args:
            rows: ``(K,)`` the batch row of each token.
            image_rows: ``(N,)`` the batch row of every image, in placeholder order (:attr:`BackboneOutput.image_rows`).
            image_is_3d: ``(N,)`` bool, the kind of every image.
            is_3d: the kind the tokens' head reads.
            image_ids: ``(K,)`` long, the ``i`` of the ``<img{i}>`` of its row each token refers to; ``None`` or
                ``-1``: the row's only image of the kind.

        Raises:
            ValueError: ``image_ids`` of another length than ``rows``; a referred image that the row does not hold
                or of the other kind; no reference and none or several images of the kind in the row.
        """
        kind = "3D" if is_3d else "2D"
        if image_ids is not None and len(image_ids) != len(rows):
            raise ValueError(f"{len(image_ids)} {kind} image indices given for {len(rows)} {kind} segmentation tokens")
        image_rows, image_is_3d = image_rows.cpu(), image_is_3d.cpu()
        result = []
        for k, row in enumerate(rows.tolist()):
            in_row = torch.nonzero(image_rows == row).flatten()  # the row's images, <img0> first
            ref = -1 if image_ids is None else int(image_ids[k])
            if ref >= 0:
                if ref >= len(in_row):
                    raise ValueError(f"a {kind} segmentation token refers to <img{ref}> but its prompt holds "
                                     f"{len(in_row)} image(s)")
                image = int(in_row[ref])
                if bool(image_is_3d[image]) != is_3d:
                    raise ValueError(f"a {kind} segmentation token refers to <img{ref}>, which is not a {kind} image")
            else:
                of_kind = in_row[image_is_3d[in_row] == is_3d]
                if len(of_kind) == 0:
                    raise ValueError(f"a {kind} segmentation token appears in a prompt without a {kind} image")
                if len(of_kind) > 1:
                    raise ValueError(f"a {kind} segmentation token in a prompt with {len(of_kind)} {kind} images needs "
                                     f"the <img{{i}}> it refers to (seg{kind.lower()}_image_index)")
                image = int(of_kind[0])
            result.append(int((image_is_3d[:image] == is_3d).sum()))
        return torch.tensor(result, dtype=torch.long, device=rows.device)

    def forward(self, inputs: MedVersaInputs) -> MedVersaOutput:
        """Training/evaluation forward; losses are computed for the targets present in ``inputs``.

        Raises:
            ValueError: target counts differ from the task-token counts, or placeholders differ from images.
        """
        out = self.backbone(inputs)
        hidden, ids = out.last_hidden_state, inputs.input_ids
        weights = self.config.losses
        image_is_3d = image_kinds(inputs.pixel_values_2d, inputs.pixel_values_3d, inputs.image_is_3d)
        image_is_3d = image_is_3d.to(out.image_rows.device)

        language_loss = None
        if inputs.labels is not None:
            language_loss = F.cross_entropy(
                out.logits[:, :-1].flatten(0, 1).float(), inputs.labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
            )

        det_states, _ = self.task_states(hidden, ids, DET_TOKEN)
        boxes = self.detection_head(det_states) if det_states.shape[0] else None
        box_loss = None
        if inputs.boxes is not None:
            _check_count("boxes", inputs.boxes.shape[0], DET_TOKEN, det_states.shape[0])
            if boxes is not None:
                box_loss = F.smooth_l1_loss(boxes.float(), inputs.boxes.float())

        mask_logits_2d, seg2d_loss = self._segment(
            hidden, ids, SEG2D_TOKEN, self.seg2d_head, inputs.pixel_values_2d, out.image_rows, image_is_3d,
            inputs.seg2d_image_index, inputs.masks_2d, "masks_2d")
        mask_logits_3d, seg3d_loss = self._segment(
            hidden, ids, SEG3D_TOKEN, self.seg3d_head, out.features_3d, out.image_rows, image_is_3d,
            inputs.seg3d_image_index, inputs.masks_3d, "masks_3d")

        parts = [(language_loss, weights.language), (box_loss, weights.box), (seg2d_loss, 1.0), (seg3d_loss, 1.0)]
        present = [w * part for part, w in parts if part is not None]
        loss = torch.stack(present).sum() if present else None
        return MedVersaOutput(loss, language_loss, box_loss, seg2d_loss, seg3d_loss, out.logits, boxes,
                              mask_logits_2d, mask_logits_3d)


def _check_count(target: str, n_targets: int, token: str, n_tokens: int) -> None:
    if n_targets != n_tokens:
        raise ValueError(f"{n_targets} {target} targets given but the input holds {n_tokens} {token} tokens")
