"""IU X-ray (real OpenI XMLs from NLMCXR_reports.tgz) and HAM10000 (real dermoscopy images and lesion masks)
adapters on small folders in their published layouts."""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.__main__ import main
from engine.data.adapters.common import AdapterError
from engine.data.adapters.ham10000 import build_ham10000
from engine.data.adapters.iu_xray import build_iu_xray
from engine.data.manifest import read_manifest
from engine.processing import load_rgb
from tests.engine.adapter_layouts import assert_loadable, iu_sections, iu_xml, write_csv

IU_FILES = ["1.xml", "3.xml", "42.xml", "156.xml"]  # F+I, 2 images; impression only; 3 images; no images
HAM = [("ISIC_0024311", "nv", "80.0", "male", "scalp"), ("ISIC_0027001", "mel", "55.0", "female", "back"),
       ("ISIC_0027287", "bkl", "", "unknown", "unknown")]


@pytest.fixture()
def iu(tmp_path, shared_data):
    root = tmp_path / "iu"
    xml = iu_xml(shared_data, IU_FILES, root / "ecgen-radiology")
    (root / "NLMCXR_png").mkdir()
    for path in xml.values():
        for image_id in (line.split('"')[1] for line in path.read_text().splitlines() if "<parentImage id=" in line):
            shutil.copy(shared_data / "cxr_png" / "00000001_000.png", root / "NLMCXR_png" / f"{image_id}.png")
    return root, xml


def test_iu_xray_samples(iu, tmp_path):
    root, xml = iu
    out = tmp_path / "iu.jsonl"
    assert build_iu_xray(root, out) == 5
    samples = {s.sample_id: s for s in read_manifest(out, allowed_roots=[tmp_path])}
    assert_loadable(samples.values())
    # 1.xml's impression "Normal chest x-XXXX." is all de-identification: no impression, no full report
    assert Counter(s.task for s in samples.values()) == {"findings": 2, "impression": 2, "report": 1}
    assert not any("XXXX" in s.answer or "XXXX" in (s.context or "") for s in samples.values())
    first = samples["iu-xray:1:findings"]
    assert "There are no XXXX of a pleural effusion." in iu_sections(xml["1.xml"])["FINDINGS"]
    assert first.answer == ("The cardiac silhouette and mediastinum size are within normal limits. There is no "
                            "pulmonary edema. There is no focal consolidation. There is no evidence of pneumothorax.")
    assert first.context == "Positive TB test."  # COMPARISON "None." says nothing: left out
    assert samples["iu-xray:42:findings"].context is None  # "XXXX-year-old" indication, "None available." comparison
    assert [Path(i.path).name for i in first.images] == ["CXR1_1_IM-0001-3001.png", "CXR1_1_IM-0001-4001.png"]
    assert samples["iu-xray:3:impression"].answer == iu_sections(xml["3.xml"])["IMPRESSION"]
    assert "iu-xray:3:findings" not in samples and not any(k.startswith("iu-xray:156:") for k in samples)
    three = samples["iu-xray:42:report"]
    assert len(three.images) == 3 and "<img0><img1><img2>" in three.instruction
    assert load_rgb(first.images[1].path).shape == (512, 512, 3)


def test_iu_xray_bad_layouts(iu, tmp_path):
    root, _ = iu
    missing = sorted((root / "NLMCXR_png").glob("CXR42_*.png"))[0]
    missing.unlink()
    with pytest.raises(AdapterError, match=rf"IU X-ray image not found: .*{missing.name}"):
        build_iu_xray(root, tmp_path / "o.jsonl")
    (root / "ecgen-radiology" / "1.xml").write_text("<eCitation><Abstract>")
    with pytest.raises(AdapterError, match=r"malformed IU X-ray report XML .*1\.xml"):
        build_iu_xray(root, tmp_path / "o.jsonl")
    with pytest.raises(AdapterError, match=r"report XMLs not found: .*ecgen-radiology"):
        build_iu_xray(tmp_path / "empty", tmp_path / "o.jsonl")


@pytest.fixture()
def ham(tmp_path, shared_data):
    root = tmp_path / "ham"
    for folder, names in (("HAM10000_images_part_1", HAM[:2]), ("HAM10000_images_part_2", HAM[2:])):
        (root / folder).mkdir(parents=True)
        for name, *_ in names:
            shutil.copy(shared_data / "derm" / "images" / f"{name}.jpg", root / folder)
    masks = root / "HAM10000_segmentations_lesion_tschandl"
    masks.mkdir()
    for name, *_ in HAM:
        shutil.copy(shared_data / "derm" / "masks" / f"{name}.png", masks / f"{name}_segmentation.png")
    write_csv(root / "HAM10000_metadata.csv", ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"],
              [[f"HAM_{i:07d}", name, dx, "histo", age, sex, loc] for i, (name, dx, age, sex, loc) in enumerate(HAM)])
    return root


def test_ham10000_samples(ham, tmp_path, shared_data):
    out = tmp_path / "ham.jsonl"
    assert build_ham10000(ham, out, seed=1) == 6
    samples = {s.sample_id: s for s in read_manifest(out, decode=True, allowed_roots=[tmp_path])}
    assert_loadable(samples.values())
    nevus = samples["ham10000:ISIC_0024311:classification"]
    assert nevus.answer == "melanocytic nevus" and nevus.imaging == "dermoscopy"
    assert nevus.context == "Age:80.Gender:male.Location:scalp."
    assert samples["ham10000:ISIC_0027001:classification"].answer == "melanoma"
    assert samples["ham10000:ISIC_0027287:classification"].context is None  # all parts unknown
    seg = samples["ham10000:ISIC_0027287:segmentation"]
    assert seg.answer == "The segmentation mask of skin lesion is <2DSEG>." and "skin lesion" in seg.instruction
    with Image.open(seg.masks[0].path) as mask, Image.open(shared_data / "derm" / "masks" / "ISIC_0027287.png") as real:
        assert np.array_equal(np.asarray(mask), np.asarray(real))
    pixels = load_rgb(seg.images[0].path)
    with Image.open(shared_data / "derm" / "images" / "ISIC_0027287.jpg") as real:
        assert pixels.shape == (450, 600, 3) and np.array_equal(pixels, np.asarray(real.convert("RGB")))


def test_ham10000_bad_layouts(ham, tmp_path):
    out = tmp_path / "o.jsonl"
    metadata = (ham / "HAM10000_metadata.csv").read_text()
    (ham / "HAM10000_metadata.csv").write_text(metadata.replace(",80.0,", ",inf,"))  # an age that is not a number
    assert build_ham10000(ham, out) == 6
    samples = {s.sample_id: s for s in read_manifest(out, allowed_roots=[tmp_path])}
    assert samples["ham10000:ISIC_0024311:classification"].context == "Gender:male.Location:scalp."
    (ham / "HAM10000_images_part_2" / "ISIC_0027287.jpg").unlink()
    with pytest.raises(AdapterError, match=r"HAM10000 image not found: ISIC_0027287\.jpg"):
        build_ham10000(ham, out)
    (ham / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0027001_segmentation.png").unlink()
    with pytest.raises(AdapterError, match=r"lesion mask not found: .*ISIC_0027001_segmentation\.png"):
        build_ham10000(ham, out)
    (ham / "HAM10000_metadata.csv").unlink()
    with pytest.raises(AdapterError, match=r"metadata csv not found: .*HAM10000_metadata\.csv"):
        build_ham10000(ham, out)


def test_convert_command(iu, ham, tmp_path, capsys, caplog):
    root, _ = iu
    out = tmp_path / "cli" / "iu.jsonl"
    with caplog.at_level("INFO", logger="engine.data.adapters"):
        assert main(["convert", "iu-xray", str(root), str(out), "--seed", "2"]) == 0
    assert f"wrote 5 sample(s) to {out}" in capsys.readouterr().out
    assert "skipped {'no images': 1}" in caplog.text
    assert main(["check", str(out), "--allow-root", str(tmp_path)]) == 0
    with pytest.raises(SystemExit) as info:
        main(["convert", "ham10000", str(ham), str(out), "--option", "splits=train"])
    assert info.value.code == 2 and "build_ham10000 takes no option 'splits'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["convert", "chexmask", str(ham), str(out), "--option", "detection=maybe"])
    assert info.value.code == 2 and "option detection needs true or false, got 'maybe'" in capsys.readouterr().err
    assert main(["convert", "ham10000", str(tmp_path / "nowhere"), str(out)]) == 1
    assert "error: HAM10000 metadata csv not found" in capsys.readouterr().err
