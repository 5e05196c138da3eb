"""Medical-Diff-VQA question-answer pairs on MIMIC-CXR-JPG -> open-ended VQA and longitudinal (difference) samples
(paper 4.1).

Expected layout (PhysioNet medical-diff-vqa 1.0.0; images from MIMIC-CXR-JPG, see
:mod:`engine.data.adapters.mimic_cxr`)::

    ROOT/
      mimic_pair_questions.csv      study_id, subject_id, ref_id, question_type, question, answer[, split]
    IMAGES_ROOT/                    MIMIC-CXR-JPG (metadata csv, split csv, files/...)

``study_id`` is the main (current) study and ``ref_id`` the reference (earlier) study. A ``difference`` question
becomes a longitudinal sample: the main study's frontal and lateral images, then the reference study's (role
``prior``), the instruction drawn from the Table 5 longitudinal templates, the answer as written. Every other
question type (abnormality, presence, view, location, level, type) becomes a VQA sample on the main study's frontal
image, the question used as written after the image identifier (paper Table 5 note). Rows are kept by the csv's
``split`` column, or without one by the MIMIC-CXR split of ``study_id``; rows whose studies have no frontal image
in MIMIC-CXR-JPG are skipped.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from engine.data.adapters.common import finish, image_ids, read_csv, table5
from engine.data.adapters.mimic_cxr import MimicCxrJpg
from engine.data.schema import ImagingType, Sample
from engine.processing import Task

SOURCE = "medical-diff-vqa"
QUESTIONS = "mimic_pair_questions.csv"
DIFFERENCE = "difference"


def build_medical_diff_vqa(root: Path, out_manifest: Path, images_root: Path,
                           splits: tuple[str, ...] = ("train", "val", "validate"), seed: int = 0) -> int:
    """Write the Medical-Diff-VQA samples of the rows in ``splits`` to ``out_manifest``; returns the count.

    Raises:
        AdapterError: the question csv or the MIMIC-CXR-JPG metadata/split csv is missing or lacks columns, or an
            image is missing (path named).
    """
    root, out_manifest = Path(root), Path(out_manifest)
    rows = read_csv(root / QUESTIONS, ("study_id", "subject_id", "ref_id", "question_type", "question", "answer"),
                    "Medical-Diff-VQA question csv")
    mimic = MimicCxrJpg(Path(images_root))
    split_of = None if rows and "split" in rows[0] else mimic.splits()
    manifest_dir = out_manifest.parent
    rng = random.Random(seed)
    samples: list[Sample] = []
    skipped: dict[str, int] = defaultdict(int)
    for line, row in enumerate(rows, start=2):
        split = row["split"] if split_of is None else split_of.get(row["study_id"])
        if split not in splits:
            skipped["other split"] += 1
            continue
        difference = row["question_type"] == DIFFERENCE
        current = mimic.study_images(row["study_id"], manifest_dir, lateral=difference)
        reference = mimic.study_images(row["ref_id"], manifest_dir, role="prior") if difference else ()
        if not current or (difference and not reference):
            skipped["study without frontal image"] += 1
            continue
        if difference:
            task, images = Task.LONGITUDINAL.value, current + reference
            wording = table5(Task.LONGITUDINAL, rng, image=image_ids(len(current)),
                             reference=image_ids(len(reference), start=len(current)))
        else:
            task, images = Task.VQA.value, current
            wording = {"instruction": f"{image_ids(1)} {row['question']}"}
        samples.append(Sample(sample_id=f"{SOURCE}:{line}", source=SOURCE, task=task,
                              imaging=ImagingType.CHEST_XRAY.value, images=images, **wording,
                              answer=row["answer"]))
    return finish(samples, out_manifest, SOURCE, dict(skipped))
