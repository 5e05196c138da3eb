"""MSD and TotalSegmentator adapters on folders in their published layouts, built from the real CT NIfTI and its
TotalSegmentator organ mask (label 5 liver, 1 spleen)."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from engine.data.adapters.common import AdapterError
from engine.data.adapters.msd import build_msd
from engine.data.adapters.totalsegmentator import build_totalsegmentator
from engine.data.manifest import read_manifest
from engine.processing import load_volume
from tests.engine.adapter_layouts import assert_loadable, write_csv

LIVER, SPLEEN = 5, 1


@pytest.fixture(scope="module")
def ct(shared_data):
    seg = nib.load(shared_data / "nifti" / "example_seg.nii.gz")
    return shared_data / "nifti" / "example_ct_sm.nii.gz", np.asarray(seg.dataobj), seg.affine


def save(array, affine, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.uint8), affine), path)
    return path


@pytest.fixture()
def msd(tmp_path, ct):
    image, labels, affine = ct
    root = tmp_path / "Task03_Liver"
    (root / "imagesTr").mkdir(parents=True)
    shutil.copy(image, root / "imagesTr" / "liver_0.nii.gz")
    save((labels == LIVER) * 1 + (labels == SPLEEN) * 2, affine, root / "labelsTr" / "liver_0.nii.gz")
    shutil.copy(image, root / "imagesTr" / "liver_1.nii.gz")
    save((labels == SPLEEN) * 2, affine, root / "labelsTr" / "liver_1.nii.gz")
    meta = {"name": "Liver", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "spleen"},
            "numTraining": 2, "training": [{"image": f"./imagesTr/liver_{i}.nii.gz",
                                            "label": f"./labelsTr/liver_{i}.nii.gz"} for i in (0, 1)]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root, meta


def test_msd_samples(msd, tmp_path, ct):
    root, _ = msd
    out = tmp_path / "msd.jsonl"
    assert build_msd(root, out) == 3  # case 0: liver, spleen; case 1: spleen only
    samples = {s.sample_id: s for s in read_manifest(out)}
    assert_loadable(samples.values())
    liver = samples["msd:liver_0:liver"]
    assert liver.answer == "The segmentation mask of liver is <3DSEG>." and liver.imaging == "ct"
    assert (liver.masks[0].label, liver.masks[0].value) == ("liver", 1)
    assert set(samples) == {"msd:liver_0:liver", "msd:liver_0:spleen", "msd:liver_1:spleen"}
    volume = np.asarray(nib.load(liver.masks[0].path).dataobj)
    assert np.array_equal(volume == liver.masks[0].value, ct[1] == LIVER)
    assert tuple(load_volume(liver.images[0].path).shape) == (1, 122, 101, 30)


def test_msd_bad_layouts(msd, tmp_path, ct):
    root, meta = msd
    out = tmp_path / "o.jsonl"
    save(np.zeros((4, 4, 4)), ct[2], root / "labelsTr" / "liver_1.nii.gz")
    with pytest.raises(AdapterError, match=r"MSD label .*liver_1\.nii\.gz has shape \(4, 4, 4\), its image "
                                           r".*liver_1\.nii\.gz \(122, 101, 30\)"):
        build_msd(root, out)
    (root / "imagesTr" / "liver_1.nii.gz").unlink()
    with pytest.raises(AdapterError, match=r"MSD image not found: .*imagesTr/liver_1\.nii\.gz"):
        build_msd(root, out)
    (root / "dataset.json").write_text(json.dumps({**meta, "labels": {"background": 0, "liver": 1, "spleen": 2}}))
    with pytest.raises(AdapterError, match=r"MSD image not found"):  # nnU-Net v2 label form read as well
        build_msd(root, out)
    (root / "dataset.json").write_text(json.dumps({**meta, "labels": {"1": ["liver"]}}))
    with pytest.raises(AdapterError, match=r"label '1': \['liver'\] is not value -> name"):
        build_msd(root, out)
    (root / "dataset.json").write_text(json.dumps({**meta, "modality": {"0": "T2", "1": "ADC"}}))
    with pytest.raises(AdapterError, match=r"modality \['ADC', 'T2'\] is not CT"):
        build_msd(root, out)
    (root / "dataset.json").unlink()
    with pytest.raises(AdapterError, match=r"MSD dataset\.json not found: .*Task03_Liver/dataset\.json"):
        build_msd(root, out)


def test_totalsegmentator_samples(tmp_path, ct):
    image, labels, affine = ct
    root = tmp_path / "Totalsegmentator_dataset"
    for subject, split in (("s0001", "train"), ("s0002", "test")):
        (root / subject / "segmentations").mkdir(parents=True)
        shutil.copy(image, root / subject / "ct.nii.gz")
        for name, value in (("liver", LIVER), ("spleen", SPLEEN), ("kidney_right", 2), ("brain", 255)):
            save(labels == value, affine, root / subject / "segmentations" / f"{name}.nii.gz")  # brain: empty
    write_csv(root / "meta.csv", ["image_id", "age", "gender", "split"],
              [["s0001", 60, "m", "train"], ["s0002", 70, "f", "test"]], delimiter=";")
    out = tmp_path / "ts.jsonl"
    assert build_totalsegmentator(root, out) == 3
    samples = {s.sample_id: s for s in read_manifest(out)}
    assert_loadable(samples.values())
    assert set(samples) == {"totalsegmentator:s0001:liver", "totalsegmentator:s0001:spleen",
                            "totalsegmentator:s0001:right kidney"}
    kidney = samples["totalsegmentator:s0001:right kidney"]
    assert kidney.answer == "The segmentation mask of right kidney is <3DSEG>." and kidney.masks[0].value is None
    assert np.array_equal(np.asarray(nib.load(kidney.masks[0].path).dataobj) > 0, labels == 2)
    shutil.rmtree(root / "s0001" / "segmentations")
    with pytest.raises(AdapterError, match=r"TotalSegmentator masks not found: .*s0001/segmentations"):
        build_totalsegmentator(root, out)
    (root / "s0001" / "ct.nii.gz").unlink()
    with pytest.raises(AdapterError, match=r"TotalSegmentator CT not found: .*s0001/ct\.nii\.gz"):
        build_totalsegmentator(root, out)


@pytest.mark.parametrize("meta, message", [
    ([], "must hold a JSON object, got list"),
    ({"labels": ["background", "liver"], "training": [{"image": "a", "label": "b"}]}, "labels must be an object"),
    ({"modality": ["CT"], "labels": {"1": "liver"}, "training": [{"image": "a", "label": "b"}]},
     "modality must be an object"),
    ({"labels": {"1": "liver"}, "training": "imagesTr"}, "training must be a list"),
    ({"labels": {"1": "liver"}, "training": [{"image": "a", "label": "b"}, {"label": "b"}]},
     r"training\[1\] needs \"image\" and \"label\" paths, got \{'label': 'b'\}"),
    ({"labels": {"1": "liver"}, "training": ["imagesTr/a.nii.gz"]}, r"training\[0\] needs \"image\" and \"label\""),
])
def test_msd_malformed_dataset_json(tmp_path, meta, message):
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match=rf"MSD dataset\.json {tmp_path / 'dataset.json'}:? .*{message}"):
        build_msd(tmp_path, tmp_path / "o.jsonl")
