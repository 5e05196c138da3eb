"""A pydicom decoder plugin for 12-bit JPEG Extended (Process 2 & 4, 1.2.840.10008.1.2.4.51) using imagecodecs.

pydicom's permissively licensed plugins (GDCM, Pillow) decode only 8-bit JPEG Extended; the one that handles
12-bit samples (pylibjpeg-libjpeg) is GPLv3. imagecodecs (BSD-3-Clause) wraps libjpeg-turbo, which decodes
12-bit JPEG. ``register()`` adds it behind pydicom's own plugins, following pydicom's decoder plugin interface
(``is_available``, ``DECODER_DEPENDENCIES``, ``_decode_frame(src, runner) -> bytes``).
"""

from __future__ import annotations

import importlib.util

from pydicom import uid
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import DecodeRunner

PLUGIN_LABEL = "imagecodecs"

DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("numpy", "imagecodecs")}


def is_available(transfer_syntax: str) -> bool:
    """True when imagecodecs is installed and ``transfer_syntax`` is JPEG Extended."""
    return transfer_syntax in DECODER_DEPENDENCIES and importlib.util.find_spec("imagecodecs") is not None


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """Decode one JPEG Extended frame to native-order bytes of (rows, columns[, samples]) 8- or 16-bit values."""
    import imagecodecs

    return imagecodecs.jpeg8_decode(src).tobytes()


def register() -> None:
    """Add the imagecodecs plugin to pydicom's JPEG Extended decoder (once; pydicom's plugins are tried first)."""
    try:
        get_decoder(uid.JPEGExtended12Bit).add_plugin(PLUGIN_LABEL, (__name__, "_decode_frame"))
    except ValueError:  # pydicom: this label is already registered
        pass
