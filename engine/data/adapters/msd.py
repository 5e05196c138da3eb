"""Medical Segmentation Decathlon (MSD) CT tasks -> 3D segmentation samples, one per label present in a case
(paper Table 4: MSD_Liver, MSD_Spleen, MSD_Pancreas, ...).

Expected layout (one unpacked MSD task, e.g. ``Task03_Liver.tar``)::

    ROOT/
      dataset.json          {"modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
                             "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}]}
      imagesTr/liver_0.nii.gz
      labelsTr/liver_0.nii.gz   integer labels on the image grid

Each label value present in a case's label volume gives "The segmentation mask of liver is <3DSEG>." with a mask
target on the label file keeping only that value. Only CT tasks are accepted (MR tasks have no 3D imaging type here).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from engine.data.adapters.common import (AdapterError, finish, label_values, manifest_path, nifti_shape,
                                         require_file, segmentation_sample)
from engine.data.schema import ImageRef, ImagingType, MaskTarget, Sample

SOURCE = "msd"


def read_dataset_json(root: Path) -> dict:
    """The task's ``dataset.json``, checked to be a CT task with labels and training pairs.

    Raises:
        AdapterError: missing or malformed file, a non-CT modality, missing ``labels`` / ``training``, or a field of
            the wrong JSON type (a training case without ``image`` and ``label`` paths) (named).
    """
    path = require_file(root / "dataset.json", "MSD dataset.json")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdapterError(f"malformed MSD dataset.json {path}: {err}") from err
    if not isinstance(meta, dict):
        raise AdapterError(f"MSD dataset.json {path} must hold a JSON object, got {type(meta).__name__}")
    missing = [k for k in ("labels", "training") if not meta.get(k)]
    if missing:
        raise AdapterError(f"MSD dataset.json {path} lacks {missing}")
    for key, kind in (("labels", dict), ("modality", dict), ("training", list)):
        if not isinstance(meta.get(key, kind()), kind):
            raise AdapterError(f"MSD dataset.json {path}: {key} must be {'an object' if kind is dict else 'a list'}, "
                               f"got {type(meta[key]).__name__}")
    for i, case in enumerate(meta["training"]):
        if not (isinstance(case, dict) and isinstance(case.get("image"), str) and isinstance(case.get("label"), str)):
            raise AdapterError(f'MSD dataset.json {path}: training[{i}] needs "image" and "label" paths, '
                               f"got {case!r:.80}")
    modalities = set(meta.get("modality", {"0": "CT"}).values())
    if modalities != {"CT"}:
        raise AdapterError(f"MSD dataset.json {path}: modality {sorted(modalities)} is not CT; only CT tasks are 3D")
    return meta


def label_names(labels: dict, path: Path) -> dict[int, str]:
    """Label value -> target name from ``dataset.json`` ``labels``: MSD's ``{"1": "liver"}`` or nnU-Net v2's
    ``{"liver": 1}``; names lower-cased; the background (0) left out.

    Raises:
        AdapterError: a label that is neither form (file named).
    """
    names = {}
    for key, value in labels.items():
        value_first = str(key).strip().isdigit()
        number, name = (key, value) if value_first else (value, key)
        if not str(number).strip().isdigit() or not isinstance(name, str):
            raise AdapterError(f"MSD dataset.json {path}: label {key!r}: {value!r} is not value -> name")
        if int(number) != 0:
            names[int(number)] = name.strip().lower()
    return names


def build_msd(root: Path, out_manifest: Path, seed: int = 0) -> int:
    """Write the 3D segmentation samples of an MSD CT task's training cases to ``out_manifest``; returns the count.

    Raises:
        AdapterError: see :func:`read_dataset_json`; an image or label file is missing or unreadable, or a label
            volume's shape differs from its image's (both named).
    """
    root, out_manifest = Path(root), Path(out_manifest)
    meta = read_dataset_json(root)
    names = label_names(meta["labels"], root / "dataset.json")
    rng = random.Random(seed)
    samples: list[Sample] = []
    for case in meta["training"]:
        image, label = root / case["image"], root / case["label"]
        shape, label_shape = nifti_shape(image, "MSD image"), nifti_shape(label, "MSD label")
        if shape != label_shape:
            raise AdapterError(f"MSD label {label} has shape {label_shape}, its image {image} {shape}")
        images = (ImageRef(path=manifest_path(image, out_manifest.parent), modality=ImagingType.CT.value),)
        case_id = image.name.removesuffix(".gz").removesuffix(".nii")
        for value in label_values(label):
            if value not in names:
                raise AdapterError(f"MSD label {label} holds value {value}, not in the labels of "
                                   f"{root / 'dataset.json'}")
            mask = MaskTarget(path=manifest_path(label, out_manifest.parent), label=names[value], value=value)
            samples.append(segmentation_sample(f"{SOURCE}:{case_id}:{names[value]}", SOURCE, images, names[value],
                                               mask, rng))
    return finish(samples, out_manifest, SOURCE)
