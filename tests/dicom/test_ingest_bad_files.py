"""Files the viewer could never show are reported as failed at import, with the reason; the rest imports."""

import io
import os
import shutil
import zlib

import pydicom

from studyapp.services import ingest, studies


def test_zero_geometry_and_non_utf8_name_fail_alone(db, shared_data, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm"
    shutil.copy(good, folder / "good.dcm")
    for keyword in ("Rows", "BitsAllocated"):
        ds = pydicom.dcmread(good)
        setattr(ds, keyword, 0)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.StudyInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"{keyword.lower()}0.dcm")
    bad_name = os.fsencode(folder) + b"/bad\xffname.dcm"
    shutil.copy(good, bad_name)
    with db.begin() as session:
        study = studies.create_study(session, "S")
        report = ingest.import_folder(session, study, folder)
        failed = {o.path.rsplit("/", 1)[-1]: o.reason for o in report.with_status("failed")}
        assert report.counts["imported"] == 1
        assert "(Rows) is 0" in failed["rows0.dcm"] and "(BitsAllocated) is 0" in failed["bitsallocated0.dcm"]
        assert any("not valid UTF-8" in reason for reason in failed.values())
        assert len(study.cases) == 1


def _length_bomb(source, target):
    """``source`` with a private OB element before its Pixel Data whose length field says 2 GB."""
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.private_block(0x0029, "LENGTH TEST", create=True).add_new(0x10, "OB", b"\0" * 4)
    ds.save_as(target, enforce_file_format=True)
    raw = bytearray(target.read_bytes())
    at = raw.index(b"\x29\x00\x10\x10OB\x00\x00") + 8
    raw[at:at + 4] = (0x7FFFFFF0).to_bytes(4, "little")
    target.write_bytes(bytes(raw))


def _deflate_bomb(source, target, inflated=600 * 2**20):
    """``source`` as Deflated Explicit VR Little Endian (PS3.5 A.5) whose data set starts with a private OB element
    of ``inflated`` zero bytes: about 600 kB on disk."""
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    plain = io.BytesIO()
    ds.save_as(plain, enforce_file_format=True)
    meta = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    data_set = plain.getvalue()[132 + len(meta.getvalue()):]
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    head = io.BytesIO(b"\0" * 128 + b"DICM")
    head.seek(0, io.SEEK_END)
    pydicom.filewriter.write_file_meta_info(head, ds.file_meta, enforce_standard=True)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflate.compress(b"\x09\x00\x00\x10OB\x00\x00" + inflated.to_bytes(4, "little"))]
    parts += [deflate.compress(bytes(2**20)) for _ in range(inflated // 2**20)]
    parts += [deflate.compress(data_set), deflate.flush()]
    target.write_bytes(head.getvalue() + b"".join(parts))


def test_deflate_bomb_and_length_field_beyond_the_file_are_named_as_such(db, shared_data, tmp_path):
    """Issue 18: both were reported as "DICOM without Pixel Data"; now each fails with the attack named, and the
    bomb is refused before pydicom inflates it."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    good = shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm"
    shutil.copy(good, folder / "good.dcm")
    _length_bomb(good, folder / "length.dcm")
    _deflate_bomb(good, folder / "deflate.dcm")
    assert (folder / "deflate.dcm").stat().st_size < 2**20
    with db.begin() as session:
        report = ingest.import_folder(session, studies.create_study(session, "S"), folder)
    failed = {o.path.rsplit("/", 1)[-1]: o.reason for o in report.with_status("failed")}
    assert report.counts == {"imported": 1, "skipped": 0, "failed": 2}
    assert failed["length.dcm"].startswith(
        "length field beyond the file size: (0029,1010) declares 2,147,483,632 bytes at byte ")
    assert failed["length.dcm"].endswith(f"but the file has {(folder / 'length.dcm').stat().st_size:,} bytes")
    assert failed["deflate.dcm"].startswith("deflate bomb: the Deflated Explicit VR Little Endian data set of ")
    assert "inflates to more than 536,870,912 bytes" in failed["deflate.dcm"]
