"""MIMIC-CXR reports with MIMIC-CXR-JPG images -> findings, impression, report and longitudinal samples (paper 4.1).

Expected layout (PhysioNet MIMIC-CXR-JPG 2.x, with the reports of MIMIC-CXR 2.x)::

    ROOT/                                   MIMIC-CXR-JPG
      mimic-cxr-2.0.0-metadata.csv[.gz]     dicom_id, subject_id, study_id, ViewPosition, StudyDate, StudyTime, ...
      mimic-cxr-2.0.0-split.csv[.gz]        dicom_id, study_id, subject_id, split (train / validate / test)
      files/p10/p10000032/s50414267/02aa804e-....jpg
    REPORTS_ROOT/                           mimic-cxr-reports.zip of MIMIC-CXR, unzipped (default: ROOT)
      files/p10/p10000032/s50414267.txt

Each study gives one frontal (ViewPosition PA or AP) and, when there is one, one lateral image (LATERAL or LL),
the first of each by dicom_id; studies without a frontal image are skipped. FINDINGS and IMPRESSION come from the
free-text report by keyword matching (CXR-RePair); INDICATION and COMPARISON form the clinical context. A study with
an earlier study of the same subject (by StudyDate, StudyTime) also gives a longitudinal sample: the current images,
then the prior study's images (role ``prior``), answered by the current impression (its findings when it has none).
The paper trains on the ``train`` and ``validate`` splits.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.adapters.common import (AdapterError, finish, first_existing, image_ids, manifest_path, read_csv, table5,
                                         read_text, report_samples, report_sections, require_file)
from engine.data.schema import ImageRef, ImagingType, Sample
from engine.processing import Task, format_context

SOURCE = "mimic-cxr"
FRONTAL_VIEWS = ("PA", "AP")
LATERAL_VIEWS = ("LATERAL", "LL")
METADATA = "mimic-cxr-2.0.0-metadata.csv"
SPLIT = "mimic-cxr-2.0.0-split.csv"


@dataclass
class Study:
    """One MIMIC-CXR study: its subject, date and time (``YYYYMMDD``, ``HHMMSS.fff``) and images
    (dicom_id -> ViewPosition)."""

    subject_id: str
    study_id: str
    date: str
    time: str
    views: dict[str, str] = field(default_factory=dict)

    def first_view(self, positions: tuple[str, ...]) -> str | None:
        """The first dicom_id (sorted) whose ViewPosition is one of ``positions``, or ``None``."""
        return next((d for d in sorted(self.views) if self.views[d] in positions), None)


class MimicCxrJpg:
    """The MIMIC-CXR-JPG image folder and its metadata table, shared by the adapters of datasets built on it
    (Chest ImaGenome, CheXmask, Medical-Diff-VQA).

    Raises:
        AdapterError: the metadata CSV is missing or lacks its columns.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        path = first_existing([self.root / METADATA, self.root / f"{METADATA}.gz"], "MIMIC-CXR-JPG metadata csv")
        rows = read_csv(path, ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime"),
                        "MIMIC-CXR-JPG metadata csv")
        self.studies: dict[str, Study] = {}
        self.study_of: dict[str, str] = {}
        for row in rows:
            study = self.studies.setdefault(row["study_id"], Study(row["subject_id"], row["study_id"],
                                                                   row["StudyDate"], row["StudyTime"]))
            study.views[row["dicom_id"]] = row["ViewPosition"].upper()
            self.study_of[row["dicom_id"]] = row["study_id"]
        self.by_subject: dict[str, list[Study]] = defaultdict(list)
        for study in sorted(self.studies.values(), key=lambda s: (s.date, s.time, s.study_id)):
            self.by_subject[study.subject_id].append(study)

    def image_path(self, dicom_id: str) -> Path:
        """``ROOT/files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg``.

        Raises:
            AdapterError: the dicom_id is not in the metadata csv, or its JPG file is missing (path named).
        """
        if dicom_id not in self.study_of:
            raise AdapterError(f"dicom_id {dicom_id} is not in the MIMIC-CXR-JPG metadata csv under {self.root}")
        study = self.studies[self.study_of[dicom_id]]
        subject = study.subject_id
        path = self.root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study.study_id}" / f"{dicom_id}.jpg"
        return require_file(path, "MIMIC-CXR-JPG image")

    def study_images(self, study_id: str, manifest_dir: Path, role: str = "current",
                     lateral: bool = True) -> tuple[ImageRef, ...]:
        """The study's first frontal image and (if ``lateral``) first lateral image, paths as written into a manifest
        in ``manifest_dir``; ``()`` without a frontal image or for an unknown study.

        Raises:
            AdapterError: a chosen image's JPG file is missing (path named).
        """
        study = self.studies.get(study_id)
        frontal = study.first_view(FRONTAL_VIEWS) if study else None
        if frontal is None:
            return ()
        chosen = [frontal] + ([d] if lateral and (d := study.first_view(LATERAL_VIEWS)) else [])
        return tuple(ImageRef(path=manifest_path(self.image_path(d), manifest_dir),
                              modality=ImagingType.CHEST_XRAY.value, role=role) for d in chosen)

    def splits(self) -> dict[str, str]:
        """study_id -> split (``train``, ``validate``, ``test``) from the official split csv.

        Raises:
            AdapterError: the split csv is missing or lacks its columns.
        """
        path = first_existing([self.root / SPLIT, self.root / f"{SPLIT}.gz"], "MIMIC-CXR-JPG split csv")
        rows = read_csv(path, ("study_id", "split"), "MIMIC-CXR-JPG split csv")
        return {row["study_id"]: row["split"] for row in rows}

    def prior_study(self, study_id: str) -> Study | None:
        """The latest earlier study (by StudyDate, StudyTime) of the same subject that has a frontal image."""
        current = self.studies[study_id]
        earlier = [s for s in self.by_subject[current.subject_id]
                   if (s.date, s.time) < (current.date, current.time) and s.first_view(FRONTAL_VIEWS)]
        return earlier[-1] if earlier else None


def report_path(reports_root: Path, study: Study) -> Path:
    """``REPORTS_ROOT/files/p{subject[:2]}/p{subject}/s{study}.txt``."""
    subject = study.subject_id
    return reports_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study.study_id}.txt"


def build_mimic_cxr(root: Path, out_manifest: Path, reports_root: Path | None = None,
                    splits: tuple[str, ...] = ("train", "validate"), longitudinal: bool = True, seed: int = 0) -> int:
    """Write the MIMIC-CXR report samples of the studies in ``splits`` to ``out_manifest``; returns the count.

    Raises:
        AdapterError: the metadata or split csv, a report file, or an image file is missing, or a report is not
            UTF-8 text (path named).
    """
    root, out_manifest = Path(root), Path(out_manifest)
    reports_root = Path(reports_root) if reports_root else root
    images = MimicCxrJpg(root)
    split_of = images.splits()
    manifest_dir = out_manifest.parent
    rng = random.Random(seed)
    samples: list[Sample] = []
    skipped: dict[str, int] = defaultdict(int)
    for study in (s for subject in sorted(images.by_subject) for s in images.by_subject[subject]):
        if split_of.get(study.study_id) not in splits:
            skipped["other split"] += 1
            continue
        current = images.study_images(study.study_id, manifest_dir)
        if not current:
            skipped["no frontal image"] += 1
            continue
        sections = report_sections(read_text(report_path(reports_root, study), "MIMIC-CXR report"))
        findings, impression = sections.get("FINDINGS"), sections.get("IMPRESSION")
        if not (findings or impression):
            skipped["no findings or impression"] += 1
            continue
        context = format_context(indication=sections.get("INDICATION"), comparison=sections.get("COMPARISON"))
        sample_id = f"{SOURCE}:s{study.study_id}"
        samples += report_samples(sample_id, SOURCE, ImagingType.CHEST_XRAY.value, current, findings, impression,
                                  context, rng)
        prior = images.prior_study(study.study_id) if longitudinal else None
        if prior is not None:
            before = images.study_images(prior.study_id, manifest_dir, role="prior")
            samples.append(Sample(
                sample_id=f"{sample_id}:longitudinal", source=SOURCE, task=Task.LONGITUDINAL.value,
                imaging=ImagingType.CHEST_XRAY.value, images=current + before,
                **table5(Task.LONGITUDINAL, rng, image=image_ids(len(current)),
                         reference=image_ids(len(before), start=len(current))),
                answer=impression or findings, context=context))
    return finish(samples, out_manifest, SOURCE, dict(skipped))
