"""Engine fixtures: a tiny random checkpoint (tokenizer trained on real IU reports), real images, and a
logits processor that forces a token sequence (constrained generation, no faked hidden states)."""

import tarfile
import xml.etree.ElementTree as ET

import pytest
import torch
from transformers import LogitsProcessor

from engine.inference import MedVersa
from engine.tiny import write_tiny_checkpoint


def iu_reports(shared_data, limit):
    """``limit`` real IU reports with findings and impression, as dicts of the AbstractText sections."""
    reports = []
    with tarfile.open(shared_data / "iu" / "NLMCXR_reports.tgz") as tar:
        for member in tar:
            if not member.name.endswith(".xml"):
                continue
            root = ET.fromstring(tar.extractfile(member).read())
            parts = {t.get("Label"): (t.text or "").strip() for t in root.iter("AbstractText")}
            if parts.get("FINDINGS") and parts.get("IMPRESSION"):
                reports.append(parts)
            if len(reports) == limit:
                break
    return reports


@pytest.fixture(scope="session")
def iu_report(shared_data):
    return iu_reports(shared_data, 1)[0]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, shared_data):
    texts = [f"FINDINGS: {r['FINDINGS']} IMPRESSION: {r['IMPRESSION']}" for r in iu_reports(shared_data, 200)]
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", texts=texts, seed=0)


@pytest.fixture(scope="session")
def medversa(tiny_checkpoint):
    """Shared, read-only use only (tests that train load their own copy)."""
    return MedVersa.from_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="session")
def cxr_dicom(shared_data):
    return shared_data / "dicom" / "cxr" / "nih_siim_cr_jpegbaseline.dcm"


@pytest.fixture(scope="session")
def nifti_ct(shared_data):
    return shared_data / "nifti" / "example_ct_sm.nii.gz"


class ForceTokens(LogitsProcessor):
    """Forces generation of ``token_ids`` (one per step); generating from ``inputs_embeds``, ``input_ids``
    holds only the generated tokens, so its length is the step."""

    def __init__(self, token_ids):
        self.token_ids = list(token_ids)

    def __call__(self, input_ids, scores):
        step = min(input_ids.shape[1], len(self.token_ids) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.token_ids[step]] = 0.0
        return forced


@pytest.fixture()
def force():
    def make(tokenizer, text):
        return ForceTokens(tokenizer.encode(text, add_special_tokens=False))
    return make
