"""Fixtures for the analysis tests: the real IU chest X-ray reports read in memory from the shared tgz."""

import tarfile
import xml.etree.ElementTree as ET

import pytest


@pytest.fixture(scope="session")
def iu_reports(shared_data) -> list[dict[str, str]]:
    """All IU reports with a FINDINGS section: ``{"name", "findings", "impression"}``, read unmodified."""
    reports = []
    with tarfile.open(shared_data / "iu" / "NLMCXR_reports.tgz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            root = ET.fromstring(archive.extractfile(member).read())
            sections = {node.get("Label"): (node.text or "").strip() for node in root.iter("AbstractText")}
            if sections.get("FINDINGS"):
                reports.append({"name": member.name, "findings": sections["FINDINGS"],
                                "impression": sections.get("IMPRESSION", "")})
    return reports
