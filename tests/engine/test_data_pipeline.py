"""Dataset folders -> adapters -> validated manifests, combined -> domain batches -> model-ready tensors, on the
adapters' real-file fixtures (IU X-ray, HAM10000, CheXmask on MIMIC-CXR-JPG, MSD)."""

import itertools
from collections import Counter

from engine.data.adapters.chexmask import build_chexmask
from engine.data.adapters.ham10000 import build_ham10000
from engine.data.adapters.iu_xray import build_iu_xray
from engine.data.adapters.msd import build_msd
from engine.data.manifest import read_manifest
from engine.data.sampler import TASK_GROUPS, DomainBatchSampler
from tests.engine.adapter_layouts import assert_loadable, write_csv
from tests.engine.test_data_adapters_ct import ct, msd  # noqa: F401  (fixtures)
from tests.engine.test_data_adapters_cxr_targets import masks, mimic, rle_encode  # noqa: F401
from tests.engine.test_data_adapters_iu_ham import ham, iu  # noqa: F401


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
    sampler_groups = {(imaging, TASK_GROUPS.get(task, task)) for imaging, task in groups}  # captioning is one group
    for batch in itertools.islice(sampler, 120):
        group = sampler.group_of(batch)
        assert {(samples[i].imaging, TASK_GROUPS.get(samples[i].task, samples[i].task)) for i in batch} == {group}
        seen[group] += 1
        if seen[group] <= (1 if group[0] == "ct" else 3):  # loading is the slow part: a few batches per group
            assert_loadable([samples[i] for i in batch])
    assert set(seen) == sampler_groups
