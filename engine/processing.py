"""Tokenizer checks, instruction templates (paper Table 5), prompt building, and image transforms.

Prompt format of the released checkpoint (engine-notes.md): no system prompt, one BOS, then
``###Human: <img0>[T placeholders]</img0>...<context>{context}</context>{question}###Assistant:`` and the answer
`` {answer}###``. Training and inference build the prompt ids with the same function, so both see exactly one BOS
(defect 2 of the released code).

2D images: DICOM through the viewer's rendering (:func:`studyapp.dicom.display.render_frame`: Modality LUT ->
VOI LUT -> MONOCHROME1/Presentation LUT), PNG/JPEG through Pillow; then RGB, resize to the model size (aspect
not kept) and CLIP normalisation. 3D: NIfTI files and DICOM series folders through MONAI ``LoadImage``,
reoriented so that axes ``(D, H, W)`` point to (S, A, R), resampled to the model grid, HU clipped and
z-normalised over voxels above the mean. The spatial transform is kept so masks go back to the input grid.
"""

from __future__ import annotations

import enum
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImage, Orientation, Resize
from PIL import Image
from transformers import PreTrainedTokenizerBase

from engine.configuration import (
    ADDED_TOKENS,
    DET_TOKEN,
    IMAGE_TOKEN,
    NA_TOKEN,
    SEG2D_TOKEN,
    SEG3D_TOKEN,
    MedVersaConfig,
    UNet3DSettings,
)
from engine.modeling import IGNORE_INDEX

HUMAN = "###Human: "
ASSISTANT = "###Assistant:"
ANSWER_END = "###"


class Task(str, enum.Enum):
    """Tasks with instruction templates (paper Table 5). VQA questions are used as written."""

    FINDINGS = "findings"
    IMPRESSION = "impression"
    REPORT = "report"
    CLASSIFICATION = "classification"
    REGION_CAPTION = "region_caption"
    LONGITUDINAL = "longitudinal"
    DETECTION = "detection"
    SEGMENTATION = "segmentation"
    VQA = "vqa"


#: Paper Table 5. ``{image}``: the main image identifier(s) (e.g. ``<img0>``); ``{target}``: detection or
#: segmentation target; ``{region}``: box coordinates; ``{reference}``: the prior study's identifier(s).
TEMPLATES: dict[Task, tuple[str, ...]] = {
    Task.FINDINGS: (
        "Can you detail the findings observed in {image}?",
        "Kindly enumerate the findings from {image}.",
        "I'd like a breakdown of the findings from {image}.",
        "I'd like a section on the findings derived from {image}.",
        "Please write a finding section for {image}.",
        "Would you please write a finding section for {image}?",
        "Please write a section of findings for {image}.",
        "Would you please write a section of findings for {image}?",
        "How would you characterize the findings from {image}?",
        "Please list the discernible findings from {image}.",
        "Can you compile a list of all the notable findings present in {image}?",
        "Please document any findings you see in {image}.",
    ),
    Task.IMPRESSION: (
        "Can you please provide your overall impression of {image}?",
        "What's your main impression from {image}?",
        "Please draft a concise impression on {image}.",
        "Would you give a comprehensive impression based on {image}?",
        "I'm looking for an impression for {image}.",
        "Provide your diagnostic impression based on the {image}.",
        "Draft an impression for {image}.",
        "Would you please write an impression section for {image}?",
        "Summarize the impression for {image}.",
    ),
    Task.REPORT: (
        "Can you provide a radiology report for {image}?",
        "Please report {image}.",
        "Can you provide a report of {image} with findings and impression?",
        "Report {image} with findings and impression.",
        "Please write a radiology report for {image}.",
        "Please generate a radiology report for {image}.",
        "Please provide a detailed report for {image}.",
        "Can you provide a comprehensive report of {image}?",
        "Please write a radiology report for {image}.",
        "Can you give a thorough report of {image}?",
        "Could you please report {image}?",
        "Can you provide a comprehensive report for {image}?",
    ),
    Task.CLASSIFICATION: (
        "What is the diagnosis for {image}?",
        "Based on {image}, what type of lung disease is suspected?",
        "Can you identify any abnormality in {image}?",
        "What pathology is indicated by {image}?",
        "What lung disease is likely present in {image}?",
        "What are your conclusions from {image}?",
        "What is your interpretation result of {image}?",
        "What abnormalities are present in {image}?",
        "What is the differential diagnosis for the findings in {image}?",
    ),
    Task.REGION_CAPTION: (
        "Describe region {region} in {image}.",
        "Detail any abnormalities in {region} of {image}.",
        "Can you characterize the features within {region} of {image}?",
        "Please provide an analysis of the anomalies seen in {region} within {image}.",
        "Describe any pathological findings within {region} of {image}.",
        "Highlight and explain any abnormalities you detect in {region} of {image}.",
        "Identify and describe any abnormality in {region} of {image}.",
        "Could you please describe the region {region} in {image}?",
        "Would you please describe the region {region} in {image}?",
        "Give a description of the region {region} in {image}.",
    ),
    Task.LONGITUDINAL: (
        "Highlight any difference in {image} compared to the prior study {reference}.",
        "Identify any progression in {image} since the last study {reference}.",
        "Compare the current study {image} with the past one {reference}.",
        "Present any changes in {image} since the last study {reference}.",
        "Detail any progression or regression in {image} in comparison to the older study {reference}.",
        "Detect changes in {image} compared to the past study {reference}.",
        "Compare {image} with the prior study {reference} and tell me any difference.",
    ),
    Task.DETECTION: (
        "Detect any signs of {target} in {image}.",
        "Highlight the areas that indicate {target} in {image}.",
        "Show me the regions in {image} where {target} might be present.",
        "Assess {image} and mark areas consistent with {target} findings.",
        "Locate and circle any features of {target} in {image}.",
        "Compare {image} to typical {target} patterns and highlight any matches.",
        "Detect and display potential symptoms of {target} within {image}.",
        "Is there any trace of {target} in {image}? Point it out.",
        "Help me spot {target} by illuminating its markers in {image}.",
        "Search for any characteristic signs of {target} in {image}.",
        "Examine and underscore the presence of {target} in {image}.",
        "Would you please help me locate {target} in {image}?",
        "Could you please help me locate {target} in {image}?",
        "Please help me locate {target} in {image}?",
    ),
    Task.SEGMENTATION: (
        "Segment {target} in {image}.",
        "Highlight the boundaries of {target} in {image}.",
        "Isolate and show only {target} from {image}.",
        "Can you delineate {target} in {image}?",
        "Segment {target} from the given {image}.",
        "I need a clear segmentation of {target} in {image}, please.",
        "Outline the contours of {target} in {image}.",
        "Show a clear boundary around {target} in {image}.",
        "Separate {target} from the surrounding anatomy in {image}.",
        "Provide a segmented view of {target} in {image}.",
        "Please identify and segment {target} from the rest in {image}.",
        "Give me a clear cutout of {target} in {image}.",
        "Please mask everything except for {target} in {image}.",
        "Draw a boundary around {target} in {image}.",
        "Would you please help me segment {target} in {image}?",
        "Could you please help me segment {target} in {image}?",
        "Please help me segment {target} in {image}?",
    ),
}

_FIELDS = re.compile(r"\{(\w+)\}")
_IMAGE_ID = re.compile(r"<img(\d+)>")


def instruction(task: Task | str, *, image: str = "<img0>", index: int | None = None,
                rng: random.Random | None = None, **fields: str) -> str:
    """One instruction of ``task`` (paper Table 5) with its fields filled.

    Args:
        task: a :class:`Task` or its value.
        image: the main image identifier(s), e.g. ``"<img0><img1>"``.
        index: which template (0-based); when ``None``, drawn with ``rng`` (training), or the first one.
        rng: a seeded ``random.Random`` for training-time draws.
        fields: ``target`` (detection/segmentation), ``region`` (region captioning), ``reference`` (longitudinal).

    Raises:
        ValueError: unknown task, a task without templates (VQA: its questions are used as written, paper Table 5
            note), index out of range, or a field the template needs is missing.
    """
    try:
        task = Task(task)
    except ValueError as err:
        raise ValueError(f"unknown task {task!r}; known: {[t.value for t in Task]}") from err
    if task not in TEMPLATES:
        raise ValueError(f"task {task.value} has no instruction templates: its questions are used as written")
    templates = TEMPLATES[task]
    if index is None:
        index = rng.randrange(len(templates)) if rng is not None else 0
    if not 0 <= index < len(templates):
        raise ValueError(f"template index {index} out of range for task {task.value} ({len(templates)} templates)")
    template = templates[index]
    values = {"image": image, **fields}
    missing = sorted(set(_FIELDS.findall(template)) - set(values))
    if missing:
        raise ValueError(f"instruction for task {task.value} needs the field(s) {missing}")
    return template.format(**values)


def _template_pattern(template: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join("(?:.+?)" if _FIELDS.fullmatch(p) else re.escape(p) for p in parts), re.DOTALL)


_TEMPLATE_PATTERNS = [(task, _template_pattern(t)) for task, templates in TEMPLATES.items() for t in templates]


def task_of_instruction(question: str) -> Task | None:
    """The task whose Table 5 template ``question`` fills (whitespace at the ends ignored), or ``None`` (a free
    question, e.g. VQA). Detection and segmentation are tried before captioning."""
    question = question.strip()
    order = {Task.DETECTION: 0, Task.SEGMENTATION: 1}
    for task, pattern in sorted(_TEMPLATE_PATTERNS, key=lambda tp: order.get(tp[0], 2)):
        if pattern.fullmatch(question):
            return task
    return None


def format_context(age: str | None = None, sex: str | None = None, indication: str | None = None,
                   comparison: str | None = None, location: str | None = None) -> str | None:
    """Clinical context block text, ``Age:{age}.Gender:{sex}.{indication}{comparison}`` for chest X-ray and
    ``Age:..Gender:..Location:..`` for dermoscopy (released prompt format); ``None`` when all parts are empty.

    The indication and comparison end with a full stop (one is added when they end without punctuation, so
    "Cough" and "None." read "Cough.None." as the released model saw, not "CoughNone.")."""
    parts = []
    for label, value in (("Age", age), ("Gender", sex), ("Location", location)):
        if value:
            parts.append(f"{label}:{value.strip()}.")
    for text in (indication, comparison):
        if text and text.strip():
            text = text.strip()
            parts.append(text if text[-1] in ".!?:;" else f"{text}.")
    return "".join(parts) or None


def image_block(index: int, config: MedVersaConfig) -> str:
    """``<img{index}>`` + ``num_visual_tokens`` image placeholders + ``</img{index}>``."""
    return f"<img{index}>" + IMAGE_TOKEN * config.num_visual_tokens + f"</img{index}>"


def build_prompt(question: str, num_images: int, config: MedVersaConfig, context: str | None = None) -> str:
    """The released prompt format: ``###Human: <img0>..</img0>..<context>..</context>{question}###Assistant:``.

    Raises:
        ValueError: no images or more than ``config.max_images``; the question refers to an image identifier that
            has no image, or an image is never referred to; the question holds the raw placeholder token.
    """
    if not 1 <= num_images <= config.max_images:
        raise ValueError(f"a prompt needs 1 to {config.max_images} images, got {num_images}")
    if IMAGE_TOKEN in question or (context and IMAGE_TOKEN in context):
        raise ValueError(f"the question or context contains the reserved image placeholder {IMAGE_TOKEN}")
    check_image_references(question, num_images)
    blocks = "".join(image_block(i, config) for i in range(num_images))
    context_block = f"<context>{context}</context>" if context else ""
    return f"{HUMAN}{blocks}{context_block}{question}{ASSISTANT}"


def check_image_references(question: str, num_images: int) -> None:
    """Check that ``question`` refers to exactly the identifiers ``<img0>`` .. ``<img{num_images-1}>``.

    Raises:
        ValueError: an identifier without an image, or an image never referred to.
    """
    referred = {int(i) for i in _IMAGE_ID.findall(question)}
    unknown = sorted(referred - set(range(num_images)))
    if unknown:
        raise ValueError(f"the prompt refers to <img{unknown[0]}> but only {num_images} image(s) were given")
    unused = sorted(set(range(num_images)) - referred)
    if unused:
        raise ValueError(f"image <img{unused[0]}> is given but the prompt never refers to it")


#: Task tokens that prompt a vision head, and whether the image they refer to is a 3D volume.
HEAD_TOKEN_IS_3D = {DET_TOKEN: False, SEG2D_TOKEN: False, SEG3D_TOKEN: True}
_IMAGE_BLOCK = re.compile(r"<img(\d+)>(?:" + re.escape(IMAGE_TOKEN) + r")*</img\1>")
_REFERENCE_OR_TASK = re.compile(r"<img(\d+)>|" + "|".join(map(re.escape, HEAD_TOKEN_IS_3D)))


def referred_images(text: str, image_is_3d: list[bool]) -> list[tuple[str, int]]:
    """The image each head task token of ``text`` refers to ("referring image instructions", paper section 4.3).

    For every ``<DET>``, ``<2DSEG>`` and ``<3DSEG>`` of ``text`` (the question followed by the answer), in order,
    ``(token, i)``: the ``i`` of the nearest ``<img{i}>`` before it that names an image of the token's kind (2D for ``<DET>`` and
    ``<2DSEG>``, 3D for ``<3DSEG>``), or ``-1`` when there is none. The image blocks of a built prompt
    (``<img{i}>`` + placeholders + ``</img{i}>``) are not references and are skipped.

    Args:
        text: question + answer; a full prompt + answer also works.
        image_is_3d: the kind of each image ``<img0>``, ``<img1>``, ... of the prompt.
    """
    references: list[int] = []
    result = []
    for match in _REFERENCE_OR_TASK.finditer(_IMAGE_BLOCK.sub("", text)):
        if match.group(1) is not None:
            references.append(int(match.group(1)))
            continue
        is_3d = HEAD_TOKEN_IS_3D[match.group(0)]
        fitting = [i for i in references if i < len(image_is_3d) and image_is_3d[i] == is_3d]
        result.append((match.group(0), fitting[-1] if fitting else -1))
    return result


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, config: MedVersaConfig) -> None:
    """Check that the tokenizer has a BOS and all added tokens with the ids recorded in ``config.token_ids``.

    Raises:
        ValueError: naming the missing tokens or the mismatched ids.
    """
    if tokenizer.bos_token_id is None:
        raise ValueError("the tokenizer has no BOS token")
    vocab = tokenizer.get_vocab()
    missing = [t for t in ADDED_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"the tokenizer lacks the MedVersa added tokens {missing}")
    mismatched = {t: (vocab[t], config.token_ids.get(t)) for t in ADDED_TOKENS if config.token_ids.get(t) != vocab[t]}
    if mismatched:
        raise ValueError(f"added-token ids differ between tokenizer and config (tokenizer, config): {mismatched}")


def add_medversa_tokens(tokenizer: PreTrainedTokenizerBase, config: MedVersaConfig) -> dict[str, int]:
    """Add :data:`ADDED_TOKENS` (in the released order) to ``tokenizer``, record their ids in ``config.token_ids``
    and return them."""
    tokenizer.add_tokens(list(ADDED_TOKENS), special_tokens=False)
    config.token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ADDED_TOKENS}
    return dict(config.token_ids)


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Prompt ids: exactly one BOS followed by the prompt's tokens (no EOS)."""
    return [tokenizer.bos_token_id, *tokenizer.encode(prompt, add_special_tokens=False)]


def encode_example(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Training ids and labels: :func:`encode_prompt` + `` {answer}###``; labels are ``-100`` on the prompt.

    The prompt part is identical to what inference feeds the model (one BOS; released defect 2).
    """
    prompt_ids = encode_prompt(tokenizer, prompt)
    answer_ids = tokenizer.encode(f" {answer.strip()}{ANSWER_END}", add_special_tokens=False)
    return prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids


def pad_sequences(sequences: list[list[int]], pad_value: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token lists to ``(B, L)``; returns ``(ids, attention_mask)``. Left padding is for generation."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(length - len(seq), length) if left else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


#: How a task token reads when task tokens are not kept: detection answers name each class followed by
#: ``<DET>`` (present, with a box) or ``<N/A>`` (absent) (paper section 4.3); other tokens are removed.
READABLE_TASK_TOKENS = {DET_TOKEN: ": seen", NA_TOKEN: ": not seen"}


def clean_answer(text: str, task_tokens: tuple[str, ...] = (), keep_task_tokens: bool = True,
                 special_tokens: tuple[str, ...] = ()) -> str:
    """Strip the answer terminator and surrounding space; remove ``special_tokens`` (the tokenizer's BOS, EOS,
    padding and the image placeholder: none may reach a draft); unless kept, write ``task_tokens`` as
    :data:`READABLE_TASK_TOKENS` (``"heart <DET>. nodule <N/A>."`` -> ``"heart: seen. nodule: not seen."``) or remove
    them; drop control characters other than newline and tab (byte-level decoding can produce them; databases
    refuse NUL).

    The wording is never rewritten (the released post-processing turned any answer containing "mel", e.g.
    "melanocytic nevus", into "melanoma": defect 6).
    """
    text = text.split(ANSWER_END, 1)[0]
    for token in special_tokens:
        text = text.replace(token, "")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    if not keep_task_tokens:
        for token in task_tokens:
            text = re.sub(r"\s*" + re.escape(token), READABLE_TASK_TOKENS.get(token, ""), text)
    return text.strip()


# ---------------------------------------------------------------------------------------------- images


class Modality(str, enum.Enum):
    """Imaging types the engine reads."""

    CHEST_XRAY = "chest_xray"
    DERMOSCOPY = "dermoscopy"
    CT = "ct"

    @property
    def is_3d(self) -> bool:
        return self is Modality.CT


_RASTER = {".png", ".jpg", ".jpeg"}
_NIFTI = (".nii", ".nii.gz")
#: Body Part Examined (0018,0015) of a human chest: the DICOM defined term (PS3.16 Annex L).
CHEST_BODY_PARTS = {"CHEST"}
#: View Position (0018,5101) of chest radiographs, used when Body Part Examined is empty.
CHEST_VIEW_POSITIONS = {"PA", "AP", "LL", "RL", "LATERAL"}
_HUMAN_SPECIES = ("homo sapiens", "human")
_OVERRIDE = "pass the modality to MedVersa.prepare_image to read it anyway"


def _check_human(ds, path: Path) -> None:
    """Refuse a patient whose Patient Species Description (0010,2201) or Patient Species Code Sequence (0010,2202)
    names another species than Homo sapiens (veterinary DICOM, PS3.3 C.7.1.1)."""
    codes = ds.get("PatientSpeciesCodeSequence") or []
    names = [str(ds.get("PatientSpeciesDescription", "") or "").strip(),
             *(str(item.get("CodeMeaning", "")).strip() for item in codes)]
    named = "; ".join(n for n in names if n)
    if named and not any(h in named.lower() for h in _HUMAN_SPECIES):
        raise ValueError(f"{path}: the patient is not human (Patient Species {named!r}); MedVersa reads human images")


def _check_chest(ds, path: Path) -> None:
    """A radiograph must show a chest: Body Part Examined (0018,0015) ``CHEST``, or, when it is empty, a chest View
    Position (0018,5101)."""
    body = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if body in CHEST_BODY_PARTS or (not body and view in CHEST_VIEW_POSITIONS):
        return
    if body:
        raise ValueError(f"{path}: Body Part Examined (0018,0015) is {body!r}, not a human chest "
                         f"({sorted(CHEST_BODY_PARTS)}); MedVersa reads chest radiographs ({_OVERRIDE})")
    raise ValueError(f"{path}: unknown body part (Body Part Examined (0018,0015) empty, View Position (0018,5101) "
                     f"{view or 'empty'}); MedVersa reads chest radiographs ({_OVERRIDE})")


def first_series_file(path: Path) -> Path:
    """The first DICOM file (by name) of a DICOM series folder, after checking what the folder holds.

    Raises:
        ValueError: the folder holds NIfTI files (give the file itself) or no DICOM file at all.
    """
    import pydicom

    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    nifti = [p.name for p in files if p.name.lower().endswith(_NIFTI)]
    if nifti:
        raise ValueError(f"folder {path} holds NIfTI file(s) {nifti[:3]}: give the NIfTI file itself "
                         f"(a folder must hold one DICOM series)")
    for candidate in files:
        try:
            pydicom.dcmread(candidate, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        return candidate
    raise ValueError(f"folder {path} holds no DICOM file (a volume folder must hold one DICOM series)")


def detect_modality(source: str | Path) -> Modality:
    """Modality from the input. A NIfTI file -> CT; a folder -> CT when its DICOM series has Modality (0008,0060)
    CT; a DICOM file by its Modality: CT -> CT, XC (external-camera photography) -> dermoscopy, CR/DX -> chest
    X-ray when Body Part Examined (0018,0015) is ``CHEST`` (or empty with a chest View Position (0018,5101));
    PNG/JPEG -> chest X-ray when grayscale, dermoscopy when colour. Patients of another species (Patient Species
    Description / Code Sequence) are refused.

    Raises:
        ValueError: the file kind or DICOM Modality is not supported, a radiograph is not of a human chest, or a
            folder holds no DICOM series (see :func:`first_series_file`).
        FileNotFoundError: the path does not exist.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"image not found: {path}")
    name = path.name.lower()
    if name.endswith(_NIFTI):
        return Modality.CT
    if path.suffix.lower() in _RASTER:
        with Image.open(path) as img:
            return Modality.CHEST_XRAY if img.mode in ("L", "I", "I;16", "1") else Modality.DERMOSCOPY
    import pydicom

    file = first_series_file(path) if path.is_dir() else path
    try:
        ds = pydicom.dcmread(file, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError as err:
        raise ValueError(f"unsupported image kind (not PNG/JPEG, NIfTI, DICOM or a DICOM series folder): {path}") from err
    _check_human(ds, path)
    modality = str(ds.get("Modality", ""))
    if modality == "CT":
        return Modality.CT
    if path.is_dir():
        raise ValueError(f"folder {path} holds a DICOM series of Modality (0008,0060) {modality!r}; volumes must be CT")
    if modality in ("CR", "DX"):
        _check_chest(ds, path)
        return Modality.CHEST_XRAY
    if modality == "XC":
        return Modality.DERMOSCOPY
    raise ValueError(f"unsupported DICOM Modality (0008,0060) {modality!r} in {path} (supported: CR/DX chest "
                     f"radiographs, XC dermoscopy, CT)")


def load_rgb(source: str | Path) -> np.ndarray:
    """Read a 2D image as RGB ``uint8`` ``(H, W, 3)``.

    DICOM files go through the viewer's ``studyapp.dicom.display.render_frame`` (frame 0, the file's own VOI
    window: DICOM PS3.3 C.11.1-C.11.2, MONOCHROME1 inverted); PNG/JPEG through Pillow.

    Raises:
        ValueError: unsupported file kind.
    """
    path = Path(source)
    if path.suffix.lower() in _RASTER:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    import pydicom

    from studyapp.dicom.display import render_frame

    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError as err:
        raise ValueError(f"unsupported 2D image kind (not PNG/JPEG or DICOM): {path}") from err
    pixels = render_frame(ds, 0)
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels


def preprocess_2d(rgb: np.ndarray, config: MedVersaConfig) -> torch.Tensor:
    """RGB ``uint8`` ``(H, W, 3)`` -> ``(3, S, S)`` float32: bilinear resize to ``S = config.swin.image_size``
    (aspect not kept) and CLIP normalisation (engine-notes.md).

    Raises:
        ValueError: not an ``(H, W, 3)`` array.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) image, got shape {rgb.shape}")
    size = config.swin.image_size
    x = torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    mean = torch.tensor(config.image_mean)[:, None, None]
    std = torch.tensor(config.image_std)[:, None, None]
    return (x - mean) / std


@dataclass
class PreparedVolume:
    """A volume on the model grid with what is needed to map results back.

    Attributes:
        pixel_values: ``(1, D, H, W)`` float32, clipped and z-normalised, on the model grid.
        spatial: the resampled MONAI ``MetaTensor`` carrying the applied spatial operations (for inversion).
        transform: the invertible spatial transform (orientation, resize).
        affine: ``(4, 4)`` voxel-to-world (RAS, mm) affine of the input volume.
        shape: the input volume's voxel shape, in the file's own axis order.
    """

    pixel_values: torch.Tensor
    spatial: MetaTensor
    transform: Compose
    affine: np.ndarray
    shape: tuple[int, ...]


def load_volume(source: str | Path) -> MetaTensor:
    """Read a NIfTI file or a folder holding one DICOM series (MONAI ``LoadImage``) as a ``(1, X, Y, Z)``
    ``MetaTensor`` in its own orientation, with its affine (RAS, mm). DICOM values are in HU (Rescale
    Slope/Intercept applied, PS3.3 C.11.1.1.2).

    Raises:
        ValueError: the source is neither a NIfTI file nor a folder, a folder holding NIfTI files or no DICOM file
            (:func:`first_series_file`), or it cannot be read as a volume.
    """
    path = Path(source)
    if not (path.is_dir() or path.name.lower().endswith(_NIFTI)):
        raise ValueError(f"unsupported volume kind (need a NIfTI file or a DICOM series folder): {path}")
    if path.is_dir():
        first_series_file(path)
    try:
        volume = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    except Exception as err:  # MONAI raises several types for unreadable inputs
        raise ValueError(f"cannot read a volume from {path}: {err}") from err
    if volume.ndim != 4:
        raise ValueError(f"{path} is not a single-channel 3D volume (shape {tuple(volume.shape)})")
    return volume


def volume_transform(settings: UNet3DSettings, mode: str = "trilinear") -> Compose:
    """The spatial transform of :func:`prepare_volume`: reorient so that the axes ``(D, H, W)`` point to (S, A, R),
    then resize to ``settings.volume_size`` with ``mode`` (``"nearest-exact"`` for label masks)."""
    return Compose([
        Orientation(axcodes="SAR", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Resize(settings.volume_size, mode=mode),
    ])


def prepare_volume(volume: MetaTensor, settings: UNet3DSettings, clip_hu: bool = True) -> PreparedVolume:
    """Reorient so that the axes ``(D, H, W)`` point to (S, A, R) (RAS+ world, axes reversed), resample (trilinear) to ``settings.volume_size``,
    clip to ``settings.hu_window`` (CT) and z-normalise with the mean/std of the voxels above the mean
    (engine-notes.md, "CT preprocessing")."""
    transform = volume_transform(settings)
    spatial = transform(volume.float())
    values = spatial.as_tensor().clone()
    if clip_hu:
        values = values.clamp(*settings.hu_window)
    foreground = values[values > values.mean()]
    if foreground.numel() < 2:
        foreground = values.flatten()
    values = (values - foreground.mean()) / foreground.std().clamp_min(1e-6)
    return PreparedVolume(values, spatial, transform, volume.affine.numpy(), tuple(volume.shape[1:]))


def restore_volume(values: torch.Tensor, prepared: PreparedVolume) -> np.ndarray:
    """Map ``(1, D, H, W)`` values on the model grid back to the input volume's grid and orientation
    (MONAI inverse of :func:`prepare_volume`'s orientation and resize); returns ``float32`` of shape ``prepared.shape``."""
    result = MetaTensor(values.detach().float().cpu())
    result.copy_meta_from(prepared.spatial)
    restored = prepared.transform.inverse(result)
    return restored.as_tensor()[0].numpy().astype(np.float32)
