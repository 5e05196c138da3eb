"""Fixtures for the real DICOM files in ../shared/data/dicom."""

import pytest


@pytest.fixture(scope="session")
def dicom_dir(shared_data):
    """../shared/data/dicom (read-only): cxr/ chest radiographs, edge/ transfer-syntax cases, ct_series/."""
    return shared_data / "dicom"


@pytest.fixture(scope="session")
def ct_series_dir(dicom_dir):
    """The 20-slice abdominal CT series (JPEG 2000 lossless, de-identified with empty UIDs)."""
    return dicom_dir / "ct_series"
