"""MIMIC-CXR(-JPG) adapter on a small folder in the published layout: real IU report texts as MIMIC free text,
the real NIH chest image as the JPGs."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.__main__ import main
from engine.data.adapters.common import AdapterError, report_sections
from engine.data.adapters.mimic_cxr import build_mimic_cxr
from engine.data.manifest import read_manifest
from engine.processing import load_rgb
from tests.engine.adapter_layouts import assert_loadable, iu_sections, iu_xml, mimic_cxr_jpg, mimic_report


@pytest.fixture()
def mimic(tmp_path, shared_data):
    root = mimic_cxr_jpg(shared_data, tmp_path / "mimic-cxr-jpg")
    xml = iu_xml(shared_data, ["1.xml", "10.xml"], tmp_path / "iu")
    texts = {"50000001": iu_sections(xml["1.xml"]), "50000002": iu_sections(xml["10.xml"])}
    for study, sections in texts.items():
        path = root / "files" / "p10" / "p10000032" / f"s{study}.txt"
        path.write_text(mimic_report(sections))
    return root, texts


def test_report_sections_of_a_mimic_report(shared_data, tmp_path):
    sections = iu_sections(iu_xml(shared_data, ["10.xml"], tmp_path)["10.xml"])
    parsed = report_sections(mimic_report(sections))
    assert parsed["FINDINGS"] == sections["FINDINGS"]  # wrapped over lines in the report, one line again
    assert parsed["IMPRESSION"] == sections["IMPRESSION"] == "No acute cardiopulmonary process."
    assert parsed["INDICATION"] == sections["INDICATION"] and parsed["EXAMINATION"] == "CHEST (PA AND LAT)"


def test_report_sub_headings_stay_in_their_section():
    text = " FINDINGS:\n LUNGS: Clear.\n HEART: Normal size.\n \n IMPRESSION:\n No acute process.\n"
    assert report_sections(text) == {"FINDINGS": "LUNGS: Clear. HEART: Normal size.", "IMPRESSION": "No acute process."}


def test_mimic_cxr_samples(mimic, tmp_path, shared_data):
    root, texts = mimic
    out = tmp_path / "out" / "mimic.jsonl"
    assert build_mimic_cxr(root, out, seed=3) == 7
    samples = {s.sample_id: s for s in read_manifest(out, allowed_roots=[tmp_path])}  # validates every row and file
    assert_loadable(samples.values())
    assert Counter(s.task for s in samples.values()) == {"findings": 2, "impression": 2, "report": 2,
                                                         "longitudinal": 1}
    first = samples["mimic-cxr:s50000001:findings"]
    assert first.answer == texts["50000001"]["FINDINGS"]
    assert first.context == "Positive TB test.None."  # INDICATION then COMPARISON, each ending with a full stop
    assert [Path(i.path).name for i in first.images] == ["d-pa-1.jpg", "d-lat-1.jpg"]  # frontal, then lateral
    assert "<img0><img1>" in first.instruction
    report = samples["mimic-cxr:s50000002:report"]
    assert report.answer == f"FINDINGS: {texts['50000002']['FINDINGS']} IMPRESSION: {texts['50000002']['IMPRESSION']}"
    later = samples["mimic-cxr:s50000002:longitudinal"]
    assert [(Path(i.path).name, i.role) for i in later.images] == [
        ("d-ap-2.jpg", "current"), ("d-pa-1.jpg", "prior"), ("d-lat-1.jpg", "prior")]
    assert "<img0>" in later.instruction and "<img1><img2>" in later.instruction
    assert later.answer == texts["50000002"]["IMPRESSION"]
    pixels = load_rgb(first.images[0].path)
    with Image.open(shared_data / "cxr_png" / "00000001_000.png") as png:
        real = np.asarray(png.convert("RGB")).astype(float)
    assert pixels.shape == (512, 512, 3) and np.abs(pixels - real).mean() < 2.0  # JPEG of the real image
    assert not any(s.sample_id.startswith(("mimic-cxr:s50000003", "mimic-cxr:s50000004")) for s in samples.values())


def test_mimic_cxr_seeded_instructions(mimic, tmp_path):
    root, _ = mimic
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        build_mimic_cxr(root, tmp_path / f"{name}.jsonl", seed=seed)
        runs.append([s.instruction for s in read_manifest(tmp_path / f"{name}.jsonl", allowed_roots=[tmp_path])])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_mimic_cxr_bad_layouts(mimic, tmp_path):
    root, _ = mimic
    out = tmp_path / "m.jsonl"
    (root / "files" / "p10" / "p10000032" / "s50000002.txt").unlink()
    with pytest.raises(AdapterError, match=r"MIMIC-CXR report not found: .*s50000002\.txt"):
        build_mimic_cxr(root, out)
    report = root / "files" / "p10" / "p10000032" / "s50000001.txt"
    report.write_bytes(b"FINDINGS: \xff\xfe lungs clear.\n")
    with pytest.raises(AdapterError, match=rf"cannot read MIMIC-CXR report {report}: 'utf-8' codec can't decode"):
        build_mimic_cxr(root, out)
    image = root / "files" / "p10" / "p10000032" / "s50000001" / "d-lat-1.jpg"
    image.unlink()
    with pytest.raises(AdapterError, match=r"MIMIC-CXR-JPG image not found: .*d-lat-1\.jpg"):
        build_mimic_cxr(root, out)
    (root / "mimic-cxr-2.0.0-metadata.csv.gz").unlink()
    with pytest.raises(AdapterError, match=r"metadata csv not found: tried .*mimic-cxr-2\.0\.0-metadata\.csv, "
                                           r".*mimic-cxr-2\.0\.0-metadata\.csv\.gz"):
        build_mimic_cxr(root, out)
    assert not out.exists()


def test_convert_typed_options(mimic, tmp_path, capsys):
    root, _ = mimic
    out = tmp_path / "cli.jsonl"
    assert main(["convert", "mimic-cxr", str(root), str(out), "--option", f"reports_root={root}",
                 "--option", "splits=train", "--option", "longitudinal=false"]) == 0
    assert f"wrote 6 sample(s) to {out}" in capsys.readouterr().out  # the string "false" is no True
    assert main(["convert", "mimic-cxr", str(root), str(out), "--option", "splits=validate"]) == 1  # no frontal
    assert "no mimic-cxr samples could be built ({'no frontal image': 1, 'other split': 3})" in capsys.readouterr().err
