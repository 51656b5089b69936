"""LZ4 block compression for sections.

The Swift encoder calls liblz4's ``LZ4_compress_default`` (level 0) and ``LZ4_compress_HC``
(levels 1–12). The ``lz4`` package's HC blocks are the same bytes, but its fast-mode blocks are
not (it is built with other table settings), so for level 0 this module calls the system
liblz4 through ctypes when one is installed (``liblz4.so.1``: on Debian and Ubuntu a dependency
of systemd and apt, so nearly always present) and falls back to the ``lz4`` package otherwise:
its blocks are valid LZ4 that every decoder reads, only not byte-identical to Swift's.
``UPLINK_FL_LZ4=package`` forces the package.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional

import lz4.block as _block

__all__ = ["compress_block", "backend"]

_lib = None
if os.environ.get("UPLINK_FL_LZ4", "") != "package":
    for name in (ctypes.util.find_library("lz4"), "liblz4.so.1", "liblz4.dylib"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.LZ4_compress_default.restype = ctypes.c_int
            lib.LZ4_compress_default.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
            lib.LZ4_versionNumber.restype = ctypes.c_int
            _lib = lib
            break
        except (OSError, AttributeError):
            continue


def backend() -> str:
    """Which compressor makes level-0 LZ4 sections: ``"liblz4 1.9.4"`` (system, byte-identical
    to Swift's frames) or ``"lz4-package"``."""
    if _lib is None:
        return "lz4-package"
    v = _lib.LZ4_versionNumber()
    return f"liblz4 {v // 10000}.{v // 100 % 100}.{v % 100}"


def compress_block(raw, level: int) -> Optional[bytes]:
    """The LZ4 block of `raw` if it is smaller than `raw`, else None."""
    size = len(raw)
    if size <= 1:
        return None
    if level == 0 and _lib is not None and size < 0x7E000000:
        src = bytes(raw)
        cap = size - 1
        out = ctypes.create_string_buffer(cap)
        written = _lib.LZ4_compress_default(src, out, size, cap)
        return out.raw[:written] if written > 0 else None
    if level == 0:
        out = _block.compress(raw, mode="default", store_size=False)
    else:
        out = _block.compress(raw, mode="high_compression", compression=level, store_size=False)
    return out if len(out) < size else None
