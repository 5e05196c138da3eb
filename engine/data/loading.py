"""A manifest :class:`~engine.data.schema.Sample` -> model-ready tensors, with the paper's augmentations (4.4).

Images go through the engine's own preprocessing (:mod:`engine.processing`), so training sees what inference
sees; masks go through the same spatial transform as their image (2D: resize to the model size, nearest; 3D:
orientation + resize as :func:`engine.processing.prepare_volume`, nearest).

Augmentations (``augment=True``; paper 4.4, all drawn from the given ``random.Random``):

- random crop of 50-100% of the image area (aspect 3/4-4/3), then the usual resize: 2D report, findings,
  impression, classification, VQA and longitudinal samples (each image its own crop);
- horizontal flip with probability 0.5: 2D segmentation (each image its own coin; masks flip with it);
- flip along one axis (D, H or W, uniform) with probability 0.5: 3D segmentation (masks with it);
- detection samples are flipped the same way only with ``flip_detection`` (the paper names flips for segmentation
  only; boxes follow: ``x0' = 1 - x1``, ``x1' = 1 - x0``).

Region captioning is never cropped or flipped (its box coordinates are in the instruction text), nor is a
sample with box or mask targets cropped; 3D samples of text tasks are not augmented. A sample that names a side
("left", "right" in its instruction, answer or target labels, e.g. "left lung", "right kidney") is never flipped
left-right, since the flipped target would sit on the other side than its name says: 2D such samples are not
flipped, 3D ones are flipped along D or H only (W is the patient's right-left axis on the model grid).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.configuration import DET_TOKEN, NA_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, MedVersaConfig
from engine.data.schema import MAX_DETECTION_CLASSES, MaskTarget, Sample, Task
from engine.processing import (build_prompt, instruction, load_rgb, load_volume, prepare_volume, preprocess_2d, referred_images,
                               volume_transform)

#: Tasks whose 2D images are randomly cropped (text answers without targets; paper 4.4).
CROP_TASKS = frozenset({Task.REPORT, Task.FINDINGS, Task.IMPRESSION, Task.CLASSIFICATION, Task.VQA, Task.LONGITUDINAL})
#: Tasks whose images are randomly flipped, targets with them (paper 4.4: segmentation; detection on request).
FLIP_TASKS = frozenset({Task.SEGMENTATION})
CROP_SCALE = (0.5, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
FLIP_PROBABILITY = 0.5
_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def names_a_side(sample: Sample) -> bool:
    """Whether the instruction, answer or a target label says "left" or "right" (a left-right flip would
    mislabel its targets)."""
    texts = [sample.instruction, sample.answer, *(b.label for b in sample.boxes), *(m.label for m in sample.masks)]
    return any(_SIDE.search(text) for text in texts)


@dataclass
class Example:
    """One sample ready for :func:`engine.data.collate.collate`.

    Attributes:
        sample_id, task, imaging: from the sample (for per-task loss logging).
        prompt: :func:`engine.processing.build_prompt` of the instruction with the context block.
        answer: the answer text with its task tokens.
        pixel_values_2d: ``(N2, 3, S, S)`` float32 CLIP-normalised images, ``S = config.swin.image_size``, or ``None``.
        pixel_values_3d: ``(N3, 1, D, H, W)`` float32 z-normalised volumes, ``(D, H, W) = config.unet3d.volume_size``,
            or ``None``.
        image_is_3d: ``(N,)`` bool, per image in prompt order.
        boxes: ``(K, 4)`` float32 normalized xyxy, one per ``<DET>``, or ``None``.
        masks_2d: ``(K2, 1, S, S)`` float32 in {0, 1}, one per ``<2DSEG>``, or ``None``.
        masks_3d: ``(K3, 1, D, H, W)`` float32 in {0, 1}, one per ``<3DSEG>``, or ``None``.
        mask_image_index: ``(K2,)`` or ``(K3,)`` long, the ``i`` of the ``<img{i}>`` each mask belongs to, or ``None``.
    """

    sample_id: str
    task: str
    imaging: str
    prompt: str
    answer: str
    pixel_values_2d: torch.Tensor | None
    pixel_values_3d: torch.Tensor | None
    image_is_3d: torch.Tensor
    boxes: torch.Tensor | None
    masks_2d: torch.Tensor | None
    masks_3d: torch.Tensor | None
    mask_image_index: torch.Tensor | None = None


def example_rng(seed: int, step: int, slot: int) -> random.Random:
    """The augmentation generator of the example in position ``slot`` of batch ``step``: a function of the three
    numbers only (string seeds hash with SHA-512, the same in every process), so a resumed run or a different
    number of loader workers augments identically."""
    return random.Random(f"medversa-augment:{seed}:{step}:{slot}")


def load_example(sample: Sample, config: MedVersaConfig, rng: random.Random | None = None,
                 augment: bool = False, flip_detection: bool = False) -> Example:
    """Read the images and targets of ``sample`` and build its prompt; augment when ``augment`` (see module doc;
    ``flip_detection`` also flips detection samples). With ``rng`` the wording is drawn (:func:`draw_wording`).

    Raises:
        ValueError: ``augment`` without ``rng``; a mask whose ``image_index`` is not the image its segmentation token
            refers to in the instruction (:func:`engine.processing.referred_images`, the rule the model follows); a
            mask whose shape differs from its image's; unreadable files (from :mod:`engine.processing`).
        FileNotFoundError: a missing image or mask.
    """
    if augment and rng is None:
        raise ValueError("augment=True needs a seeded random.Random")
    if rng is not None:
        sample = draw_wording(sample, rng)
    mask_image_index = _mask_image_index(sample)
    task = Task(sample.task)
    prompt = build_prompt(sample.instruction, len(sample.images), config, sample.context)
    boxes = torch.tensor([b.xyxy for b in sample.boxes], dtype=torch.float32).reshape(-1, 4)
    load = _load_3d if sample.is_3d else _load_2d
    flips = FLIP_TASKS | ({Task.DETECTION} if flip_detection else set())
    pixels, masks = load(sample, config, rng if augment else None, task, boxes, flips)
    return Example(
        sample_id=sample.sample_id, task=sample.task, imaging=sample.imaging, prompt=prompt, answer=sample.answer,
        pixel_values_2d=None if sample.is_3d else pixels, pixel_values_3d=pixels if sample.is_3d else None,
        image_is_3d=torch.full((len(sample.images),), sample.is_3d, dtype=torch.bool),
        boxes=boxes if len(sample.boxes) else None,
        masks_2d=torch.stack(masks) if masks and not sample.is_3d else None,
        masks_3d=torch.stack(masks) if masks and sample.is_3d else None,
        mask_image_index=mask_image_index if masks else None,
    )


def draw_wording(sample: Sample, rng: random.Random) -> Sample:
    """The sample as one training iteration sees it (paper 4.3): with ``instruction_fields``, an instruction drawn
    from the task's Table 5 templates; for detection also up to nine classes drawn at random from the box labels
    and ``absent_classes`` (how many uniformly from 1 to nine, which ones without repeats), named in the
    instruction in the drawn order and answered ``"cls <DET>."`` (one per box of the class, its boxes in the same
    order) or ``"cls <N/A>."``. Without ``instruction_fields`` the sample is returned unchanged.

    Both draws come from ``rng`` (:func:`example_rng`), so they are a function of (seed, batch, slot) and a resumed
    run draws the same.
    """
    if sample.instruction_fields is None:
        return sample
    fields = dict(sample.instruction_fields)
    task = Task(sample.task)
    if task is not Task.DETECTION:
        return replace(sample, instruction=instruction(task, rng=rng, **fields))
    present = list(dict.fromkeys(b.label for b in sample.boxes))
    candidates = present + [c for c in dict.fromkeys(sample.absent_classes) if c not in present]
    chosen = rng.sample(candidates, rng.randint(1, min(MAX_DETECTION_CLASSES, len(candidates))))
    boxes = tuple(box for label in chosen for box in sample.boxes if box.label == label)
    parts = []
    for label in chosen:
        count = sum(b.label == label for b in sample.boxes)
        parts += [f"{label} {DET_TOKEN}."] * count if count else [f"{label} {NA_TOKEN}."]
    answer = " ".join(parts)
    fields["target"] = ", ".join(chosen)
    return replace(sample, instruction=instruction(task, rng=rng, **fields), answer=answer, boxes=boxes)


def _mask_image_index(sample: Sample) -> torch.Tensor:
    """``(K,)`` long, the ``image_index`` of each mask, checked against the image its token refers to."""
    is_3d = [sample.is_3d] * len(sample.images)
    referred = [i for token, i in referred_images(f"{sample.instruction} {sample.answer}", is_3d)
                if token in (SEG2D_TOKEN, SEG3D_TOKEN)]
    only = 0 if len(sample.images) == 1 else -1  # no reference: the row's only image
    for mask, ref in zip(sample.masks, referred):
        if (ref if ref >= 0 else only) != mask.image_index:
            raise ValueError(f"sample {sample.sample_id}: the mask of {mask.label!r} belongs to <img{mask.image_index}> "
                             f"but its segmentation token refers to "
                             f"{f'<img{ref}>' if ref >= 0 else 'no image'} in the instruction")
    return torch.tensor([m.image_index for m in sample.masks], dtype=torch.long)


# ---------------------------------------------------------------------------------------------- 2D


def _load_2d(sample: Sample, config: MedVersaConfig, rng: random.Random | None, task: Task,
             boxes: torch.Tensor, flips: frozenset[Task]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(N, 3, S, S)`` images and ``(1, S, S)`` masks; ``boxes`` are flipped in place with their image."""
    size = config.swin.image_size
    crop = rng is not None and task in CROP_TASKS and not sample.boxes and not sample.masks
    flip = rng is not None and task in flips and not names_a_side(sample)
    images, masks = [], [None] * len(sample.masks)
    for index, ref in enumerate(sample.images):
        rgb = load_rgb(ref.path)
        if crop:
            rgb = random_crop(rgb, rng)
        image = preprocess_2d(rgb, config)
        own = [k for k, m in enumerate(sample.masks) if m.image_index == index]
        for k in own:
            masks[k] = resize_mask_2d(read_mask_2d(sample.masks[k], rgb.shape[:2]), size)
        if flip and rng.random() < FLIP_PROBABILITY:
            image = image.flip(-1)
            for k in own:
                masks[k] = masks[k].flip(-1)
            mine = torch.tensor([b.image_index == index for b in sample.boxes], dtype=torch.bool)
            boxes[mine] = torch.stack([1 - boxes[mine, 2], boxes[mine, 1], 1 - boxes[mine, 0], boxes[mine, 3]], dim=1)
        images.append(image)
    return torch.stack(images), masks


def random_crop(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """A random crop of ``rgb`` ``(H, W, 3)`` covering 50-100% of its area with aspect 3/4-4/3 (the
    ``RandomResizedCrop(scale=(0.5, 1))`` recipe; paper 4.4); the whole image when 10 draws do not fit."""
    height, width = rgb.shape[:2]
    for _ in range(10):
        area = height * width * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.randint(0, height - h), rng.randint(0, width - w)
            return rgb[top : top + h, left : left + w]
    return rgb


def read_mask_2d(mask: MaskTarget, shape: tuple[int, int]) -> np.ndarray:
    """A PNG mask as ``(H, W)`` bool (``== mask.value``, or nonzero); ``shape`` is its image's ``(H, W)``.

    Raises:
        ValueError: the mask's shape differs from ``shape``.
    """
    with Image.open(mask.path) as img:
        values = np.asarray(img)
    if values.ndim == 3:  # RGB(A) masks: any channel
        values = values.max(axis=2)
    if values.shape != tuple(shape):
        raise ValueError(f"mask {mask.path} has shape {list(values.shape)} but its image has {list(shape)}")
    return values != 0 if mask.value is None else values == mask.value


def resize_mask_2d(mask: np.ndarray, size: int) -> torch.Tensor:
    """``(H, W)`` bool -> ``(1, S, S)`` float32 {0, 1}, nearest (pixel centres, ``nearest-exact``)."""
    x = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.interpolate(x, size=(size, size), mode="nearest-exact")[0]


# ---------------------------------------------------------------------------------------------- 3D


def _load_3d(sample: Sample, config: MedVersaConfig, rng: random.Random | None, task: Task,
             boxes: torch.Tensor, flips: frozenset[Task]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(N, 1, D, H, W)`` volumes and ``(1, D, H, W)`` masks on the model grid."""
    flip = rng is not None and task in flips
    axes = (1, 2) if names_a_side(sample) else (1, 2, 3)  # (1, D, H, W): W runs right to left (SAR)
    volumes, masks = [], [None] * len(sample.masks)
    for index, ref in enumerate(sample.images):
        volume = load_volume(ref.path)
        values = prepare_volume(volume, config.unet3d).pixel_values
        own = [k for k, m in enumerate(sample.masks) if m.image_index == index]
        for k in own:
            masks[k] = prepare_mask_3d(sample.masks[k], tuple(volume.shape[1:]), config)
        if flip and rng.random() < FLIP_PROBABILITY:
            axis = rng.choice(axes)
            values = values.flip(axis)
            for k in own:
                masks[k] = masks[k].flip(axis)
        volumes.append(values)
    return torch.stack(volumes), masks


def prepare_mask_3d(mask: MaskTarget, shape: tuple[int, ...], config: MedVersaConfig) -> torch.Tensor:
    """A NIfTI mask on its volume's grid -> ``(1, D, H, W)`` float32 {0, 1} on the model grid: the volume's
    orientation and resize (:func:`engine.processing.volume_transform`, ``nearest-exact``).

    Raises:
        ValueError: the mask's voxel shape differs from its volume's ``shape``.
    """
    labels = load_volume(mask.path)
    if tuple(labels.shape[1:]) != tuple(shape):
        raise ValueError(f"mask {mask.path} has shape {list(labels.shape[1:])} but its volume has {list(shape)}")
    binary = labels != 0 if mask.value is None else labels == mask.value
    grid = volume_transform(config.unet3d, mode="nearest-exact")(binary.float())
    return grid.as_tensor().float()
