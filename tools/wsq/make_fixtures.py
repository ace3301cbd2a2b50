"""Makes the WSQ conformance fixtures in crates/ipseity-finger/tests/data/wsq/.

A synthetic ridge pattern (no real person's fingerprint) is encoded and decoded by
NIST NBIS 5.0.0's WSQ codec, as bundled in the Python package `wsq` (0.9). That
package's own `compress` fixes the bit rate at 0.75, so the NBIS entry points
`wsq_encode_mem` and `wsq_decode_mem` are called directly through ctypes from the
package's compiled extension module, which exports them.

Run through tools/wsq/make_fixtures.sh, which builds the virtual environment.
"""

import ctypes
import ctypes.util
import glob
import os
import sys

import numpy as np
from PIL import Image


def load_nbis():
    import _wsq  # the package's extension module; holds the NBIS code

    lib = ctypes.CDLL(_wsq.__file__)
    lib.wsq_encode_mem.argtypes = [
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_float,
        ctypes.POINTER(ctypes.c_ubyte),
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_char_p,
    ]
    lib.wsq_decode_mem.argtypes = [
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_ubyte),
        ctypes.c_int,
    ]
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.free.argtypes = [ctypes.c_void_p]
    return lib, libc


def nbis_encode(lib, libc, gray, bitrate, ppi):
    h, w = gray.shape
    buf = (ctypes.c_ubyte * (w * h)).from_buffer_copy(gray.tobytes())
    out = ctypes.POINTER(ctypes.c_ubyte)()
    olen = ctypes.c_int()
    rc = lib.wsq_encode_mem(ctypes.byref(out), ctypes.byref(olen), bitrate, buf, w, h, 8, ppi, None)
    if rc != 0:
        sys.exit(f"wsq_encode_mem failed: {rc}")
    data = ctypes.string_at(out, olen.value)
    libc.free(out)
    return data


def nbis_decode(lib, libc, data):
    buf = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
    out = ctypes.POINTER(ctypes.c_ubyte)()
    w, h, d, ppi, lossy = (ctypes.c_int() for _ in range(5))
    rc = lib.wsq_decode_mem(
        ctypes.byref(out), ctypes.byref(w), ctypes.byref(h), ctypes.byref(d),
        ctypes.byref(ppi), ctypes.byref(lossy), buf, len(data),
    )
    if rc != 0:
        sys.exit(f"wsq_decode_mem failed: {rc}")
    pixels = np.frombuffer(ctypes.string_at(out, w.value * h.value), dtype=np.uint8)
    libc.free(out)
    return pixels.reshape(h.value, w.value), ppi.value


def ridges(width, height, seed):
    """A fingerprint-like 8-bit image: curved ridges (period about 9 px, as at
    500 ppi) under an elliptical pad, light sensor noise, white background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = width * 0.48, height * 0.42
    dx, dy = x - cx, (y - cy) * 1.15
    r = np.hypot(dx, dy)
    # A whorl-like core: radial phase turned once by the angle (an integer
    # multiple keeps the phase continuous), plus a slow warp.
    phase = 2 * np.pi * r / 9.0 + np.arctan2(dy, dx) + 2.0 * np.sin(x / 55.0 + y / 80.0)
    pad = np.clip(1.3 - np.hypot((x - cx) / (width * 0.45), (y - cy) / (height * 0.48)), 0.0, 1.0)
    img = 235 - pad * (95 + 85 * np.sin(phase)) + rng.normal(0.0, 4.0, size=(height, width))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def main(out_dir):
    lib, libc = load_nbis()
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "*.wsq")) + glob.glob(os.path.join(out_dir, "*.png")):
        os.remove(old)
    cases = [
        # name, width, height, bit rate, ppi, seed
        ("ridges_400x500_r075", 400, 500, 0.75, 500, 1),
        ("ridges_400x500_r225", 400, 500, 2.25, 500, 1),
        # Odd sides exercise the uneven subband splits and the inverted bands.
        ("ridges_253x317_r150", 253, 317, 1.5, 1000, 2),
    ]
    originals = {}
    for name, w, h, rate, ppi, seed in cases:
        key = (w, h, seed)
        if key not in originals:
            originals[key] = ridges(w, h, seed)
            Image.fromarray(originals[key]).save(
                os.path.join(out_dir, f"ridges_{w}x{h}_original.png"), optimize=True
            )
        gray = originals[key]
        data = nbis_encode(lib, libc, gray, rate, ppi)
        with open(os.path.join(out_dir, f"{name}.wsq"), "wb") as f:
            f.write(data)
        decoded, got_ppi = nbis_decode(lib, libc, data)
        Image.fromarray(decoded).save(os.path.join(out_dir, f"{name}.nbis.png"), optimize=True)
        print(f"{name}: {len(data)} bytes, {8 * len(data) / (w * h):.3f} bpp, "
              f"NBIS ppi {got_ppi}, NBIS PSNR vs original {psnr(gray, decoded):.2f} dB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/ipseity-finger/tests/data/wsq")
