"""Small dataset folders in their published layouts, built in temp folders from the real files in ../shared/data:
the NIH chest PNG stands in for MIMIC-CXR-JPG images, real IU reports supply report texts, the dermoscopy masks
supply real mask shapes (and hence box extents)."""

import csv
import gzip
import shutil
import tarfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def iu_xml(shared_data: Path, names: list[str], dest: Path) -> dict[str, Path]:
    """Extract the named real IU report XMLs (e.g. ``"1.xml"``) from NLMCXR_reports.tgz into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    with tarfile.open(shared_data / "iu" / "NLMCXR_reports.tgz") as tar:
        for name in names:
            out[name] = dest / name
            out[name].write_bytes(tar.extractfile(f"ecgen-radiology/{name}").read())
    return out


def iu_sections(path: Path) -> dict[str, str]:
    """AbstractText label -> text of a real IU XML, as written in the file."""
    return {t.get("Label"): (t.text or "").strip() for t in ET.parse(path).getroot().iter("AbstractText")}


def cxr_jpeg(shared_data: Path, path: Path) -> Path:
    """The real NIH chest PNG (512 x 512) re-encoded as the JPG a MIMIC-CXR-JPG image is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(shared_data / "cxr_png" / "00000001_000.png") as img:
        img.save(path, quality=95)
    return path


#: (subject_id, study_id, StudyDate, StudyTime, split, [(dicom_id, ViewPosition)])
MIMIC_STUDIES = [
    ("10000032", "50000001", "21800506", "213014.531", "train", [("d-pa-1", "PA"), ("d-lat-1", "LATERAL")]),
    ("10000032", "50000002", "21810101", "080000.000", "train", [("d-ap-2", "AP")]),
    ("10000032", "50000003", "21790101", "090000.000", "validate", [("d-lat-3", "LL")]),
    ("10000099", "50000004", "21850101", "100000.000", "test", [("d-pa-4", "PA")]),
]


def mimic_cxr_jpg(shared_data: Path, root: Path, studies=MIMIC_STUDIES) -> Path:
    """A MIMIC-CXR-JPG folder: gzipped metadata and split csvs and ``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg``."""
    source = cxr_jpeg(shared_data, root / "source.jpg")
    meta, split = [], []
    for subject, study, date, time, name, images in studies:
        for dicom_id, view in images:
            folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / f"{dicom_id}.jpg")
            meta.append([dicom_id, subject, study, "CHEST (PA AND LAT)", view, 512, 512, date, time])
            split.append([dicom_id, study, subject, name])
    source.unlink()
    for name, header, rows in (
            ("metadata", ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                          "Rows", "Columns", "StudyDate", "StudyTime"], meta),
            ("split", ["dicom_id", "study_id", "subject_id", "split"], split)):
        plain = write_csv(root / f"mimic-cxr-2.0.0-{name}.csv", header, rows)
        Path(f"{plain}.gz").write_bytes(gzip.compress(plain.read_bytes()))  # published gzipped
        plain.unlink()
    return root


def mimic_report(sections: dict[str, str]) -> str:
    """A free-text report in the MIMIC-CXR layout (headings, text wrapped at 78 columns)."""
    parts = [" " * 33 + "FINAL REPORT", " EXAMINATION:  CHEST (PA AND LAT)"]
    for label in ("INDICATION", "COMPARISON", "FINDINGS", "IMPRESSION"):
        if sections.get(label):
            body = textwrap.fill(sections[label], 78, initial_indent=" ", subsequent_indent=" ")
            parts.append(f" {label}:\n \n{body}" if label in ("FINDINGS", "IMPRESSION") else
                         f" {label}:  {sections[label]}")
    return "\n \n".join(parts) + "\n"


def real_mask(shared_data: Path, name: str, size: tuple[int, int]) -> np.ndarray:
    """A real dermoscopy lesion mask resized (nearest) to ``size`` = (width, height), as bool ``(H, W)``."""
    with Image.open(shared_data / "derm" / "masks" / f"{name}.png") as img:
        return np.asarray(img.resize(size, Image.NEAREST)) > 0


def extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel-edge extent ``(xmin, ymin, xmax + 1, ymax + 1)`` of a mask, by numpy directly."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def assert_loadable(samples) -> None:
    """Every sample turns into model inputs (engine.data.loading, tiny config, augmentations on): one image tensor per
    image, one box per <DET>, one non-empty mask per <2DSEG>/<3DSEG>."""
    import random

    from engine.configuration import MedVersaConfig
    from engine.data.loading import load_example

    config = MedVersaConfig.tiny()
    for sample in samples:
        example = load_example(sample, config, random.Random(0), augment=True)
        assert len(example.image_is_3d) == len(sample.images)
        # detection samples name a random subset of their classes per iteration: one box per drawn <DET>
        assert (0 if example.boxes is None else len(example.boxes)) == example.answer.count("<DET>")
        assert example.answer.count("<DET>") <= len(sample.boxes)
        masks = example.masks_3d if sample.is_3d else example.masks_2d
        assert (0 if masks is None else len(masks)) == len(sample.masks)
        assert masks is None or all(m.sum() > 0 for m in masks), sample.sample_id
