import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from engine.drafts import case_findings, load_cases, main, run
from engine.inference import Box, GenerationResult, Mask2D, Mask3D
from engine.processing import load_volume
from studyapp.db.models import Arm, Case, Draft, DraftFinding, Instance, ReaderStudy, Series
from studyapp.db.session import open_database
from studyapp.services.drafts import import_drafts
from studyapp.services.findings import decode_rle


@pytest.fixture()
def study_db(db, shared_data, tmp_path):
    cxr = shared_data / "dicom" / "cxr"
    with db.begin() as session:
        study = ReaderStudy(name="pilot")
        session.add(study)
        session.add(Arm(study=study, code="model"))
        for n, name in enumerate(["nih_siim_cr_jpegbaseline.dcm", "RG1_J2KI.dcm"]):
            case = Case(study=study, case_key=f"cxr-{n}", study_instance_uid=f"1.2.3.{n}", patient_age="061Y",
                        patient_sex="F", indication="Cough.", comparison=None)
            series = Series(case=case, series_instance_uid=f"1.2.3.{n}.1", series_number=1, modality="CR")
            series.instances.append(Instance(sop_instance_uid=f"1.2.3.{n}.1.1", file_path=str(cxr / name)))
            session.add(case)
        ct = Case(study=study, case_key="ct-0", study_instance_uid="1.2.3.9", indication="Abdominal pain.")
        series = Series(case=ct, series_instance_uid="1.2.3.9.1", series_number=2, modality="CT")
        for path in sorted((shared_data / "dicom" / "ct_series").iterdir())[:3]:
            series.instances.append(Instance(sop_instance_uid=path.name, file_path=str(path)))
        session.add(ct)
    return db, f"sqlite:///{tmp_path / 'study.db'}"


def test_drafts_written_importable_and_resumable(study_db, tiny_checkpoint, tmp_path):
    db, url = study_db
    out = tmp_path / "drafts.jsonl"
    assert run(tiny_checkpoint, url, "pilot", out, batch_size=2, max_new_tokens=6) == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["case_key"] for line in lines] == ["cxr-0", "cxr-1", "ct-0"]
    for line in lines:
        assert line["arm"] == "model" and line["source"] == "MedVersa ckpt"
        assert line["text"].startswith("FINDINGS: ") and " IMPRESSION: " in line["text"]

    # interrupted after the first case (torn second line): only the missing cases are generated again
    first = out.read_text().splitlines()[0]
    out.write_text(first + "\n" + '{"case_key": "cxr-1", "ar')
    assert run(tiny_checkpoint, url, "pilot", out, batch_size=2, max_new_tokens=6) == 2
    keys = [json.loads(line)["case_key"] for line in out.read_text().splitlines()]
    assert keys == ["cxr-0", "cxr-1", "ct-0"]
    assert out.read_text().splitlines()[0] == first

    from studyapp.services.drafts import import_drafts

    with db.begin() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == "pilot"))
        result = import_drafts(session, study, out)
        assert not result.errors
    with db() as session:
        assert len(session.scalars(select(Draft)).all()) == 3


def test_a_case_the_model_refuses_gets_no_draft_and_the_run_goes_on(study_db, tiny_checkpoint, tmp_path, capsys,
                                                                      shared_data):
    db, url = study_db
    with db.begin() as session:  # the veterinary radiograph of a dog's thorax shipped with the demo
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == "pilot"))
        case = Case(study=study, case_key="dog-0", study_instance_uid="1.2.3.7")
        series = Series(case=case, series_instance_uid="1.2.3.7.1", series_number=1, modality="DX")
        series.instances.append(Instance(sop_instance_uid="1.2.3.7.1.1",
                                         file_path=str(shared_data / "dicom" / "cxr" / "highdicom_dx_image_dog.dcm")))
        session.add(case)
    out = tmp_path / "drafts.jsonl"
    assert run(tiny_checkpoint, url, "pilot", out, batch_size=2, max_new_tokens=4) == 3
    assert [json.loads(line)["case_key"] for line in out.read_text().splitlines()] == ["cxr-0", "cxr-1", "ct-0"]
    assert re.search(r"case dog-0: no draft: .*Body Part Examined \(0018,0015\) is 'THORAX'", capsys.readouterr().err)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--study": "missing"}, "no reader study named 'missing'"),
        ({"--arm": "nope"}, "has no arm 'nope'"),
        ({"--checkpoint": "/nonexistent-ckpt"}, "no MedVersa config.json"),
    ],
)
def test_bad_arguments_are_one_line_errors(study_db, tiny_checkpoint, tmp_path, change, message):
    _, url = study_db
    args = {"--checkpoint": str(tiny_checkpoint), "--database": url, "--study": "pilot",
            "--out": str(tmp_path / "d.jsonl"), **change}
    with pytest.raises(SystemExit, match=message):
        main([item for pair in args.items() for item in pair])
    assert not (tmp_path / "d.jsonl").exists()


def test_truncated_weights_are_an_error(study_db, tiny_checkpoint, tmp_path):
    _, url = study_db
    broken = tmp_path / "broken-ckpt"
    shutil.copytree(tiny_checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SystemExit, match="error: "):
        main(["--checkpoint", str(broken), "--database", url, "--study", "pilot", "--out", str(tmp_path / "d.jsonl")])


def test_merge_parts_skips_written_keys_and_torn_lines(tmp_path):
    from engine.drafts import merge_parts

    out = tmp_path / "d.jsonl"
    def line(key):
        return json.dumps({"case_key": key, "arm": "model", "text": "FINDINGS: x IMPRESSION: y", "source": "s"})

    out.write_text(line("a") + "\n")
    parts = [tmp_path / "d.jsonl.part0", tmp_path / "d.jsonl.part1"]
    parts[0].write_text(line("a") + "\n" + line("b") + "\n")
    parts[1].write_text(line("c") + "\n" + '{"case_key": "d", "te')
    assert merge_parts(out, parts) == 2
    assert [json.loads(x)["case_key"] for x in out.read_text().splitlines()] == ["a", "b", "c"]
    assert not any(p.exists() for p in parts)


def test_two_processes_share_the_cases(study_db, tiny_checkpoint, tmp_path):
    _, url = study_db
    out = tmp_path / "drafts.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "engine.drafts", "--checkpoint", str(tiny_checkpoint), "--database", url, "--study", "pilot",
               "--out", str(out), "--max-new-tokens", "4"]
    done = subprocess.run(command, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count(f"loading the checkpoint {tiny_checkpoint} (weights, tokenizer, vision encoders)") == 2
    written = sorted(int(n) for n in re.findall(r"(\d+) draft\(s\) written", done.stdout))
    assert written == [1, 2]  # 3 cases split over 2 processes
    assert sorted(json.loads(x)["case_key"] for x in out.read_text().splitlines()) == ["ct-0", "cxr-0", "cxr-1"]
    assert not list(tmp_path.glob("drafts.jsonl.part*"))


def test_boxes_and_masks_become_findings_the_import_stores(study_db, tmp_path):
    """case_findings on real DICOM: a box and a 2D mask on a CR, a 3D mask sampled on each CT slice of the series;
    the written line imports with its findings."""
    db, url = study_db
    cases = {c.case_key: c for c in load_cases(open_database(url), "pilot", max_images=4)}
    cr, ct = cases["cxr-0"], cases["ct-0"]
    mask = np.zeros((1024, 1024), bool)
    mask[10:20, 30:35] = True
    cr_result = GenerationResult("", "", [], boxes=[Box("Opacity in the right lung", (0.1, 0.2, 0.3, 0.4),
                                                        (102.4, 204.8, 307.2, 409.6), 0)],
                                 masks_2d=[Mask2D("Left effusion", mask, mask.astype(np.float32), 0)])
    found = case_findings(cr_result, cr)
    assert found[0] == {"type": "box", "sentence": "Opacity in the right lung", "sop_instance_uid": "1.2.3.0.1.1",
                        "frame": 0, "xyxy": [0.1, 0.2, 0.3, 0.4]}
    assert found[1]["rows"] == 1024 and decode_rle(found[1]["slices"][0]["rle"], 1024, 1024).sum() == 50

    volume = load_volume(ct.images[0])  # the whole folder: 20 slices, (X, Y, Z)
    block = np.zeros(tuple(volume.shape[1:]), np.uint8)
    block[100:200, 50:150, :] = 1
    ct_result = GenerationResult("", "", [], masks_3d=[Mask3D("Liver lesion", block, volume.affine.numpy(), 0)])
    (lesion,) = case_findings(ct_result, ct)
    assert [s["sop_instance_uid"] for s in lesion["slices"]] == [uid for uid, _ in ct.sources[0]]  # the 3 in the db
    assert all(decode_rle(s["rle"], 512, 512).sum() == 100 * 100 for s in lesion["slices"])

    path = tmp_path / "grounded.jsonl"
    path.write_text("".join(json.dumps({"case_key": key, "arm": "model", "text": "FINDINGS: x IMPRESSION: y",
                                        "source": "MedVersa", "findings": items}) + "\n"
                            for key, items in (("cxr-0", found), ("ct-0", [lesion]))))
    with db.begin() as session:
        result = import_drafts(session, session.scalar(select(ReaderStudy)), path)
        assert result.errors == [] and result.imported == 2
    with db() as session:
        assert [f.kind for f in session.scalars(select(DraftFinding).order_by(DraftFinding.id))] == ["box", "mask", "mask"]
