#!/usr/bin/env python3
"""icons/make_icons.py — draws BucketFTP's icons (Python stdlib only, no image library):
the app icon (a blue bucket with an up/down arrow) at every size the packages want
(NxN.png for 16…256, icon.png at 512 for the .deb/.rpm hicolor theme and Tauri), icon.ico
(16…256, Windows: the .exe resource and the NSIS installer) and icon.icns (macOS bundle);
the three tray icons (the bucket with a green, grey or red status dot: running, stopped,
error) and their macOS template versions (black + alpha only: the menu bar tints them; the
state is a filled dot, a ring, or a dot with a bar). Run it from anywhere; it rewrites the
PNG/ICO/ICNS files next to itself.
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


TEMPLATE_BLACK = (0, 0, 0, 255)
CLEAR = (0, 0, 0, 0)


def shade_template(x, y, mark):
    """Template tray icon: black where the coloured icon is opaque, arrows cut out; the
    status mark replaces the coloured dot (running: filled, stopped: ring, error: bar)."""
    dx, dy = x - 0.78, y - 0.78
    d = math.hypot(dx, dy)
    if d < 0.22:
        if d > 0.17:
            return CLEAR  # a gap between the bucket and the mark
        if mark == "running":
            return TEMPLATE_BLACK
        if mark == "stopped":
            return TEMPLATE_BLACK if d > 0.11 else CLEAR
        # error: a dot with a clear horizontal bar
        return CLEAR if abs(dy) < 0.03 else TEMPLATE_BLACK
    part = in_bucket(x, y)
    if part is None or (part == "body" and in_arrows(x, y)):
        return CLEAR
    return TEMPLATE_BLACK


def shade(x, y, dot):
    if isinstance(dot, str):
        return shade_template(x, y, dot)
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


def icns_bytes(pngs):
    """An ICNS holding PNG images: [(size, png_bytes)] for 16, 32, 128, 256, 512 px."""
    kinds = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}
    body = b"".join(kinds[size] + struct.pack(">I", 8 + len(png)) + png for size, png in pngs)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    sizes = (16, 24, 32, 48, 64, 128, 256)
    app = {s: render(s) for s in sizes + (512,)}
    for s in sizes:
        write(f"{s}x{s}.png", app[s])
    write("icon.png", app[512])
    write("icon.ico", ico_bytes([(s, app[s]) for s in (16, 24, 32, 48, 64, 256)]))
    write("icon.icns", icns_bytes([(s, app[s]) for s in (16, 32, 64, 128, 256, 512)]))
    for name, dot in (("running", (40, 180, 70)), ("stopped", (150, 150, 150)), ("error", (220, 50, 40))):
        write(f"tray-{name}.png", render(64, dot))
        # macOS menu bar: 22 pt high, drawn at 2x.
        write(f"tray-template-{name}.png", render(44, name))


if __name__ == "__main__":
    main()
