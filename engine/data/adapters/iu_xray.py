"""IU X-ray (Indiana University chest X-ray collection, OpenI) -> findings, impression and report samples
(paper Table 4: external validation of report generation).

Expected layout (the OpenI downloads ``NLMCXR_reports.tgz`` and ``NLMCXR_png.tgz``, unpacked)::

    ROOT/
      ecgen-radiology/1.xml ...             one report per XML: AbstractText Label=COMPARISON, INDICATION,
                                            FINDINGS, IMPRESSION; <parentImage id="CXR1_1_IM-0001-3001"> per image
      NLMCXR_png/CXR1_1_IM-0001-3001.png    one PNG per parentImage id

A report's images are all its parentImage entries in XML order (frontal and lateral); reports without images or
without findings and impression are skipped. INDICATION and COMPARISON form the clinical context.

De-identification: OpenI replaced names, dates, ages and many other words by ``XXXX`` ("There are no XXXX of a
pleural effusion.", "Normal chest x-XXXX."). A model trained on them learns to write the mark, so every sentence
holding it is dropped from answers and contexts (:func:`without_deidentified`); a section left empty is treated
as absent (no findings sample, no full report). Contexts that say nothing ("None.", "None available.", "N/A";
:data:`EMPTY_TEXTS`) are dropped too, so the context block is left out rather than reading "None.".
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from engine.data.adapters.common import AdapterError, finish, manifest_path, report_samples, require_file
from engine.data.schema import ImageRef, ImagingType, Sample
from engine.processing import format_context

SOURCE = "iu-xray"
#: The OpenI de-identification mark.
DEIDENTIFIED = "XXXX"
#: Section texts that carry no information (compared lower-case, without the final full stop).
EMPTY_TEXTS = frozenset({"none", "none available", "n/a", "na", "not available", "unavailable", "nil", "-"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
REPORTS_DIR = "ecgen-radiology"
IMAGES_DIR = "NLMCXR_png"


def read_report(path: Path) -> tuple[dict[str, str], list[str]]:
    """The AbstractText sections (label -> whitespace-collapsed text, empty ones left out) and the parentImage ids of
    one OpenI report XML.

    Raises:
        AdapterError: the XML cannot be parsed (file named).
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise AdapterError(f"malformed IU X-ray report XML {path}: {err}") from err
    sections = {}
    for node in root.iter("AbstractText"):
        text = " ".join((node.text or "").split())
        if node.get("Label") and text:
            sections[node.get("Label").upper()] = text
    return sections, [node.get("id") for node in root.iter("parentImage") if node.get("id")]


def without_deidentified(text: str | None) -> str | None:
    """``text`` without its sentences that hold :data:`DEIDENTIFIED` and without a text that says nothing
    (:data:`EMPTY_TEXTS`); ``None`` when nothing is left. Sentences end at ``.``, ``!`` or ``?`` before a space."""
    if not text:
        return None
    kept = [s for s in _SENTENCE_END.split(text.strip()) if s and DEIDENTIFIED not in s.upper()]
    kept = " ".join(kept).strip()
    return None if not kept or kept.rstrip(".").strip().lower() in EMPTY_TEXTS else kept


def build_iu_xray(root: Path, out_manifest: Path, seed: int = 0) -> int:
    """Write the IU X-ray report samples to ``out_manifest``; returns the count.

    Raises:
        AdapterError: ``ecgen-radiology/`` holds no XML, an XML is malformed, or an image it names is missing
            (path named).
    """
    root, out_manifest = Path(root), Path(out_manifest)
    reports = sorted((root / REPORTS_DIR).glob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    if not reports:
        raise AdapterError(f"IU X-ray report XMLs not found: {root / REPORTS_DIR}/*.xml")
    rng = random.Random(seed)
    samples: list[Sample] = []
    skipped: dict[str, int] = defaultdict(int)
    for path in reports:
        sections, image_names = read_report(path)
        findings, impression = (without_deidentified(sections.get(k)) for k in ("FINDINGS", "IMPRESSION"))
        if not image_names:
            skipped["no images"] += 1
            continue
        if not (findings or impression):
            skipped["no findings or impression"] += 1
            continue
        images = tuple(ImageRef(path=manifest_path(require_file(root / IMAGES_DIR / f"{name}.png", "IU X-ray image"),
                                                   out_manifest.parent),
                                modality=ImagingType.CHEST_XRAY.value) for name in image_names)
        context = format_context(indication=without_deidentified(sections.get("INDICATION")),
                                 comparison=without_deidentified(sections.get("COMPARISON")))
        samples += report_samples(f"{SOURCE}:{path.stem}", SOURCE, ImagingType.CHEST_XRAY.value, images, findings,
                                  impression, context, rng)
    return finish(samples, out_manifest, SOURCE, dict(skipped))
