"""Samples on the real files in ../shared/data, shared by the data tests (manifest, CLI, loading)."""

import shutil

import pytest

from engine.data.schema import BoxTarget, ImageRef, MaskTarget, Sample
from engine.processing import Task, instruction


@pytest.fixture()
def derm(tmp_path, shared_data):
    """A copy of a real dermoscopy image and its lesion mask in a temp folder (relative paths)."""
    shutil.copy(shared_data / "derm" / "images" / "ISIC_0024311.jpg", tmp_path / "lesion.jpg")
    shutil.copy(shared_data / "derm" / "masks" / "ISIC_0024311.png", tmp_path / "lesion_mask.png")
    return tmp_path


def seg_2d(sample_id="derm-seg-1"):
    return Sample(sample_id=sample_id, source="ham10000", task="segmentation", imaging="dermoscopy",
                  images=(ImageRef("lesion.jpg", "dermoscopy"),),
                  instruction=instruction(Task.SEGMENTATION, target="the lesion"),
                  answer="The segmentation mask of the lesion is <2DSEG>.",
                  masks=(MaskTarget("lesion_mask.png", "lesion"),))


def det_2d(shared_data):
    return Sample(sample_id="cxr-det-1", source="chest-imagenome", task="detection", imaging="chest_xray",
                  images=(ImageRef(str(shared_data / "cxr_png" / "00000001_000.png"), "chest_xray"),),
                  instruction=instruction(Task.DETECTION, target="heart, nodule"), answer="heart <DET>. nodule <N/A>.",
                  context="Age:57.Gender:M.", boxes=(BoxTarget("heart", (0.3, 0.4, 0.7, 0.8)),))


def seg_3d(shared_data):
    nifti = shared_data / "nifti"
    return Sample(sample_id="ct-seg-1", source="totalsegmentator", task="segmentation", imaging="ct",
                  images=(ImageRef(str(nifti / "example_ct_sm.nii.gz"), "ct"),),
                  instruction=instruction(Task.SEGMENTATION, target="liver"),
                  answer="The segmentation mask of liver is <3DSEG>.",
                  masks=(MaskTarget(str(nifti / "example_seg.nii.gz"), "liver", value=5),))


def vqa(shared_data):
    return Sample(sample_id="vqa-1", source="medical-diff-vqa", task="vqa", imaging="chest_xray",
                  images=(ImageRef(str(shared_data / "dicom" / "cxr" / "nih_siim_cr_jpegbaseline.dcm"), "chest_xray"),
                          ImageRef(str(shared_data / "cxr_png" / "00000001_000.png"), "chest_xray", role="prior")),
                  instruction="What has changed in <img0> compared to <img1>?", answer="Nothing has changed.")
