"""Chest ImaGenome scene graphs on MIMIC-CXR-JPG -> anatomy and pathology detection, pathology classification and
region-captioning samples (paper 4.1).

Expected layout (PhysioNet Chest ImaGenome 1.0.0, unpacked; images from MIMIC-CXR-JPG, see
:mod:`engine.data.adapters.mimic_cxr`)::

    ROOT/
      silver_dataset/scene_graph/<dicom_id>_SceneGraph.json
          {"image_id": dicom_id, "study_id": ..., "objects": [{"bbox_name": "right lung",
            "original_x1", "original_y1", "original_x2", "original_y2" (pixels of the original image)
            or "x1", "y1", "x2", "y2" (pixels of the 224 x 224 resized image)}, ...],
           "attributes": [{"bbox_name": "right lung", "attributes": [["anatomicalfinding|yes|lung opacity", ...], ...],
                           "phrases": ["Right lower lobe opacity is seen.", ...]}]}   (one label list per phrase)
    IMAGES_ROOT/                            MIMIC-CXR-JPG (metadata csv, split csv, files/...)

Boxes become normalized xyxy: original pixel coordinates over the JPG's width and height (224-space ones over 224),
clipped to [0, 1]. Samples per image (paper 4.1, "Chest ImaGenome"):

- anatomy detection: one sample with all the image's anatomies, each "name <DET>.";
- pathology detection (anatomical findings and diseases): one sample per image; the boxes of the anatomies where
  a pathology is marked ``yes`` are its boxes ("lung opacity <DET>." once per anatomy); a pathology only marked
  ``no`` is an absent class ("lung opacity <N/A>.").

  Training names up to nine classes of a detection sample per iteration, drawn at random, with ``<N/A>`` for the
  absent ones (paper 4.3; :func:`engine.data.loading.draw_wording`);
- classification: the pathologies marked ``yes`` anywhere, sorted and comma-separated ("no finding" when the graph
  marks pathologies but none ``yes``);
- region captioning: an anatomy's box as ``{region}`` (:func:`region_text`), answered by the report sentences the
  graph grounds on that anatomy (its ``phrases``, each once, in order).

Studies follow the MIMIC-CXR split (paper: ``train`` and ``validate`` for training).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from engine.configuration import DET_TOKEN, NA_TOKEN
from engine.data.adapters.common import AdapterError, finish, image_size, manifest_path, table5
from engine.data.adapters.mimic_cxr import MimicCxrJpg
from engine.data.schema import BoxTarget, ImageRef, ImagingType, Sample
from engine.processing import Task

SOURCE = "chest-imagenome"
SCENE_GRAPHS = Path("silver_dataset") / "scene_graph"
PATHOLOGY_CATEGORIES = ("anatomicalfinding", "disease")
RESIZED = 224.0
NO_FINDING = "no finding"

Box = tuple[float, float, float, float]


def object_boxes(graph: dict, width: int, height: int) -> dict[str, Box]:
    """bbox_name -> normalized xyxy of a scene graph's objects (see the module docstring); objects without
    coordinates or with an empty box are left out."""
    boxes = {}
    for obj in graph.get("objects", []):
        if all(f"original_{k}" in obj for k in ("x1", "y1", "x2", "y2")):
            x0, y0, x1, y1 = (obj[f"original_{k}"] for k in ("x1", "y1", "x2", "y2"))
            scale = (width, height)
        elif all(k in obj for k in ("x1", "y1", "x2", "y2")):
            x0, y0, x1, y1 = (obj[k] for k in ("x1", "y1", "x2", "y2"))
            scale = (RESIZED, RESIZED)
        else:
            continue
        box = tuple(min(max(float(v) / scale[i % 2], 0.0), 1.0) for i, v in enumerate((x0, y0, x1, y1)))
        if box[2] > box[0] and box[3] > box[1] and obj.get("bbox_name"):
            boxes[obj["bbox_name"]] = box
    return boxes


def pathology_anatomies(graph: dict) -> dict[str, tuple[set[str], set[str]]]:
    """pathology name -> (anatomies where it is marked ``yes``, anatomies where it is marked ``no``), from the
    scene graph's ``category|polarity|name`` attribute labels of :data:`PATHOLOGY_CATEGORIES`."""
    found: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for entry in graph.get("attributes", []):
        anatomy = entry.get("bbox_name")
        for phrase_labels in entry.get("attributes", []):
            for label in phrase_labels:
                parts = label.split("|", 2) if isinstance(label, str) else []
                if len(parts) == 3 and parts[0] in PATHOLOGY_CATEGORIES and anatomy:
                    found[parts[2]][0 if parts[1] == "yes" else 1].add(anatomy)
    return dict(found)


def region_text(box: Box) -> str:
    """A box as written in a region-captioning instruction: normalized xyxy with two decimals,
    ``"[0.12, 0.05, 0.48, 0.71]"``."""
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def anatomy_phrases(graph: dict) -> dict[str, list[str]]:
    """bbox_name -> the report sentences the scene graph grounds on it (``phrases``), whitespace-collapsed, each
    once."""
    phrases: dict[str, list[str]] = defaultdict(list)
    for entry in graph.get("attributes", []):
        for phrase in entry.get("phrases", []):
            text = " ".join(str(phrase).split())
            if entry.get("bbox_name") and text and text not in phrases[entry["bbox_name"]]:
                phrases[entry["bbox_name"]].append(text)
    return dict(phrases)


def _detection(sample_id: str, images: tuple[ImageRef, ...], entries: list[tuple[str, Box]], absent: list[str],
               rng: random.Random) -> Sample:
    """A detection sample holding every class of the image: one ``<DET>`` per ``(class, box)`` entry, ``<N/A>`` per
    absent class; training names up to nine of them per iteration (:func:`engine.data.loading.draw_wording`)."""
    names = list(dict.fromkeys([label for label, _ in entries] + absent))
    answer = " ".join([f"{label} {DET_TOKEN}." for label, _ in entries] + [f"{label} {NA_TOKEN}." for label in absent])
    boxes = tuple(BoxTarget(label=label, xyxy=tuple(float(v) for v in box)) for label, box in entries)
    return Sample(sample_id=sample_id, source=SOURCE, task=Task.DETECTION.value, imaging=ImagingType.CHEST_XRAY.value,
                  images=images, **table5(Task.DETECTION, rng, target=", ".join(names)), answer=answer,
                  boxes=boxes, absent_classes=tuple(absent))


def build_chest_imagenome(root: Path, out_manifest: Path, images_root: Path,
                          splits: tuple[str, ...] = ("train", "validate"), seed: int = 0) -> int:
    """Write the Chest ImaGenome detection, classification and region-captioning samples of the images in
    ``splits`` to ``out_manifest``; returns the count.

    Raises:
        AdapterError: no scene graphs under ``ROOT/silver_dataset/scene_graph``, a malformed scene graph (not a JSON
            object, a coordinate not a number), a missing MIMIC-CXR-JPG metadata/split csv or a missing or unreadable
            image (path named).
    """
    root, out_manifest = Path(root), Path(out_manifest)
    graphs = sorted((root / SCENE_GRAPHS).glob("*_SceneGraph.json"))
    if not graphs:
        raise AdapterError(f"Chest ImaGenome scene graphs not found: {root / SCENE_GRAPHS}/*_SceneGraph.json")
    mimic = MimicCxrJpg(Path(images_root))
    split_of = mimic.splits()
    rng = random.Random(seed)
    samples: list[Sample] = []
    skipped: dict[str, int] = defaultdict(int)
    for path in graphs:
        try:
            graph = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise AdapterError(f"malformed Chest ImaGenome scene graph {path}: {err}") from err
        if not isinstance(graph, dict):
            raise AdapterError(f"malformed Chest ImaGenome scene graph {path}: must hold a JSON object, "
                               f"got {type(graph).__name__}")
        dicom_id = graph.get("image_id") or path.name.removesuffix("_SceneGraph.json")
        if split_of.get(mimic.study_of.get(dicom_id, "")) not in splits:
            skipped["other split or not in MIMIC-CXR-JPG"] += 1
            continue
        image = mimic.image_path(dicom_id)
        width, height = image_size(image, "MIMIC-CXR-JPG image")
        images = (ImageRef(path=manifest_path(image, out_manifest.parent), modality=ImagingType.CHEST_XRAY.value),)
        try:
            boxes = object_boxes(graph, width, height)
        except (TypeError, ValueError) as err:  # a coordinate that is not a number
            raise AdapterError(f"malformed Chest ImaGenome scene graph {path}: {err}") from err
        if not boxes:
            skipped["no boxes"] += 1
            continue
        samples.append(_detection(f"{SOURCE}:{dicom_id}:anatomy", images, [(n, boxes[n]) for n in sorted(boxes)],
                                  [], rng))
        pathologies = pathology_anatomies(graph)
        if pathologies:
            found = sorted(p for p, (positive, _) in pathologies.items() if positive)
            samples.append(Sample(sample_id=f"{SOURCE}:{dicom_id}:classification", source=SOURCE,
                                  task=Task.CLASSIFICATION.value, imaging=ImagingType.CHEST_XRAY.value, images=images,
                                  **table5(Task.CLASSIFICATION, rng),
                                  answer=", ".join(found) if found else NO_FINDING))
        for anatomy, phrases in sorted(anatomy_phrases(graph).items()):
            if anatomy in boxes:
                wording = table5(Task.REGION_CAPTION, rng, region=region_text(boxes[anatomy]))
                samples.append(Sample(sample_id=f"{SOURCE}:{dicom_id}:region:{anatomy}", source=SOURCE,
                                      task=Task.REGION_CAPTION.value, imaging=ImagingType.CHEST_XRAY.value,
                                      images=images, **wording, answer=" ".join(phrases)))
        entries, absent = [], []
        for pathology, (positive, negative) in sorted(pathologies.items()):
            located = [(pathology, boxes[a]) for a in sorted(positive) if a in boxes]
            if positive and not located:
                skipped["pathology without anatomy box"] += 1
            entries += located
            if negative and not positive:
                absent.append(pathology)
        if entries or absent:
            samples.append(_detection(f"{SOURCE}:{dicom_id}:pathology", images, entries, absent, rng))
    return finish(samples, out_manifest, SOURCE, dict(skipped))
