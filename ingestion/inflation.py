"""How much a PDF inflates to, counted before any backend parses it. Pure.

A 1.5 MB PDF whose content stream inflates to 800 MB of path operators drove PDFium to 15.6 GB of
memory (../shared/MEASUREMENTS.md); a timeout does not bound memory. So extraction first counts the bytes
the document's Flate streams decompress to, streaming, and stops counting at the limit: the check costs at
most `limit` bytes of decompression and a few kilobytes of memory, and a bomb ends as `too_large`.
Image streams are skipped: text extraction never decodes them, and scans are legitimately large.
"""

from __future__ import annotations

import re
import zlib

_STREAM = re.compile(rb"stream\r?\n")
_CHUNK = 1 << 16
_LOOKBACK = 512  # bytes before `stream` searched for the stream's dictionary


def inflated_bytes(data: bytes, limit: int) -> int:
    """Bytes the non-image Flate streams of `data` decompress to, counted up to just past `limit`
    (a result > limit means "over the limit"; how far over is not measured)."""
    total = 0
    for match in _STREAM.finditer(data):
        head = data[max(0, match.start() - _LOOKBACK) : match.start()]
        dictionary = head[head.rfind(b"<<") :] if b"<<" in head else head
        if b"/FlateDecode" not in dictionary and b"/Fl " not in dictionary and b"/Fl]" not in dictionary:
            continue
        if b"/Image" in dictionary:
            continue
        total += _inflate_counting(data, match.end(), limit - total + 1)
        if total > limit:
            return total
    return total


def _inflate_counting(data: bytes, start: int, budget: int) -> int:
    """Decompressed bytes of the zlib stream at `start`, at most `budget` (then stop)."""
    inflater, counted, position = zlib.decompressobj(), 0, start
    try:
        while position < len(data) and not inflater.eof and counted < budget:
            pending = data[position : position + _CHUNK]
            position += _CHUNK
            while pending and counted < budget and not inflater.eof:
                counted += len(inflater.decompress(pending, min(budget - counted, 1 << 20)))
                pending = inflater.unconsumed_tail
    except zlib.error:  # a broken stream: the backends will judge the file
        pass
    return counted
