"""DICOM handling: ``io`` finds and reads files and groups them by Study/Series/SOP Instance UID;
``display`` turns a frame into an 8-bit image for the viewer (DICOM PS3.3 C.11 display pipeline).

Image arrays use ``H, W`` (rows, columns) and ``H, W, 3`` for colour.
"""
