"""Small CT-like DICOM files built with pydicom, for signature tests and benchmarks."""

from __future__ import annotations

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)


def ct_dataset(rows: int = 16, columns: int = 16, seed: int = 1, with_sequences: bool = True) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = "20240101"
    ds.InstanceCreationTime = "120000"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "A%06d" % seed
    ds.Modality = "CT"
    ds.Manufacturer = "medimg test "  # trailing space kept as stored
    ds.InstitutionName = "Test Hospital"
    ds.ReferringPhysicianName = "Doe^Jane"
    ds.PatientName = "Test^Patient%d" % seed
    ds.PatientID = "P%06d" % seed
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = seed
    ds.ImagePositionPatient = [0, 0, float(seed)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.PixelSpacing = [0.5, 0.5]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    if with_sequences:
        img1, img2 = Dataset(), Dataset()
        for img in (img1, img2):
            img.ReferencedSOPClassUID = CTImageStorage
            img.ReferencedSOPInstanceUID = generate_uid()
        series = Dataset()
        series.SeriesInstanceUID = generate_uid()
        series.ReferencedImageSequence = Sequence([img1, img2])
        ds.ReferencedSeriesSequence = Sequence([series])
    ds.PixelData = pixel_bytes(rows, columns, seed)
    return ds


def pixel_bytes(rows: int, columns: int, seed: int = 1) -> bytes:
    n = rows * columns
    pattern = bytes((seed * 7 + i) & 0xFF for i in range(512))
    raw = (pattern * (2 * n // len(pattern) + 1))[: 2 * n]
    return raw


def save(ds: Dataset, path: str, transfer_syntax: str = ExplicitVRLittleEndian) -> str:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True, implicit_vr=transfer_syntax == ImplicitVRLittleEndian)
    return path


def write_ct(path: str, rows: int = 16, columns: int = 16, seed: int = 1, implicit: bool = False) -> str:
    return save(ct_dataset(rows, columns, seed), path, ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)


def write_jpeg_ct(path: str, seed: int = 1) -> str:
    """An 8-bit single-frame dataset with encapsulated pixel data (two fragments, JPEG Baseline
    transfer syntax; the fragment bytes need not decode, signatures only see the bytes)."""
    ds = ct_dataset(8, 8, seed)
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    frame = b"\xff\xd8" + bytes(range(40)) + b"\xff\xd9"
    ds.PixelData = encapsulate([frame], fragments_per_frame=2)
    ds["PixelData"].VR = "OB"
    return save(ds, path, JPEGBaseline8Bit)


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
