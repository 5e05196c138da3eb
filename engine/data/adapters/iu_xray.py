"""IU X-ray (Indiana University chest X-ray collection, OpenI) -> findings, impression and report samples
(paper Table 4: external validation of report generation).

Expected layout (the OpenI downloads ``NLMCXR_reports.tgz`` and ``NLMCXR_png.tgz``, unpacked)::

    ROOT/
      ecgen-radiology/1.xml ...             one report per XML: AbstractText Label=COMPARISON, INDICATION,
                                            FINDINGS, IMPRESSION; <parentImage id="CXR1_1_IM-0001-3001"> per image
      NLMCXR_png/CXR1_1_IM-0001-3001.png    one PNG per parentImage id

A report's images are all its parentImage entries in XML order (frontal and lateral); reports without images or
without findings and impression are skipped. INDICATION and COMPARISON form the clinical context.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from engine.data.adapters.common import AdapterError, finish, manifest_path, report_samples, require_file
from engine.data.schema import ImageRef, ImagingType, Sample
from engine.processing import format_context

SOURCE = "iu-xray"
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
        findings, impression = sections.get("FINDINGS"), sections.get("IMPRESSION")
        if not image_names:
            skipped["no images"] += 1
            continue
        if not (findings or impression):
            skipped["no findings or impression"] += 1
            continue
        images = tuple(ImageRef(path=manifest_path(require_file(root / IMAGES_DIR / f"{name}.png", "IU X-ray image"),
                                                   out_manifest.parent),
                                modality=ImagingType.CHEST_XRAY.value) for name in image_names)
        context = format_context(indication=sections.get("INDICATION"), comparison=sections.get("COMPARISON"))
        samples += report_samples(f"{SOURCE}:{path.stem}", SOURCE, ImagingType.CHEST_XRAY.value, images, findings,
                                  impression, context, rng)
    return finish(samples, out_manifest, SOURCE, dict(skipped))
