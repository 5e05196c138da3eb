"""Which pydicom decoder plugins decode compressed pixel data, and a plugin for 12-bit and lossless JPEG.

pydicom's permissively licensed plugins decode only 8-bit JPEG Extended (Process 2 & 4, 1.2.840.10008.1.2.4.51;
GDCM, Pillow), and only GDCM decodes JPEG Lossless (Process 14, .57 and .70); the plugin that handles both
(pylibjpeg-libjpeg) is GPLv3. imagecodecs (BSD-3-Clause) wraps libjpeg-turbo, which decodes 12-bit and lossless
JPEG. ``register()`` adds it following pydicom's decoder plugin interface (``is_available``,
``DECODER_DEPENDENCIES``, ``_decode_frame(src, runner) -> bytes``).

GDCM aborts the whole process (an uncaught C++ exception) on some corrupt JPEG 2000 streams, so
``decoding_plugins`` uses it only where no other plugin handles the transfer syntax.
"""

from __future__ import annotations

import importlib.util

from pydicom import uid
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import DecodeRunner

PLUGIN_LABEL = "imagecodecs"

DECODER_DEPENDENCIES = {
    syntax: ("numpy", "imagecodecs") for syntax in (uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1)
}

PLUGIN_PREFERENCE = ("pylibjpeg", "pyjpegls", "pillow", PLUGIN_LABEL, "pydicom", "gdcm")
"""Order in which available plugins are tried; pylibjpeg is pylibjpeg-openjpeg (JPEG 2000) here."""


def is_available(transfer_syntax: str) -> bool:
    """True when imagecodecs is installed and ``transfer_syntax`` is JPEG Extended or JPEG Lossless."""
    return transfer_syntax in DECODER_DEPENDENCIES and importlib.util.find_spec("imagecodecs") is not None


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """Decode one JPEG frame to native-order bytes of (rows, columns[, samples]) 8- or 16-bit values."""
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
    """Add the imagecodecs plugin to pydicom's JPEG Extended and JPEG Lossless decoders (once)."""
    for syntax in DECODER_DEPENDENCIES:
        try:
            get_decoder(syntax).add_plugin(PLUGIN_LABEL, (__name__, "_decode_frame"))
        except ValueError:  # pydicom: this label is already registered
            pass
