"""One training sample (paper 4.1 MedInterp, 4.3): images with their imaging type, optional clinical context,
an instruction (Table 5 template or a VQA question as written), the answer text with task tokens, and the
targets those tokens stand for (normalized xyxy boxes for ``<DET>``, 2D/3D masks for ``<2DSEG>``/``<3DSEG>``).

The layout is the JSONL manifest's (``dataclasses.asdict``; /work/team/DATA-INTERFACE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.processing import Modality, Task

#: The imaging type of paper 4.3 (domain-aware minibatches group by it); the same enum as the engine's inputs.
ImagingType = Modality

__all__ = ["BoxTarget", "ImageRef", "ImagingType", "MAX_DETECTION_CLASSES", "MaskTarget", "Sample", "Task", "ROLES", "TASK_TOKENS"]

#: Image roles: the study being interpreted, or a prior study (longitudinal comparison).
ROLES = ("current", "prior")

#: Most classes one detection instruction names (paper 4.3: "up to nine classes").
MAX_DETECTION_CLASSES = 9

#: Task tokens that need a target, in :class:`Sample` order: ``<DET>`` -> boxes, ``<2DSEG>``/``<3DSEG>`` -> masks.
TASK_TOKENS = (DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN)


@dataclass(frozen=True)
class ImageRef:
    """An input image.

    Attributes:
        path: absolute, or relative to the manifest file's folder (:func:`engine.data.manifest.read_manifest`
            makes it absolute); a PNG/JPEG/DICOM file (2D) or a NIfTI file / DICOM series folder (3D).
        modality: an :class:`ImagingType` value; the image is 3D iff ``"ct"``.
        role: ``"current"`` or ``"prior"`` (longitudinal).
    """

    path: str
    modality: str
    role: str = "current"


@dataclass(frozen=True)
class BoxTarget:
    """A detection target: the box of one ``<DET>`` in the answer.

    Attributes:
        label: class name as written before its ``<DET>``.
        xyxy: normalized ``(x0, y0, x1, y1)`` in ``[0, 1]``, ``x0 <= x1``, ``y0 <= y1``, of image ``image_index``.
        image_index: index into :attr:`Sample.images`.
    """

    label: str
    xyxy: tuple[float, float, float, float]
    image_index: int = 0


@dataclass(frozen=True)
class MaskTarget:
    """A segmentation target: the mask of one ``<2DSEG>``/``<3DSEG>`` in the answer.

    Attributes:
        path: PNG (2D) or NIfTI (3D) on the same voxel grid as image ``image_index``.
        label: target name as written in the instruction/answer.
        image_index: index into :attr:`Sample.images`.
        value: keep only pixels/voxels equal to ``value`` (multi-label masks, e.g. TotalSegmentator); ``None``:
            every nonzero pixel/voxel is foreground.
    """

    path: str
    label: str
    image_index: int = 0
    value: int | None = None


@dataclass(frozen=True)
class Sample:
    """One instruction-answer pair with its images and targets.

    Attributes:
        sample_id: unique within a manifest.
        source: dataset name, e.g. ``"mimic-cxr"``, ``"iu-xray"``, ``"ham10000"``, ``"msd"``.
        task: a :class:`Task` value.
        imaging: an :class:`ImagingType` value, shared by all images.
        images: the images, referred to as ``<img0>``, ``<img1>``, ... in the instruction.
        instruction: the question: a Table 5 wording (re-drawn at load time when ``instruction_fields`` is given,
            else used as written), or a VQA question as written.
        answer: target text with task tokens, e.g. ``"heart <DET>. nodule <N/A>."``.
        context: clinical context text (:func:`engine.processing.format_context`) or ``None``.
        boxes: one per ``<DET>`` in ``answer``, in order.
        masks: one per ``<2DSEG>``/``<3DSEG>`` in ``answer``, in order.
        instruction_fields: the Table 5 template fields (``image``, and ``target``, ``region`` or ``reference`` as
            the task needs) of a task with templates. Given, the wording is drawn anew for every iteration from
            the example's seeded generator (paper 4.3: "we choose an instruction at random from the set of
            instructions linked to the task"; :func:`engine.data.loading.draw_wording`), and ``instruction`` is
            only one stored example; ``None``: the wording is fixed as written.
        absent_classes: detection only: class names known to be absent from the image. With
            ``instruction_fields``, each iteration names up to nine classes drawn at random from the box labels and
            these, answering ``<DET>`` for present and ``<N/A>`` for absent ones (paper 4.3); ``answer`` and
            ``boxes`` then hold every present class.
    """

    sample_id: str
    source: str
    task: str
    imaging: str
    images: tuple[ImageRef, ...]
    instruction: str
    answer: str
    context: str | None = None
    boxes: tuple[BoxTarget, ...] = ()
    masks: tuple[MaskTarget, ...] = ()
    instruction_fields: dict[str, str] | None = None
    absent_classes: tuple[str, ...] = ()

    @property
    def is_3d(self) -> bool:
        """Whether the images are volumes (CT)."""
        return ImagingType(self.imaging).is_3d
