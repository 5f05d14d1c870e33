#!/usr/bin/env python3
"""Checks a screenshot of a moesim HTML page: the charts are drawn, not only present.

usage: html_png_check.py run|sweep PAGE.png

Reads the PNG with the standard library only (zlib), then checks that the page is mostly
covered by charts (non-white pixels in every band of its height), that the series colours
of the charts show up, and for a run page that the heat map's viridis colours cover a
large area. Prints what it measured; exits 1 with the reason on failure.
"""
import struct
import sys
import zlib


def read_png(path):
    with open(path, "rb") as stream:
        data = stream.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG file")
    position, chunks, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        sys.exit(f"{path}: expected an 8-bit RGB(A) non-interlaced PNG, got depth {depth} colour type {colour}")
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(line)
        previous = line
    return width, height, channels, rows


def hex_colour(text):
    return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))


# Series colours of the charts (sim/report/svg.cpp palette) and viridis anchors.
SERIES = {"blue": "#4e79a7", "orange": "#f28e2b", "red": "#e15759"}
VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]


def main():
    kind, path = sys.argv[1], sys.argv[2]
    width, height, channels, rows = read_png(path)
    counts = {}
    band_count = 6
    band_ink = [0] * band_count
    # The page's own content ends where the last non-white row is.
    last_ink_row = 0
    for y, row in enumerate(rows):
        ink = 0
        for x in range(0, width * channels, channels):
            pixel = (row[x], row[x + 1], row[x + 2])
            if pixel != (255, 255, 255):
                ink += 1
                counts[pixel] = counts.get(pixel, 0) + 1
        if ink:
            last_ink_row = y
        band_ink[min(band_count - 1, y * band_count // height)] += ink

    def near(target, tolerance=24):
        r, g, b = hex_colour(target)
        return sum(n for (pr, pg, pb), n in counts.items()
                   if abs(pr - r) <= tolerance and abs(pg - g) <= tolerance and abs(pb - b) <= tolerance)

    failures = []
    total = width * height
    ink_total = sum(band_ink)
    print(f"{path}: {width}x{height}, {100 * ink_total / total:.1f} % non-white, content to row {last_ink_row}")
    content_bands = max(1, -(-(last_ink_row + 1) * band_count // height))
    for band in range(content_bands):
        share = band_ink[band] / (total / band_count)
        print(f"  band {band}: {100 * share:.1f} % non-white")
        if share < 0.04:
            failures.append(f"band {band} of the page is nearly blank ({100 * share:.1f} % non-white)")
    if kind == "run" and last_ink_row < 0.8 * height:
        failures.append(f"the run page ends at row {last_ink_row} of {height}: charts are missing")
    for name, colour in SERIES.items():
        # Lines are thin and anti-aliased at half scale: allow shades near the colour.
        found = near(colour, 25)
        print(f"  series colour {name} {colour}: {found} pixels")
        if found < 150:
            failures.append(f"too few pixels of the {name} series colour {colour} ({found})")
    if kind == "run":
        viridis_total = 0
        for colour in VIRIDIS:
            found = near(colour, 40)
            viridis_total += found
            print(f"  heat map colour {colour}: {found} pixels")
        # The heat map is 16 x 64 cells over about 1000 x 250 px (half that at scale 0.5).
        if viridis_total < 0.02 * total:
            failures.append(f"the heat map's colours cover only {viridis_total} pixels")
        spread = sum(1 for colour in VIRIDIS if near(colour, 40) >= 20)
        if spread < 3:
            failures.append(f"the heat map shows only {spread} of 5 viridis bands")
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
