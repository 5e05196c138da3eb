"""Dataset folders -> adapters -> validated manifests -> domain batches -> model-ready tensors, on the adapters'
real-file fixtures (IU X-ray, HAM10000, CheXmask on MIMIC-CXR-JPG, MSD)."""

from collections import Counter

import torch

from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, MedVersaConfig
from engine.data.adapters.chexmask import build_chexmask
from engine.data.adapters.ham10000 import build_ham10000
from engine.data.adapters.iu_xray import build_iu_xray
from engine.data.adapters.msd import build_msd
from engine.data.loading import example_rng, load_example
from engine.data.manifest import read_manifest
from engine.data.sampler import DomainBatchSampler
from tests.engine.adapter_layouts import write_csv
from tests.engine.test_data_adapters_ct import ct, msd  # noqa: F401  (fixtures)
from tests.engine.test_data_adapters_cxr_targets import masks, mimic, rle_encode  # noqa: F401
from tests.engine.test_data_adapters_iu_ham import ham, iu  # noqa: F401

TINY = MedVersaConfig.tiny()


def test_adapter_manifests_load_as_domain_batches(tmp_path, iu, ham, msd, mimic, masks):  # noqa: F811
    chexmask = tmp_path / "chexmask"
    write_csv(chexmask / "OriginalResolution" / "MIMIC-CXR-JPG.csv",
              ["dicom_id", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks", "Left Lung", "Right Lung", "Heart",
               "Height", "Width"],
              [["d-pa-1", 0.9, 0.9, "", *(rle_encode(masks[o]) for o in ("left lung", "right lung", "heart")), 512, 512]])
    built = [build_iu_xray(iu[0], tmp_path / "iu.jsonl"), build_ham10000(ham, tmp_path / "ham.jsonl"),
             build_msd(msd[0], tmp_path / "msd.jsonl"),
             build_chexmask(chexmask, tmp_path / "chexmask.jsonl", images_root=mimic)]
    samples = [s for name in ("iu", "ham", "msd", "chexmask") for s in read_manifest(tmp_path / f"{name}.jsonl")]
    assert len(samples) == sum(built)
    groups = {(s.imaging, s.task) for s in samples}
    assert {("chest_xray", "findings"), ("dermoscopy", "classification"), ("dermoscopy", "segmentation"),
            ("ct", "segmentation"), ("chest_xray", "segmentation")} <= groups

    sampler = DomainBatchSampler(samples, 2, seed=0)
    seen = Counter()
    for step, batch in zip(range(120), sampler):
        group = sampler.group_of(batch)
        seen[group] += 1
        if seen[group] > (1 if group[0] == "ct" else 3):
            continue  # loading is the slow part: a few batches per group
        for slot, index in enumerate(batch):
            sample = samples[index]
            example = load_example(sample, TINY, example_rng(0, step, slot), augment=True)
            assert (example.imaging, example.task) == group
            n = len(sample.images)
            if sample.is_3d:
                assert example.pixel_values_3d.shape == (n, 1, *TINY.unet3d.volume_size)
                assert example.masks_3d.shape[0] == example.answer.count(SEG3D_TOKEN)
                assert example.masks_3d.sum() > 0
            else:
                size = TINY.swin.image_size
                assert example.pixel_values_2d.shape == (n, 3, size, size)
                k2 = example.answer.count(SEG2D_TOKEN)
                assert (example.masks_2d is None) == (k2 == 0)
                if k2:
                    assert example.masks_2d.shape == (k2, 1, size, size) and (example.masks_2d.sum((1, 2, 3)) > 0).all()
            kd = example.answer.count(DET_TOKEN)
            assert (example.boxes is None) == (kd == 0)
            if kd:
                assert example.boxes.shape == (kd, 4) and ((example.boxes >= 0) & (example.boxes <= 1)).all()
            assert torch.equal(example.image_is_3d, torch.full((n,), sample.is_3d))
    assert set(seen) == groups
