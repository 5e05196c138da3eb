"""Inference API: :class:`MedVersa` loads a checkpoint once and answers prompts about images with text, boxes
and masks (paper sections 4.2-4.4).

Task-token hidden states are read at the positions of those tokens in the generated ids, by one forward pass
over prompt + answer after generation; this does not depend on what ``generate`` returns in a given
transformers version (released defect 3). Every box and mask of an answer is returned (defect 5), boxes in
normalized xyxy and in pixels of the original image (defect 7), 3D masks as a volume on the input's own grid
and orientation (defects 7-8). Each box and mask belongs to the image its task token refers to: the nearest
``<img{i}>`` of the head's kind before the token in question + answer (:func:`engine.processing.referred_images`;
paper 4.3, referring image instructions), not simply the first image. The object holds no per-request state, so
one instance can serve several users.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LogitsProcessor, LogitsProcessorList

from engine.checkpoint import load_checkpoint
from engine.configuration import DET_TOKEN, IMAGE_TOKEN, NA_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.heads import normalized_xyxy
from engine.modeling import MedVersaModel
from engine.processing import (
    HEAD_TOKEN_IS_3D,
    Modality,
    PreparedVolume,
    Task,
    build_prompt,
    clean_answer,
    detect_modality,
    encode_prompt,
    load_rgb,
    load_volume,
    pad_sequences,
    prepare_volume,
    preprocess_2d,
    referred_images,
    restore_volume,
    task_of_instruction,
)

TASK_TOKENS = (DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, NA_TOKEN)


def allowed_task_tokens(task: Task | None, has_2d: bool, has_3d: bool) -> tuple[frozenset[str], int | None]:
    """The task tokens an answer may hold and how many at most (``None``: no limit), for a prompt of ``task``
    (:func:`engine.processing.task_of_instruction`; ``None`` for a free question) about 2D and/or 3D images.

    Detection: ``<DET>``/``<N/A>`` (2D images only). Segmentation: one ``<2DSEG>`` or ``<3DSEG>``, the kind of the
    images (paper 4.3: one class name per segmentation instruction). Classification, region captioning and
    longitudinal answers are text: no task token. Findings, impression and report answers, and free questions, may
    ground sentences with any head the images can serve (the drafts' findings, :mod:`engine.drafts`).
    """
    by_kind = ({DET_TOKEN, NA_TOKEN, SEG2D_TOKEN} if has_2d else set()) | ({SEG3D_TOKEN} if has_3d else set())
    if task in (None, Task.FINDINGS, Task.IMPRESSION, Task.REPORT):
        return frozenset(by_kind), None
    if task is Task.DETECTION:
        return frozenset(by_kind & {DET_TOKEN, NA_TOKEN}), None
    if task is Task.SEGMENTATION:
        return frozenset(by_kind & {SEG2D_TOKEN, SEG3D_TOKEN}), 1
    return frozenset(), 0


class TaskTokenConstraint(LogitsProcessor):
    """Generation never emits a task token its prompt does not ask for (:func:`allowed_task_tokens`): per batch
    row, the disallowed task tokens get ``-inf``, and all of them once the row holds its maximum count.

    Args:
        token_ids: ``{task token: id}`` for :data:`TASK_TOKENS`.
        allowed: per row, ``(allowed tokens, maximum count or None)``.
        prompt_length: columns of ``input_ids`` before the generated tokens (0 when generating from
            ``inputs_embeds``, where ``input_ids`` holds only the generated tokens).
    """

    def __init__(self, token_ids: dict[str, int], allowed: Sequence[tuple[frozenset[str], int | None]],
                 prompt_length: int = 0):
        self.token_ids, self.allowed, self.prompt_length = token_ids, list(allowed), prompt_length
        self.all_ids = torch.tensor([token_ids[t] for t in TASK_TOKENS])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length:]
        all_ids = self.all_ids.to(generated.device)
        used = torch.isin(generated, all_ids).sum(1).tolist()
        for row, (tokens, limit) in enumerate(self.allowed):
            banned = [self.token_ids[t] for t in TASK_TOKENS
                      if t not in tokens or (limit is not None and used[row] >= limit)]
            if banned:
                scores[row, banned] = float("-inf")
        return scores


@dataclass
class PreparedImage:
    """One input image ready for the model.

    Attributes:
        modality: the imaging type (chosen from the input or given).
        pixel_values: ``(3, S, S)`` for 2D, ``(1, D, H, W)`` for 3D.
        original_size: ``(H, W)`` in pixels of the original 2D image; for 3D the input volume's voxel shape.
        volume: for 3D, what is needed to map masks back to the input grid.
    """

    modality: Modality
    pixel_values: torch.Tensor
    original_size: tuple[int, ...]
    volume: PreparedVolume | None = None

    @property
    def is_3d(self) -> bool:
        return self.volume is not None


@dataclass
class Box:
    """One detection: ``label`` is the class name written before its ``<DET>``; ``xyxy`` normalized, ordered and
    clamped to [0, 1] (:func:`engine.heads.normalized_xyxy`);
    ``xyxy_pixels`` in pixels of the original image (x to the right, y down); ``image_index`` = i of ``<img{i}>``."""

    label: str
    xyxy: tuple[float, float, float, float]
    xyxy_pixels: tuple[float, float, float, float]
    image_index: int


@dataclass
class Mask2D:
    """A 2D mask: ``mask`` bool ``(H, W)`` on the original image's grid; ``probability`` float32 ``(H, W)``."""

    label: str
    mask: np.ndarray
    probability: np.ndarray
    image_index: int


@dataclass
class Mask3D:
    """A 3D mask: ``mask`` uint8 on the input volume's own voxel grid and axis order, ``affine`` its
    voxel-to-world (RAS, mm) matrix, as read from the input. Savable as NIfTI or, for DICOM series inputs,
    as DICOM SEG."""

    label: str
    mask: np.ndarray
    affine: np.ndarray
    image_index: int

    def save_nifti(self, path: str | Path) -> Path:
        """Write the mask as a NIfTI-1 file with the input's affine; returns the path."""
        import nibabel as nib

        nib.save(nib.Nifti1Image(self.mask.astype(np.uint8), self.affine), str(path))
        return Path(path)

    def frames_for(self, source_images: Sequence) -> np.ndarray:
        """The mask sampled (nearest voxel) on the pixel grid of each source DICOM image: ``(N, Rows, Columns)``
        bool in the order of ``source_images``. Pixel positions come from Image Position/Orientation (Patient)
        (0020,0032)/(0020,0037) and Pixel Spacing (0028,0030) (PS3.3 C.7.6.2.1.1), converted from LPS to RAS."""
        inverse = np.linalg.inv(self.affine)
        frames = []
        for ds in source_images:
            position = np.asarray(ds.ImagePositionPatient, dtype=float)
            orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
            row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
            rows, columns = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
            lps = (position[None, None] + columns[..., None] * column_spacing * orientation[None, None, :3]
                   + rows[..., None] * row_spacing * orientation[None, None, 3:])
            ras = lps * np.array([-1.0, -1.0, 1.0])
            voxels = np.rint(ras @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
            inside = np.all((voxels >= 0) & (voxels < np.array(self.mask.shape)), axis=-1)
            frame = np.zeros((ds.Rows, ds.Columns), dtype=bool)
            v = voxels[inside]
            frame[inside] = self.mask[v[:, 0], v[:, 1], v[:, 2]] > 0
            frames.append(frame)
        return np.stack(frames)

    def save_dicom_seg(self, path: str | Path, source_images: Sequence, series_number: int = 900) -> Path:
        """Write the mask as a binary DICOM Segmentation (highdicom) referencing ``source_images``, the
        ``pydicom.Dataset`` slices of the series the volume was read from; returns the path.

        Raises:
            ValueError: a source image lacks a UID the SEG must reference (SOP Class/Instance, Study, Series).
        """
        import highdicom as hd
        from pydicom.sr.codedict import codes

        sources = list(source_images)
        required = {"SOPClassUID": "(0008,0016)", "SOPInstanceUID": "(0008,0018)",
                    "StudyInstanceUID": "(0020,000D)", "SeriesInstanceUID": "(0020,000E)"}
        for ds in sources:
            for keyword, tag in required.items():
                if not ds.get(keyword):
                    raise ValueError(f"source image lacks {keyword} {tag}; a DICOM SEG must reference its sources")
        description = hd.seg.SegmentDescription(
            segment_number=1,
            segment_label=self.label or "MedVersa segmentation",
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="MedVersa", family=codes.DCM.ArtificialIntelligence, version="1"),
        )
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=self.frames_for(sources),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[description],
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="MedVersa engine",
            manufacturer_model_name="MedVersa",
            software_versions="1",
            device_serial_number="0",
            omit_empty_frames=False,
        )
        seg.save_as(str(path))
        return Path(path)


@dataclass
class GenerationResult:
    """Answer to one prompt.

    Attributes:
        text: the answer, task tokens removed unless kept, the ``###`` terminator and special tokens (BOS, EOS,
            padding, image placeholder) removed.
        raw_text: the decoded generated tokens, unchanged.
        token_ids: the generated ids up to and including the stop.
        boxes, masks_2d, masks_3d: one entry per ``<DET>``, ``<2DSEG>``, ``<3DSEG>`` in the answer, in order.
    """

    text: str
    raw_text: str
    token_ids: list[int]
    boxes: list[Box] = field(default_factory=list)
    masks_2d: list[Mask2D] = field(default_factory=list)
    masks_3d: list[Mask3D] = field(default_factory=list)


@dataclass
class Request:
    """One prompt: images (paths or prepared), the question with ``<img{i}>`` identifiers, optional context."""

    images: Sequence[str | Path | PreparedImage]
    prompt: str
    context: str | None = None


def _label_before(text: str, token: str, occurrence: int) -> str:
    """Text between the previous sentence end (or task token) and the ``occurrence``-th ``token``."""
    head = text.split(token)[: occurrence + 1]
    before = token.join(head)
    before = re.split(r"[.\n]|" + "|".join(map(re.escape, TASK_TOKENS)), before)[-1].strip()
    return re.sub(r"^the segmentation mask of\s+(.*?)\s+is$", r"\1", before, flags=re.IGNORECASE)


DTYPES = ("auto", "float32", "bfloat16")


def inference_dtype(choice: str, device: str | torch.device) -> torch.dtype | None:
    """The base LM dtype for inference: ``"auto"`` is bfloat16 on CUDA and float32 (``None``: the checkpoint's own)
    elsewhere; ``"float32"``/``"bfloat16"`` as named. Heads, adapters and encoders stay float32.

    Raises:
        ValueError: an unknown choice.
    """
    if choice not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {choice!r}")
    if choice == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else None
    return getattr(torch, choice)


class MedVersa:
    """A loaded MedVersa model with its tokenizer.

    Args:
        model: a :class:`engine.modeling.MedVersaModel` (eval mode is set).
        tokenizer: its tokenizer with the added tokens.
    """

    def __init__(self, model: MedVersaModel, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config

    @classmethod
    def from_checkpoint(cls, directory: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> MedVersa:
        """Load a checkpoint written by :func:`engine.checkpoint.save_checkpoint`."""
        model, tokenizer = load_checkpoint(directory, dtype=dtype, device=device)
        return cls(model, tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prepare_image(self, source: str | Path, modality: Modality | str | None = None) -> PreparedImage:
        """Load and transform one image; the modality is detected from the input unless given.

        Raises:
            FileNotFoundError: the path does not exist.
            ValueError: an unsupported kind of image, or a modality that does not fit the input.
        """
        modality = Modality(modality) if modality is not None else detect_modality(source)
        if modality.is_3d:
            volume = prepare_volume(load_volume(source), self.config.unet3d, clip_hu=modality is Modality.CT)
            return PreparedImage(modality, volume.pixel_values, volume.shape, volume)
        if Path(source).is_dir():
            raise ValueError(f"{source} is a folder (a DICOM series) but modality {modality.value} is 2D")
        rgb = load_rgb(source)
        return PreparedImage(modality, preprocess_2d(rgb, self.config), tuple(rgb.shape[:2]))

    def generate(self, images: Sequence[str | Path | PreparedImage], prompt: str, context: str | None = None,
                 keep_task_tokens: bool = False, constrain_task_tokens: bool = True, **generation) -> GenerationResult:
        """Answer ``prompt`` about ``images``; see :meth:`generate_batch`."""
        return self.generate_batch([Request(images, prompt, context)], keep_task_tokens, constrain_task_tokens,
                                   **generation)[0]

    @torch.no_grad()
    def generate_batch(self, requests: Sequence[Request], keep_task_tokens: bool = False,
                       constrain_task_tokens: bool = True, **generation) -> list[GenerationResult]:
        """Answer several prompts in one batch (left-padded).

        Args:
            requests: prompts with their images; ``<img{i}>`` in a prompt refers to its ``images[i]``.
            keep_task_tokens: keep ``<DET>``/``<2DSEG>``/``<3DSEG>``/``<N/A>`` in ``text``.
            constrain_task_tokens: generate only the task tokens the prompt's task and images allow
                (:class:`TaskTokenConstraint`; the task is read from the Table 5 wording of the prompt).
            generation: passed to ``transformers`` ``generate`` (``max_new_tokens``, ``do_sample``,
                ``logits_processor``, ...; ``stop_strings=None`` turns the stop strings off). By default stopping
                uses ``config.stop_strings`` on the real token ids, and EOS; the image placeholder is never generated.

        Raises:
            ValueError: image identifiers in a prompt that do not match its images, or bad images.
        """
        model, tokenizer, config = self.model, self.tokenizer, self.config
        prepared = [[im if isinstance(im, PreparedImage) else self.prepare_image(im) for im in r.images]
                    for r in requests]
        prompts = [encode_prompt(tokenizer, build_prompt(r.prompt, len(ims), config, r.context))
                   for r, ims in zip(requests, prepared)]
        device = self.device
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        prompt_ids, prompt_mask = pad_sequences(prompts, pad_id, left=True)
        prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
        flat = [im for ims in prepared for im in ims]
        is_3d = torch.tensor([im.is_3d for im in flat], dtype=torch.bool)
        dtype = next(model.backbone.adapter_2d.parameters()).dtype
        values_2d = torch.stack([im.pixel_values for im in flat if not im.is_3d]).to(device, dtype) \
            if (~is_3d).any() else None
        values_3d = torch.stack([im.pixel_values for im in flat if im.is_3d]).to(device, dtype) if is_3d.any() else None

        backbone = model.backbone
        visual, features_3d = backbone.encode_images(values_2d, values_3d, is_3d)
        embeds = backbone.embed(prompt_ids, visual)
        suppress = list(generation.pop("suppress_tokens", None) or []) + [config.token_ids[IMAGE_TOKEN]]
        processors = LogitsProcessorList(generation.pop("logits_processor", None) or [])
        if constrain_task_tokens:
            allowed = [allowed_task_tokens(task_of_instruction(r.prompt), any(not im.is_3d for im in ims),
                                           any(im.is_3d for im in ims)) for r, ims in zip(requests, prepared)]
            processors.append(TaskTokenConstraint(config.token_ids, allowed))
        options = {"max_new_tokens": 256, "stop_strings": list(config.stop_strings), "tokenizer": tokenizer,
                   "pad_token_id": pad_id, "eos_token_id": tokenizer.eos_token_id, "logits_processor": processors,
                   **generation}
        generated = backbone.llm.generate(inputs_embeds=embeds, attention_mask=prompt_mask,
                                          suppress_tokens=suppress, **options)
        answers = [self._trim(row.tolist(), pad_id, options["stop_strings"] or ()) for row in generated]

        results = []
        special = (*tokenizer.all_special_tokens, IMAGE_TOKEN)
        for ids in answers:
            raw = tokenizer.decode(ids, skip_special_tokens=False)
            results.append(GenerationResult(
                text=clean_answer(raw, TASK_TOKENS, keep_task_tokens, special), raw_text=raw, token_ids=ids))
        head_ids = [config.token_ids[t] for t in (DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN)]
        if not any(token in head_ids for ids in answers for token in ids):
            return results

        # One forward over prompt + answer; task-token states are read where the generated ids hold them.
        answer_ids, answer_mask = pad_sequences([a or [pad_id] for a in answers], pad_id)
        answer_mask[[i for i, a in enumerate(answers) if not a]] = 0
        full_ids = torch.cat([prompt_ids, answer_ids.to(device)], dim=1)
        full_mask = torch.cat([prompt_mask, answer_mask.to(device)], dim=1)
        full_embeds = backbone.embed(full_ids, visual)
        positions = (full_mask.cumsum(1) - 1).clamp_min(0)
        hidden = backbone.llm.get_decoder()(inputs_embeds=full_embeds, attention_mask=full_mask,
                                            position_ids=positions).last_hidden_state
        image_rows = backbone.image_rows(full_ids)
        valid = torch.zeros_like(full_ids, dtype=torch.bool)
        valid[:, prompt_ids.shape[1]:] = answer_mask.bool().to(device)
        task_ids = full_ids.masked_fill(~valid, pad_id)

        references = [referred_images(r.prompt + res.raw_text, [im.is_3d for im in ims])
                      for r, res, ims in zip(requests, results, prepared)]
        self._boxes(hidden, task_ids, prepared, references, results)
        self._masks_2d(hidden, task_ids, image_rows, is_3d, values_2d, prepared, references, results)
        self._masks_3d(hidden, task_ids, image_rows, is_3d, features_3d, prepared, references, results)
        return results

    def _trim(self, ids: list[int], pad_id: int, stop_strings: Sequence[str]) -> list[int]:
        """Cut a generated row after its first stop string or EOS (kept), dropping padding."""
        text = ""
        for n, token in enumerate(ids):
            if token == self.tokenizer.eos_token_id:
                return ids[: n + 1]
            text += self.tokenizer.decode([token])
            if any(text.endswith(stop) for stop in stop_strings):
                return ids[: n + 1]
        while ids and ids[-1] == pad_id:
            ids = ids[:-1]
        return ids

    def _head_inputs(self, hidden, ids, token, prepared, references):
        """For every ``token`` in the answers: its state ``(K, E)``, row ``(K,)``, the ``i`` of the ``<img{i}>`` it
        refers to ``(K,)`` (:func:`engine.processing.referred_images`; without a reference, the row's first image
        of the head's kind) and its occurrence number within its row. Tokens in rows without an image of the
        head's kind are dropped with a warning (the model answered with a task token its inputs cannot serve)."""
        states, rows = self.model.task_states(hidden, ids, token)
        is_3d = HEAD_TOKEN_IS_3D[token]
        image_ids, occurrences, counts = [], [], {}
        for row in rows.tolist():
            n = counts[row] = counts.get(row, -1) + 1
            refs = [i for t, i in references[row] if t == token]
            ref = refs[n] if n < len(refs) else -1
            if ref < 0:
                ref = next((i for i, im in enumerate(prepared[row]) if im.is_3d == is_3d), -1)
            image_ids.append(ref)
            occurrences.append(n)
        served = torch.tensor([i >= 0 for i in image_ids], dtype=torch.bool)
        if not bool(served.all()):
            warnings.warn(f"{token} generated for a prompt without a matching image; no result returned for it")
        keep = torch.nonzero(served).flatten()
        return (states[keep.to(states.device)], rows[keep.to(rows.device)],
                torch.tensor(image_ids, dtype=torch.long)[keep], [occurrences[k] for k in keep.tolist()])

    def _boxes(self, hidden, ids, prepared, references, results) -> None:
        states, rows, image_ids, occurrences = self._head_inputs(hidden, ids, DET_TOKEN, prepared, references)
        if not len(rows):
            return
        xyxy = normalized_xyxy(self.model.detection_head(states).float().cpu())
        for box, row, index, n in zip(xyxy.tolist(), rows.tolist(), image_ids.tolist(), occurrences):
            height, width = prepared[row][index].original_size[:2]
            label = _label_before(results[row].raw_text, DET_TOKEN, n)
            pixels = (box[0] * width, box[1] * height, box[2] * width, box[3] * height)
            results[row].boxes.append(Box(label, tuple(box), pixels, index))

    def _masks_2d(self, hidden, ids, image_rows, image_is_3d, values_2d, prepared, references, results) -> None:
        states, rows, image_ids, occurrences = self._head_inputs(hidden, ids, SEG2D_TOKEN, prepared, references)
        if not len(rows):
            return
        index = self.model.referred_image_index(rows, image_rows, image_is_3d, False, image_ids)
        logits = self.model.seg2d_head(values_2d, states, index).float()
        for k, (row, local, n) in enumerate(zip(rows.tolist(), image_ids.tolist(), occurrences)):
            size = prepared[row][local].original_size[:2]
            probability = torch.sigmoid(F.interpolate(logits[k : k + 1], size=size, mode="bilinear"))[0, 0].cpu()
            results[row].masks_2d.append(Mask2D(_label_before(results[row].raw_text, SEG2D_TOKEN, n),
                                                probability.numpy() > 0.5, probability.numpy(), local))

    def _masks_3d(self, hidden, ids, image_rows, image_is_3d, features_3d, prepared, references, results) -> None:
        states, rows, image_ids, occurrences = self._head_inputs(hidden, ids, SEG3D_TOKEN, prepared, references)
        if not len(rows):
            return
        index = self.model.referred_image_index(rows, image_rows, image_is_3d, True, image_ids)
        logits = self.model.seg3d_head(features_3d, states, index).float()
        for k, (row, local, n) in enumerate(zip(rows.tolist(), image_ids.tolist(), occurrences)):
            volume = prepared[row][local].volume
            probability = restore_volume(torch.sigmoid(logits[k]), volume)
            results[row].masks_3d.append(Mask3D(_label_before(results[row].raw_text, SEG3D_TOKEN, n),
                                                (probability > 0.5).astype(np.uint8), volume.affine, local))
