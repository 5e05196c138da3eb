"""Minibatches: a list of loaded examples -> one :class:`engine.modeling.MedVersaInputs`.

Each example's prompt and answer are tokenized with :func:`engine.processing.encode_example` (the same prompt ids
as inference, one BOS) and right-padded; labels are ``-100`` on the prompt and the padding. Images and targets of
all rows are concatenated in row-major order, which is the order of their placeholders and task tokens in the
batch (:class:`engine.modeling.MedVersaInputs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, MedVersaConfig
from engine.modeling import IGNORE_INDEX, MedVersaInputs
from engine.processing import encode_example, pad_sequences

if TYPE_CHECKING:
    from engine.data.loading import Example


def _cat(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    present = [p for p in parts if p is not None]
    return torch.cat(present) if present else None


def _count(target: torch.Tensor | None) -> int:
    return 0 if target is None else target.shape[0]


def collate(examples: list[Example], tokenizer: PreTrainedTokenizerBase, config: MedVersaConfig) -> MedVersaInputs:
    """Tokenize, pad and concatenate ``examples`` into one minibatch.

    Args:
        examples: loaded examples (:func:`engine.data.loading.load_example`): ``prompt``/``answer`` text,
            ``pixel_values_2d`` ``(N2, 3, S, S)``, ``pixel_values_3d`` ``(N3, 1, D, H, W)``, ``image_is_3d``
            ``(N,)`` bool, ``boxes`` ``(K, 4)`` normalized xyxy, ``masks_2d`` ``(K2, 1, S, S)``, ``masks_3d``
            ``(K3, 1, D, H, W)`` (float32, ``None`` when absent), ``mask_image_index`` (the ``<img{i}>`` of each mask).
        tokenizer: the checkpoint's tokenizer (with the added tokens).
        config: the model config (added-token ids).

    Returns:
        :class:`MedVersaInputs` with ``input_ids``/``attention_mask``/``labels`` ``(B, L)`` long, images and
        targets concatenated over the rows (``None`` where no row has any).

    Raises:
        ValueError: no examples, or an example whose answer holds a different number of ``<DET>``,
            ``<2DSEG>`` or ``<3DSEG>`` tokens than it has boxes or masks (a task token without its target).
    """
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    ids, labels = [], []
    for row, example in enumerate(examples):
        row_ids, row_labels = encode_example(tokenizer, example.prompt, example.answer)
        answer_ids = row_ids[len(row_ids) - sum(label != IGNORE_INDEX for label in row_labels):]
        for token, target, name in ((DET_TOKEN, example.boxes, "boxes"), (SEG2D_TOKEN, example.masks_2d, "masks_2d"),
                                    (SEG3D_TOKEN, example.masks_3d, "masks_3d")):
            n_tokens = answer_ids.count(config.token_ids[token])
            if n_tokens != _count(target):
                raise ValueError(f"example {row} of the batch: the answer holds {n_tokens} {token} token(s) but "
                                 f"{_count(target)} {name}; answer {example.answer!r}")
        ids.append(row_ids)
        labels.append(row_labels)
    input_ids, attention_mask = pad_sequences(ids, tokenizer.pad_token_id)
    label_ids, _ = pad_sequences(labels, IGNORE_INDEX)
    return MedVersaInputs(
        input_ids=input_ids,
        attention_mask=attention_mask,
        labels=label_ids,
        pixel_values_2d=_cat([e.pixel_values_2d for e in examples]),
        pixel_values_3d=_cat([e.pixel_values_3d for e in examples]),
        image_is_3d=torch.cat([torch.as_tensor(e.image_is_3d, dtype=torch.bool) for e in examples]),
        boxes=_cat([e.boxes for e in examples]),
        masks_2d=_cat([e.masks_2d for e in examples]),
        masks_3d=_cat([e.masks_3d for e in examples]),
        seg2d_image_index=_cat([e.mask_image_index for e in examples if e.masks_2d is not None]),
        seg3d_image_index=_cat([e.mask_image_index for e in examples if e.masks_3d is not None]),
    )
