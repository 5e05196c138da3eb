"""Which pydicom decoder plugins decode compressed pixel data, and one more plugin for 12-bit JPEG Extended.

pydicom's permissively licensed plugins (GDCM, Pillow) decode only 8-bit JPEG Extended (Process 2 & 4,
1.2.840.10008.1.2.4.51); the one that handles 12-bit samples (pylibjpeg-libjpeg) is GPLv3. imagecodecs
(BSD-3-Clause) wraps libjpeg-turbo, which decodes 12-bit JPEG. ``register()`` adds it following pydicom's decoder
plugin interface (``is_available``, ``DECODER_DEPENDENCIES``, ``_decode_frame(src, runner) -> bytes``).

GDCM aborts the whole process (an uncaught C++ exception) on some corrupt JPEG 2000 streams, so
``decoding_plugins`` puts it last and uses it only where no other plugin handles the transfer syntax
(JPEG Lossless, Process 14).
"""

from __future__ import annotations

import importlib.util

from pydicom import uid
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import DecodeRunner

PLUGIN_LABEL = "imagecodecs"

DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("numpy", "imagecodecs")}

PLUGIN_PREFERENCE = ("pylibjpeg", "pyjpegls", "pillow", PLUGIN_LABEL, "pydicom", "gdcm")
"""Order in which available plugins are tried; pylibjpeg is pylibjpeg-openjpeg (JPEG 2000) here."""


def is_available(transfer_syntax: str) -> bool:
    """True when imagecodecs is installed and ``transfer_syntax`` is JPEG Extended."""
    return transfer_syntax in DECODER_DEPENDENCIES and importlib.util.find_spec("imagecodecs") is not None


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """Decode one JPEG Extended frame to native-order bytes of (rows, columns[, samples]) 8- or 16-bit values."""
    import imagecodecs

    return imagecodecs.jpeg8_decode(src).tobytes()


def decoding_plugins(transfer_syntax: str) -> list[str]:
    """Plugin labels to try, in order, for ``transfer_syntax``; ``[""]`` (pydicom's choice) for native encodings.

    GDCM is left out when another plugin is available (see module docstring).
    """
    try:
        available = get_decoder(transfer_syntax).available_plugins
    except NotImplementedError:  # pydicom knows no decoder; pixel_array raises the explanation
        return [""]
    ordered = sorted(available, key=lambda label: (PLUGIN_PREFERENCE + (label,)).index(label))
    return [label for label in ordered if label != "gdcm"] or ordered or [""]


def register() -> None:
    """Add the imagecodecs plugin to pydicom's JPEG Extended decoder (once; pydicom's plugins are tried first)."""
    try:
        get_decoder(uid.JPEGExtended12Bit).add_plugin(PLUGIN_LABEL, (__name__, "_decode_frame"))
    except ValueError:  # pydicom: this label is already registered
        pass
