"""A corpus of hostile uploads, made on the spot with Pillow and numpy (deterministic, nothing
downloaded), each with what the service must do with it: accept it and process it upright, or
refuse it with a 4xx whose detail names the problem.

    python scripts/hostile_images.py OUT_DIR   # writes the files, prints a markdown table

tests/integration/test_hostile_uploads.py submits every entry to `POST /api/v1/tasks` and runs the accepted
ones through the real model code. Pictures that are accepted carry one filled circle ("the
shape") at a known place of the upright picture, so a test can check where it is found.
"""

from __future__ import annotations

import argparse
import io
import math
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from serve_app.settings import LimitsSettings

ACCEPTED = 202
# The service's default limits (tests pass the limits of the app they run).
DEFAULT_MAX_UPLOAD_BYTES: int = LimitsSettings.model_fields["max_upload_bytes"].default
DEFAULT_MAX_IMAGE_PIXELS: int = LimitsSettings.model_fields["max_image_pixels"].default
PICTURE_SIZE = (240, 160)  # upright width × height of the pictures that carry the shape
SHAPE_AT = (0.25, 0.3)  # the shape's centre in the upright picture, as fractions of width and height
SHAPE_DIAMETER = 60


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    filename: str  # as the client sends it
    content_type: str  # as the client claims it
    status: int = ACCEPTED  # 202, or the 4xx the service must answer
    detail: str = ""  # refused: a word the answer's `detail` must contain
    size: tuple[int, int] | None = None  # accepted: the upright (width, height) the service must report
    stored_type: str = ""  # accepted: the content type sniffed from the bytes, served back with the input
    shape_at: tuple[float, float] | None = None  # accepted: where the shape's centre is in the upright picture

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    def outcome(self) -> str:
        if not self.accepted:
            return f"{self.status}, detail mentions “{self.detail}”"
        width, height = self.size or (0, 0)
        found = ", shape found upright" if self.shape_at else ""
        return f"accepted as {self.stored_type}, {width}×{height}{found}"


# ---------------------------------------------------------------------------------------------
# Building blocks


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def shape_box(size: tuple[int, int] = PICTURE_SIZE, at: tuple[float, float] = SHAPE_AT) -> tuple[int, int, int, int]:
    cx, cy = at[0] * size[0], at[1] * size[1]
    r = SHAPE_DIAMETER / 2
    return round(cx - r), round(cy - r), round(cx + r) - 1, round(cy + r) - 1


def picture(mode: str = "RGB", background: object = "white", fill: object = "blue", at: tuple[float, float] = SHAPE_AT) -> Image.Image:
    """The upright picture: a plain background with the shape drawn on it."""
    image = Image.new(mode, PICTURE_SIZE, background)
    ImageDraw.Draw(image).ellipse(shape_box(at=at), fill=fill)
    return image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_zeros(width: int, height: int, *, bit_depth: int, colour_type: int, rows: int) -> bytes:
    """A PNG declaring width × height whose first `rows` rows are zeros, deflated (tiny on disk)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    channels = {0: 1, 2: 3}[colour_type]
    row = 1 + math.ceil(width * channels * bit_depth / 8)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    zero_rows = bytes(row * min(rows, 1024))
    body = b"".join(compressor.compress(zero_rows) for _ in range(math.ceil(rows / 1024))) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def exif_bytes(**tags: object) -> bytes:
    exif = Image.Exif()
    for key, value in tags.items():
        exif[EXIF_TAGS[key]] = value
    return exif.tobytes()


EXIF_TAGS = {"orientation": 0x0112, "description": 0x010E, "software": 0x0131}


def accepted(name: str, data: bytes, fmt: str, *, filename: str = "", content_type: str = "", size=PICTURE_SIZE, shape: bool = True) -> Hostile:
    stored_type = f"image/{fmt.lower()}"
    return Hostile(
        name, data, filename or f"upload.{fmt.lower()}", content_type or stored_type,
        size=size, stored_type=stored_type, shape_at=SHAPE_AT if shape else None,
    )


def refused(name: str, data: bytes, status: int, detail: str, *, filename: str, content_type: str) -> Hostile:
    return Hostile(name, data, filename, content_type, status=status, detail=detail)


# ---------------------------------------------------------------------------------------------
# Broken files


def empty_file() -> list[Hostile]:
    return [refused("zero bytes", b"", 422, "empty", filename="empty.jpg", content_type="image/jpeg")]


def truncated() -> list[Hostile]:
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    jpeg, png = encode(noise, "JPEG", quality=90), encode(noise, "PNG")
    return [
        refused("truncated JPEG", jpeg[: len(jpeg) // 2], 422, "truncated", filename="cut.jpg", content_type="image/jpeg"),
        refused("truncated PNG", png[: len(png) // 2], 422, "truncated", filename="cut.png", content_type="image/png"),
    ]


# ---------------------------------------------------------------------------------------------
# Lies about the type


def wrong_type() -> list[Hostile]:
    text = b"Dear server, I am a PNG. Honestly.\n"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
    return [
        accepted("PNG sent as x.jpg, image/jpeg", encode(picture(), "PNG"), "PNG", filename="x.jpg", content_type="image/jpeg"),
        accepted("WebP sent as photo.png, image/png", encode(picture(), "WEBP", lossless=True), "WEBP", filename="photo.png", content_type="image/png"),
        accepted("PNG named ../../etc/passwd", encode(picture(), "PNG"), "PNG", filename="../../etc/passwd", content_type="image/png"),
        refused("text file sent as image/png", text, 415, "Unsupported", filename="x.png", content_type="image/png"),
        refused("SVG with script sent as image/png", svg, 415, "Unsupported", filename="x.png", content_type="image/png"),
    ]


# ---------------------------------------------------------------------------------------------
# Polyglots: one file, valid as two formats


def deterministic_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("payload.sh", date_time=(2020, 1, 1, 0, 0, 0)), "#!/bin/sh\necho owned\n")
    return buffer.getvalue()


def polyglots() -> list[Hostile]:
    jpeg = encode(picture(), "JPEG", quality=95)
    html = b"<html><body><script>alert(document.domain)</script></body></html>"
    gif = encode(Image.new("P", (8, 8)), "GIF")
    # GIF89a/*…*/=alert(1); is both a GIF and a script: the width bytes open a JS comment.
    gif_js = gif[:6] + b"/*" + gif[8:] + b"*/=alert(document.domain);//"
    # Trailing data after a JPEG's end is common (phones append videos), so the picture is
    # accepted; the stored bytes are served back only as image/jpeg with `nosniff`.
    return [
        accepted("JPEG with a ZIP appended", jpeg + deterministic_zip(), "JPEG", filename="photo.jpg"),
        accepted("JPEG with HTML/script appended", jpeg + html, "JPEG", filename="photo.jpg"),
        refused("GIF/JavaScript polyglot", gif_js, 415, "Unsupported", filename="x.gif", content_type="image/gif"),
        refused("PDF header, then a PNG", b"%PDF-1.7\n" + encode(picture(), "PNG"), 415, "Unsupported", filename="x.png", content_type="image/png"),
    ]


# ---------------------------------------------------------------------------------------------
# Decompression bombs: huge declared dimensions in a tiny file


def patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    return data[:offset] + struct.pack(fmt, *values) + data[offset + struct.calcsize(fmt):]


def bombs(max_image_pixels: int) -> list[Hostile]:
    jpeg = encode(Image.new("RGB", (16, 16), "white"), "JPEG")
    sof = jpeg.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    bmp = encode(Image.new("RGB", (16, 16), "white"), "BMP")
    side = math.isqrt(max_image_pixels) + 1  # just over the service's own limit, under Pillow's
    return [
        refused(
            "PNG bomb 100000×100000 (1-bit zeros)",
            png_of_zeros(100_000, 100_000, bit_depth=1, colour_type=0, rows=2048), 413, "pixels",
            filename="bomb.png", content_type="image/png",
        ),
        refused(
            f"PNG {side}×{side} of zeros, over the pixel limit",
            png_of_zeros(side, side, bit_depth=8, colour_type=0, rows=side), 413, "pixels",
            filename="big.png", content_type="image/png",
        ),
        refused("JPEG header claiming 65000×65000", patched(jpeg, sof + 5, ">HH", 65000, 65000), 413, "pixels", filename="bomb.jpg", content_type="image/jpeg"),
        refused("BMP header claiming 50000×50000", patched(bmp, 18, "<ii", 50000, 50000), 413, "pixels", filename="bomb.bmp", content_type="image/bmp"),
    ]


# ---------------------------------------------------------------------------------------------
# EXIF: huge, broken, looping


def jpeg_with_app1(jpeg: bytes, payload: bytes) -> bytes:
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def huge_exif(max_upload_bytes: int) -> list[Hostile]:
    jpeg_exif = exif_bytes(description="A" * 65_000)  # a JPEG segment holds at most 64 KiB
    # PNG's eXIf chunk has no such bound: fill the upload to just under the limit.
    near = max_upload_bytes - len(encode(picture(), "PNG")) - 2_000
    over = max_upload_bytes + 100_000
    # A TIFF block whose first IFD points at itself as the next IFD.
    looping = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0131, 2, 2, 0x4100, 0) + struct.pack(">I", 8)
    corrupt = b"MM\x00\x2a" + struct.pack(">IH", 8, 0xFFFF) + struct.pack(">HHII", 0x010E, 2, 0x7FFFFFFF, 64)
    jpeg = encode(picture(), "JPEG", quality=95)
    return [
        accepted("JPEG with 65 KB of EXIF", encode(picture(), "JPEG", quality=95, exif=jpeg_exif), "JPEG"),
        accepted(
            f"PNG with {near // 1_000_000} MB of EXIF, just under the size limit",
            encode(picture(), "PNG", exif=exif_bytes(description="B" * near)), "PNG",
        ),
        refused(
            "PNG with EXIF past the size limit", encode(picture(), "PNG", exif=exif_bytes(description="C" * over)),
            413, "bytes", filename="big.png", content_type="image/png",
        ),
        accepted("JPEG with a looping EXIF IFD chain", jpeg_with_app1(jpeg, b"Exif\x00\x00" + looping), "JPEG"),
        accepted("JPEG with corrupt EXIF (65535 entries, absurd count)", jpeg_with_app1(jpeg, b"Exif\x00\x00" + corrupt), "JPEG"),
        accepted("JPEG with EXIF orientation 9 (invalid)", encode(picture(), "JPEG", quality=95, exif=exif_bytes(orientation=9)), "JPEG"),
    ]


# ---------------------------------------------------------------------------------------------
# Unusual pixel modes


def pixel_modes() -> list[Hostile]:
    grey16 = np.full(PICTURE_SIZE[::-1], 0x4000, dtype=np.uint16)  # 16-bit: dark grey background…
    shape = np.asarray(picture("L", 0, 255)) > 0
    grey16[shape] = 0xC000  # …and a light grey shape; clipping to 8 bits would make both white
    rgba = picture("RGBA", (255, 255, 255, 40), (0, 0, 255, 255))
    return [
        accepted("16-bit grayscale PNG (I;16)", encode(Image.fromarray(grey16), "PNG"), "PNG"),
        accepted("CMYK JPEG", encode(picture("CMYK", (0, 0, 0, 0), (255, 255, 0, 0)), "JPEG", quality=95), "JPEG"),
        accepted("palette PNG with transparency", encode(picture("RGB").convert("P"), "PNG", transparency=0), "PNG"),
        accepted("RGBA PNG, translucent background", encode(rgba, "PNG"), "PNG"),
        accepted("LA PNG (grey + alpha)", encode(picture("LA", (230, 255), (20, 255)), "PNG"), "PNG"),
    ]


# ---------------------------------------------------------------------------------------------
# Animations


def animations() -> list[Hostile]:
    first, second = picture(), picture(at=(0.75, 0.7))  # the shape moves in the second frame
    return [
        refused(
            "animated GIF", encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0),
            415, "Unsupported", filename="anim.gif", content_type="image/gif",
        ),
        accepted(
            "animated WebP (first frame is used)",
            encode(first, "WEBP", save_all=True, append_images=[second], duration=100, loop=0, lossless=True), "WEBP",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Extreme shapes


def extreme_sizes() -> list[Hostile]:
    def plain(size: tuple[int, int]) -> bytes:
        return encode(Image.new("RGB", size, (200, 30, 30)), "PNG")

    return [
        accepted(f"{w}×{h} image", plain((w, h)), "PNG", size=(w, h), shape=False)
        for w, h in ((1, 1), (20_000, 1), (1, 20_000))
    ]


# ---------------------------------------------------------------------------------------------
# EXIF-rotated photos: stored sideways (or mirrored), upright once the orientation is applied

# How to store the upright picture so that applying `orientation` gives it back (each of these
# undoes what ImageOps.exif_transpose does for that orientation).
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def rotated_photos() -> list[Hostile]:
    return [
        accepted(
            f"JPEG with EXIF orientation {orientation}",
            encode(picture().transpose(STORED_AS[orientation]), "JPEG", quality=95, exif=exif_bytes(orientation=orientation)),
            "JPEG", filename=f"orientation-{orientation}.jpg",
        )
        for orientation in (3, 5, 6, 8)
    ]


# ---------------------------------------------------------------------------------------------

def corpus(max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> list[Hostile]:
    """Every hostile upload, with what the service must do with it under these limits."""
    return [
        *empty_file(),
        *truncated(),
        *wrong_type(),
        *polyglots(),
        *bombs(max_image_pixels),
        *huge_exif(max_upload_bytes),
        *pixel_modes(),
        *animations(),
        *extreme_sizes(),
        *rotated_photos(),
    ]


def file_name(index: int, entry: Hostile) -> str:
    """A safe file name on disk (never the client's filename, which may be hostile)."""
    slug = "".join(c if c.isalnum() else "-" for c in entry.name.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    suffix = Path(entry.filename).suffix if Path(entry.filename).suffix[1:].isalnum() else ".bin"
    return f"{index:02d}-{slug[:60]}{suffix}"


def markdown_table(entries: list[Hostile]) -> str:
    lines = ["| # | file | bytes | sent as | expected outcome |", "|---|---|---:|---|---|"]
    for i, entry in enumerate(entries, 1):
        lines.append(f"| {i} | {entry.name} | {len(entry.data):,} | `{entry.filename}`, {entry.content_type} | {entry.outcome()} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write the files into (created if missing)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    entries = corpus()
    for i, entry in enumerate(entries, 1):
        (args.out / file_name(i, entry)).write_bytes(entry.data)
    print(markdown_table(entries))


if __name__ == "__main__":
    main()
