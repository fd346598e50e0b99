#!/usr/bin/env python3
"""icons/make_icons.py — draws BucketFTP's icons (Python stdlib only, no image library):
the app icon (a blue bucket with an up/down arrow) at 32, 128 and 512 px plus icon.ico, and
the three tray icons (the bucket with a green, grey or red status dot: running, stopped,
error). Run it from anywhere; it rewrites the PNG/ICO files next to itself.
"""

import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SS = 4  # supersampling per axis, for smooth edges


def png_bytes(size, pixels):
    """pixels: list of rows of (r, g, b, a) tuples -> PNG file bytes."""
    raw = bytearray()
    for row in pixels:
        raw.append(0)
        for r, g, b, a in row:
            raw += bytes((r, g, b, a))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


def in_bucket(x, y):
    """The bucket body: a trapezoid, wide at the top, with a rounded rim (unit square)."""
    top, bottom = 0.22, 0.88
    if y < top - 0.06 or y > bottom:
        return None
    t = (y - top) / (bottom - top)
    half = 0.36 - 0.10 * max(t, 0.0)
    if abs(x - 0.5) > half:
        return None
    # rim: an ellipse at the top
    if y < top + 0.06:
        if ((x - 0.5) / 0.36) ** 2 + ((y - top) / 0.06) ** 2 <= 1.0:
            return "rim"
        return None
    return "body"


def in_arrows(x, y):
    """An up arrow and a down arrow side by side on the bucket."""
    for cx, up in ((0.42, True), (0.58, False)):
        if abs(x - cx) < 0.025 and 0.40 < y < 0.76:
            return True
        head_y = 0.40 if up else 0.76
        dy = (y - head_y) if up else (head_y - y)
        if 0 <= dy < 0.09 and abs(x - cx) < dy * 0.9:
            return True
    return False


def shade(x, y, dot):
    part = in_bucket(x, y)
    if dot is not None:
        dx, dy = x - 0.78, y - 0.78
        d = math.hypot(dx, dy)
        if d < 0.20:
            if d > 0.16:
                return (255, 255, 255, 255)
            return dot + (255,)
    if part is None:
        return (0, 0, 0, 0)
    if part == "rim":
        return (120, 180, 240, 255)
    if in_arrows(x, y):
        return (255, 255, 255, 255)
    return (30, 110, 210, 255)


def render(size, dot=None):
    rows = []
    n = SS * SS
    for py in range(size):
        row = []
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(SS):
                for sx in range(SS):
                    x = (px + (sx + 0.5) / SS) / size
                    y = (py + (sy + 0.5) / SS) / size
                    r, g, b, a = shade(x, y, dot)
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            a = acc[3] / n
            if acc[3]:
                pix = tuple(int(round(c / acc[3])) for c in acc[:3]) + (int(round(a)),)
            else:
                pix = (0, 0, 0, 0)
            row.append(pix)
        rows.append(row)
    return png_bytes(size, rows)


def ico_bytes(pngs):
    """An ICO holding PNG images (Vista+ format): [(size, png_bytes)]."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = 6 + 16 * len(pngs)
    entries, data = b"", b""
    for size, png in pngs:
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset + len(data))
        data += png
    return header + entries + data


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    app = {s: render(s) for s in (32, 128, 256, 512)}
    write("32x32.png", app[32])
    write("128x128.png", app[128])
    write("icon.png", app[512])
    write("icon.ico", ico_bytes([(32, app[32]), (256, app[256])]))
    for name, dot in (("running", (40, 180, 70)), ("stopped", (150, 150, 150)), ("error", (220, 50, 40))):
        write(f"tray-{name}.png", render(64, dot))


if __name__ == "__main__":
    main()
