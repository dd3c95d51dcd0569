"""Logo uploads: decoded by Pillow as PNG, JPEG or WebP, then re-encoded as a fresh PNG.

Nothing of the uploaded file is kept but its pixels: no metadata, no trailing bytes, no
colour profile, no second frame. So a file that is also HTML or a script (a polyglot) comes
out as a plain image, and what the portal serves is always a PNG it wrote itself. SVG is
never accepted: it is a document that can carry scripts, not an image.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from portal.exceptions import Invalid

MAX_BYTES = 1024 * 1024  # the largest upload accepted (1 MiB)
MAX_SIDE = 4000  # pixels, either side, as the file declares them
# Pillow refuses to decode more pixels than this (a decompression bomb: a small file that
# expands to gigabytes); twice as many raise an error, more than this a warning, both refused.
Image.MAX_IMAGE_PIXELS = 16_000_000
FORMATS = ("PNG", "JPEG", "WEBP")
BOX = (960, 320)  # the stored logo fits in this; the header shows it 40 px high
CONTENT_TYPE = "image/png"


class LogoError(Invalid):
    """An upload that is not a logo the portal accepts, with the reason."""


@dataclass(frozen=True)
class Logo:
    """A re-encoded logo, ready to store or to preview."""

    data: bytes
    width: int
    height: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def reencode(upload: bytes, *, optimize: bool = True) -> Logo:
    """Decode `upload` as a PNG, JPEG or WebP image and encode its pixels as a new PNG.

    `optimize` spends about twice the time for a smaller file: worth it for the stored logo,
    not for each redraw of the preview.
    """
    if not upload:
        raise LogoError("The logo file is empty.")
    if len(upload) > MAX_BYTES:
        raise LogoError(
            f"The logo is {_megabytes(len(upload))}; the largest accepted is "
            f"{_megabytes(MAX_BYTES)}."
        )
    if upload.lstrip()[:5].lower() in (b"<?xml", b"<svg ") or b"<svg" in upload[:1024].lower():
        raise LogoError("SVG logos are not accepted: upload a PNG, JPEG or WebP image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(upload), formats=FORMATS) as image:
                width, height = image.size
                if width > MAX_SIDE or height > MAX_SIDE:
                    raise LogoError(
                        f"The logo is {width} by {height} pixels; at most {MAX_SIDE} pixels "
                        "a side are accepted."
                    )
                image.seek(0)  # the first frame of an animation
                image.load()
                pixels = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LogoError(
            "The logo declares more pixels than the portal decodes (a decompression bomb?); "
            "upload a smaller image."
        ) from exc
    except UnidentifiedImageError as exc:
        raise LogoError("This file is not a PNG, JPEG or WebP image.") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated, corrupt
        raise LogoError("This image is damaged or incomplete and cannot be read.") from exc
    return _encode(pixels, optimize)


def _encode(image: Image.Image, optimize: bool) -> Logo:
    transparent = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    mode = "RGBA" if transparent else "RGB"
    converted = image.convert(mode)
    converted.thumbnail(BOX, Image.Resampling.LANCZOS)
    # A new image from the raw pixels: no metadata, profile or chunk of the upload survives.
    clean = Image.frombytes(mode, converted.size, converted.tobytes())
    out = io.BytesIO()
    clean.save(out, format="PNG", optimize=optimize)
    return Logo(out.getvalue(), clean.width, clean.height)
