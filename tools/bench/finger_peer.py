"""Fingerprint peer benchmark: NIST NBIS (MINDTCT + BOZORTH3) on the same impressions as Ipseity.

The peer is the `nbis-py` package (Rust/UniFFI bindings that ship NBIS compiled
into one self-contained shared library): MINDTCT extracts minutiae, BOZORTH3
compares two minutiae sets. It is the public reference baseline for minutiae
matching and runs on one CPU core.

Input: a directory of 8-bit grayscale 500 ppi PNG impressions named
`{finger:05}_{impression}.png` (fingers from 00001, impressions 1..K), dark
ridges on a light background.

Protocol (FVC): genuine pairs are every (i, j), i < j, of the impressions of a
finger (K(K-1)/2 per finger); impostor pairs are the first impression of each
finger against the first impression of every later finger (N(N-1)/2 in all).
`--impostors all` instead compares every impression with every impression of
every other finger (for a larger impostor set).

Accuracy figures follow `ipseity-eval`'s `summarize` (a comparison is accepted
when score >= threshold; EER interpolated on the DET segment that crosses the
diagonal; FNMR at FMR x taken at the smallest threshold whose FMR <= x, and
reported as null when fewer than 1/x impostor scores exist), so the two sides
can be put in one table.

`--synth` first writes a development set of synthetic impressions into the
directory (no real person's fingerprint is ever used): a master ridge pattern
per finger grown by iterated oriented Gabor filtering over an orientation field
with cores and deltas, then per impression a rotation, translation, elastic
distortion, pressure change, partial contact and sensor noise.
"""
import argparse
import csv
import json
import math
import os
import platform
import re
import statistics
import sys
import time

try:
    import numpy as np
    from PIL import Image
except ImportError:  # only --synth needs them; --self-test runs without
    np = Image = None

NAME_RE = re.compile(r"^(\d{5})_(\d+)\.png$")


# ---------------------------------------------------------------------------
# Accuracy (mirrors crates/ipseity-eval/src/det.rs)
# ---------------------------------------------------------------------------


def det_curve(genuine, impostor):
    """DET points (threshold, fmr, fnmr), one per distinct score plus one above the top."""
    g = sorted(genuine)
    im = sorted(impostor)
    ng, ni = len(g), len(im)
    points = []
    gi = ii = 0
    while gi < ng or ii < ni:
        if gi < ng and ii < ni:
            t = min(g[gi], im[ii])
        elif gi < ng:
            t = g[gi]
        else:
            t = im[ii]
        points.append((t, (ni - ii) / ni, gi / ng))
        while gi < ng and g[gi] <= t:
            gi += 1
        while ii < ni and im[ii] <= t:
            ii += 1
    top = max(g[-1], im[-1])
    points.append((math.nextafter(float(top), math.inf), 0.0, 1.0))
    return points


def _resolvable(n, fmr):
    return fmr > 0.0 and n * fmr >= 1.0 - 1e-9


def threshold_for_fmr(sorted_impostor, fmr):
    """Smallest threshold whose FMR <= fmr, or None when the set cannot resolve fmr."""
    n = len(sorted_impostor)
    if n == 0 or not _resolvable(n, fmr):
        return None
    k = math.floor(n * fmr + 1e-9)
    if k >= n:
        return float(sorted_impostor[0])
    return math.nextafter(float(sorted_impostor[n - 1 - k]), math.inf)


def summarize(genuine, impostor):
    """EER and FNMR at FMR 1e-2 / 1e-3 / 1e-4, as ipseity-eval computes them."""
    if not genuine or not impostor:
        raise ValueError("need at least one genuine and one impostor score")
    points = det_curve(genuine, impostor)
    g = sorted(genuine)
    im = sorted(impostor)
    b = next((i for i, p in enumerate(points) if p[2] >= p[1]), len(points) - 1)
    if b == 0:
        eer = points[0][1]
    else:
        (_, fa, na), (_, fb, nb) = points[b - 1], points[b]
        da, db = na - fa, nb - fb
        s = -da / (db - da) if db - da > 0 else 1.0
        eer = fa + s * (fb - fa)

    def fnmr_at(t):
        # Share of genuine scores strictly below t.
        lo, hi = 0, len(g)
        while lo < hi:
            mid = (lo + hi) // 2
            if g[mid] < t:
                lo = mid + 1
            else:
                hi = mid
        return lo / len(g)

    t2 = threshold_for_fmr(im, 1e-2)
    t3 = threshold_for_fmr(im, 1e-3)
    t4 = threshold_for_fmr(im, 1e-4)
    zero_fmr_t = math.nextafter(float(im[-1]), math.inf)
    return {
        "genuine": len(g),
        "impostor": len(im),
        "eer": eer,
        "eer_threshold": points[b][0],
        "fnmr_at_fmr_1e2": None if t2 is None else fnmr_at(t2),
        "fnmr_at_fmr_1e3": None if t3 is None else fnmr_at(t3),
        "fnmr_at_fmr_1e4": None if t4 is None else fnmr_at(t4),
        "threshold_at_fmr_1e3": t3,
        "threshold_at_fmr_1e4": t4,
        # FVC's ZeroFMR: the lowest FNMR with no impostor accepted.
        "fnmr_at_zero_fmr": fnmr_at(zero_fmr_t),
    }


# ---------------------------------------------------------------------------
# Synthetic development set (fingerprint-like patterns, no real fingers)
# ---------------------------------------------------------------------------

MASTER_H, MASTER_W = 560, 480
IMG_H, IMG_W = 400, 320
N_ORIENT = 16


def _orientation_field(rng, h, w):
    """Ridge orientation (radians, mod pi) from a zero-pole model with random singularities."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    z = xx + 1j * yy
    kind = rng.choice(["loop_l", "loop_r", "whorl", "arch"], p=[0.33, 0.33, 0.24, 0.10])
    cx, cy = w * rng.uniform(0.42, 0.58), h * rng.uniform(0.38, 0.48)
    cores, deltas = [], []
    if kind in ("loop_l", "loop_r"):
        side = -1 if kind == "loop_l" else 1
        cores.append(complex(cx, cy))
        deltas.append(complex(cx + side * w * rng.uniform(0.25, 0.35), cy + h * rng.uniform(0.22, 0.32)))
    elif kind == "whorl":
        d = w * rng.uniform(0.03, 0.07)
        cores += [complex(cx - d, cy - d * 0.5), complex(cx + d, cy + d * 0.5)]
        dy = h * rng.uniform(0.25, 0.32)
        deltas += [complex(cx - w * 0.3, cy + dy), complex(cx + w * 0.3, cy + dy)]
    theta = np.zeros((h, w))
    for c in cores:
        theta += 0.5 * np.angle(z - c)
    for d in deltas:
        theta -= 0.5 * np.angle(z - d)
    if kind == "arch":
        theta = np.arctan(rng.uniform(0.6, 1.1) * np.cos(np.pi * (xx - cx) / w) * np.exp(-((yy - cy) / h) ** 2))
    theta += rng.uniform(-0.15, 0.15)
    return np.mod(theta, np.pi)


def _gabor_bank_fft(h, w, period, sigma):
    """FFTs of even Gabor kernels, one per quantised ridge orientation."""
    r = int(math.ceil(3 * sigma))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    bank = []
    for k in range(N_ORIENT):
        a = k * np.pi / N_ORIENT
        # Normal to the ridge direction `a`.
        u = -xx * np.sin(a) + yy * np.cos(a)
        g = np.exp(-(xx**2 + yy**2) / (2 * sigma**2)) * np.cos(2 * np.pi * u / period)
        g -= g.mean()
        g /= np.abs(g).sum()
        pad = np.zeros((h, w))
        pad[: 2 * r + 1, : 2 * r + 1] = g
        pad = np.roll(pad, (-r, -r), axis=(0, 1))
        bank.append(np.fft.rfft2(pad))
    return bank


def _master(rng, h=MASTER_H, w=MASTER_W):
    """A master ridge pattern in [-1, 1] (ridge = +1)."""
    theta = _orientation_field(rng, h, w)
    period = rng.uniform(8.0, 10.0)
    bank = _gabor_bank_fft(h, w, period, sigma=period * 0.45)
    pos = theta / np.pi * N_ORIENT
    k0 = np.floor(pos).astype(int) % N_ORIENT
    frac = pos - np.floor(pos)
    img = np.zeros((h, w))
    n_seeds = int(h * w / 600)
    img[rng.integers(0, h, n_seeds), rng.integers(0, w, n_seeds)] = rng.choice([-1.0, 1.0], n_seeds)
    for _ in range(14):
        f = np.fft.rfft2(img)
        resp = np.stack([np.fft.irfft2(f * b, s=(h, w)) for b in bank])
        lo = np.take_along_axis(resp, k0[None], 0)[0]
        hi = np.take_along_axis(resp, ((k0 + 1) % N_ORIENT)[None], 0)[0]
        out = (1 - frac) * lo + frac * hi
        img = np.clip(out / (np.std(out) + 1e-9) * 1.5, -1, 1)
    return img


def _smooth_noise(rng, h, w, scale):
    """Low-frequency random field with unit standard deviation."""
    f = np.fft.rfft2(rng.standard_normal((h, w)))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f *= np.exp(-(fx**2 + fy**2) * (scale**2) * 2 * np.pi**2)
    out = np.fft.irfft2(f, s=(h, w))
    return out / (out.std() + 1e-12)


def _bilinear(img, ys, xs, fill):
    h, w = img.shape
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    dy, dx = ys - y0, xs - x0
    out = np.zeros(ys.shape)
    for oy, ox, wgt in ((0, 0, (1 - dy) * (1 - dx)), (0, 1, (1 - dy) * dx), (1, 0, dy * (1 - dx)), (1, 1, dy * dx)):
        yy, xx = y0 + oy, x0 + ox
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        v = np.full(ys.shape, fill, dtype=np.float64)
        v[ok] = img[yy[ok], xx[ok]]
        out += wgt * v
    return out


def _impression(rng, master):
    """One 8-bit impression (dark ridges on light background) of a master pattern."""
    mh, mw = master.shape
    h, w = IMG_H, IMG_W
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ang = np.deg2rad(rng.uniform(-20, 20))
    ty, tx = rng.uniform(-30, 30, 2)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    # Elastic skin distortion: smooth displacement, growing away from the contact centre.
    ry, rx = (yy - cy) / h, (xx - cx) / w
    grow = np.clip(np.hypot(ry, rx) * 2.2, 0, 1.5)
    amp = rng.uniform(3.0, 8.0)
    duy = amp * grow * _smooth_noise(rng, h, w, 60)
    dux = amp * grow * _smooth_noise(rng, h, w, 60)
    ly, lx = yy - cy + duy, xx - cx + dux
    sy = cy + (mh - h) / 2 + ty + ly * np.cos(ang) - lx * np.sin(ang)
    sx = cx + (mw - w) / 2 + tx + ly * np.sin(ang) + lx * np.cos(ang)
    ridge = _bilinear(master, sy, sx, 0.0)
    # Pressure: a dry print thins ridges, a wet one thickens them; varies over the print.
    bias = rng.uniform(-0.35, 0.35) + 0.25 * _smooth_noise(rng, h, w, 40)
    ridge = 1 / (1 + np.exp(-4.0 * (ridge + bias)))
    # Contact region: a slightly irregular ellipse, shifted per impression.
    ey, ex = cy + rng.uniform(-25, 25), cx + rng.uniform(-20, 20)
    ay, ax = h * rng.uniform(0.32, 0.50), w * rng.uniform(0.30, 0.48)
    rim = ((yy - ey) / ay) ** 2 + ((xx - ex) / ax) ** 2 + 0.08 * _smooth_noise(rng, h, w, 30)
    contact = np.clip((1.0 - rim) / 0.12, 0, 1)
    ridge *= contact
    contrast = rng.uniform(90, 200)
    background = rng.uniform(215, 245)
    g = background - contrast * ridge
    g += rng.normal(0, rng.uniform(5, 20), (h, w))
    # Local smudges and ridge breaks (dirt, dry skin, scars).
    g += 60 * np.clip(_smooth_noise(rng, h, w, 5) - 1.5, 0, None)
    for _ in range(rng.integers(0, 4)):
        a0, c0 = rng.uniform(0, np.pi), rng.uniform(-0.3, 0.3) * min(h, w)
        d = np.abs((xx - cx) * np.sin(a0) - (yy - cy) * np.cos(a0) - c0)
        g += 90 * (d < rng.uniform(1.0, 2.5)) * (contact > 0)
    return np.clip(g, 0, 255).astype(np.uint8)


def make_synthetic(directory, fingers, impressions, seed):
    os.makedirs(directory, exist_ok=True)
    for f in range(1, fingers + 1):
        rng = np.random.default_rng([seed, f])
        master = _master(rng)
        for k in range(1, impressions + 1):
            img = _impression(np.random.default_rng([seed, f, k]), master)
            Image.fromarray(img, mode="L").save(os.path.join(directory, f"{f:05}_{k}.png"))


# ---------------------------------------------------------------------------
# Peer
# ---------------------------------------------------------------------------


def load_set(directory, fingers, impressions):
    """{finger: {impression: path}} for the requested fingers and impressions."""
    found = {}
    for name in os.listdir(directory):
        m = NAME_RE.match(name)
        if not m:
            continue
        f, k = int(m.group(1)), int(m.group(2))
        if (fingers is None or f <= fingers) and (impressions is None or k <= impressions):
            found.setdefault(f, {})[k] = os.path.join(directory, name)
    if not found:
        sys.exit(f"no {{finger:05}}_{{impression}}.png files in {directory}")
    return dict(sorted(found.items()))


def new_extractor(ppi=None):
    import nbis

    settings = nbis.NbisExtractorSettings(
        # Keep every minutia: BOZORTH3 itself keeps the best 150 by quality.
        min_quality=0.0,
        get_center=False,
        check_fingerprint=False,
        compute_nfiq2=False,
        ppi=ppi,
    )
    return nbis.new_nbis_extractor(settings)


def extract_all(extractor, items):
    """Templates, wall times and process CPU times (ms) per image for [(key, path)] items.

    Process CPU time above wall time would show helper threads; for NBIS the two
    agree (it is single-threaded), and CPU time stays meaningful when the
    machine is shared.
    """
    templates, wall, cpu = {}, [], []
    for key, path in items:
        with open(path, "rb") as fh:
            data = fh.read()
        c, t = time.process_time(), time.perf_counter()
        templates[key] = extractor.extract_minutiae(data)
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return templates, wall, cpu


_worker_extractor = None


def _worker_init():
    global _worker_extractor
    _worker_extractor = new_extractor()


def _worker_extract(path):
    with open(path, "rb") as fh:
        return len(_worker_extractor.extract_minutiae(fh.read()).get())


def parallel_throughput(paths, jobs):
    """Images per second with one NBIS process per job (the peer's best use of several cores)."""
    import multiprocessing as mp

    with mp.get_context("fork").Pool(jobs, initializer=_worker_init) as pool:
        # Warm every worker before timing.
        pool.map(_worker_extract, paths[:jobs], chunksize=1)
        t = time.perf_counter()
        pool.map(_worker_extract, paths, chunksize=1)
        wall = time.perf_counter() - t
    return {"jobs": jobs, "images": len(paths), "wall_s": wall, "images_per_second": len(paths) / wall}


def ms_stats(times):
    return {
        "n": len(times),
        "mean": statistics.fmean(times),
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
    }


def pairs(sets, impostor_mode):
    genuine, impostor = [], []
    fingers = list(sets)
    for f in fingers:
        ks = sorted(sets[f])
        for a in range(len(ks)):
            for b in range(a + 1, len(ks)):
                genuine.append(((f, ks[a]), (f, ks[b])))
    for a in range(len(fingers)):
        for b in range(a + 1, len(fingers)):
            fa, fb = fingers[a], fingers[b]
            if impostor_mode == "fvc":
                impostor.append(((fa, min(sets[fa])), (fb, min(sets[fb]))))
            else:
                for ka in sorted(sets[fa]):
                    for kb in sorted(sets[fb]):
                        impostor.append(((fa, ka), (fb, kb)))
    return genuine, impostor


def _threads():
    """Threads of this process (Linux), to show whether the peer starts workers."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def self_test():
    """Checks the accuracy code on the cases ipseity-eval's own tests use, and the pair counts."""
    g = [0.5, 0.7, 0.9, 0.95]
    s = summarize([0.8, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4])
    assert s["eer"] == 0.0 and s["eer_threshold"] == 0.8, s
    s = summarize([0.5, 0.9], [0.1, 0.5])
    assert abs(s["eer"] - 0.25) < 1e-12 and s["eer_threshold"] == 0.9, s
    s = summarize([0.4], [0.2, 0.5])
    assert abs(s["eer"] - 0.5) < 1e-12, s
    s = summarize(g, g)
    assert abs(s["eer"] - 0.5) < 1e-3, s
    impostor = [i / 1000 for i in range(1000)]
    genuine = [0.9 + i / 1000 for i in range(100)]
    s = summarize(genuine, impostor)
    assert 0.998 < s["threshold_at_fmr_1e3"] <= 0.999, s
    assert s["fnmr_at_fmr_1e3"] == 0.99 and s["fnmr_at_fmr_1e4"] is None, s
    assert threshold_for_fmr(sorted(impostor[:999]), 1e-3) is None
    assert threshold_for_fmr([0.2, 0.5], 1.0) == 0.2
    assert 0.2 < threshold_for_fmr([0.2, 0.5], 0.5) <= 0.5
    # Ties must all be rejected.
    assert threshold_for_fmr([0.5, 0.5], 0.5) > 0.5
    sets = {f: {k: "" for k in range(1, 5)} for f in range(1, 7)}
    gp, ip = pairs(sets, "fvc")
    assert len(gp) == 6 * 4 * 3 // 2 and len(ip) == 6 * 5 // 2
    assert all(a[0] == b[0] and a[1] < b[1] for a, b in gp)
    assert all(a[1] == 1 and b[1] == 1 and a[0] < b[0] for a, b in ip)
    _, ip = pairs(sets, "all")
    assert len(ip) == 6 * 5 // 2 * 16
    print("self-test: all checks passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="directory of {finger:05}_{impression}.png")
    ap.add_argument("--out", required=True, help="JSON report to write")
    ap.add_argument("--fingers", type=int, help="use fingers 1..N only")
    ap.add_argument("--impressions", type=int, help="use impressions 1..K only")
    ap.add_argument("--impostors", choices=["fvc", "all"], default="fvc")
    ap.add_argument("--ppi", type=int, help="the images' resolution (default: NBIS's 500)")
    ap.add_argument("--scores-csv", help="also write kind,finger_a,imp_a,finger_b,imp_b,score")
    ap.add_argument("--synth", action="store_true", help="first write a synthetic development set into --dir")
    ap.add_argument("--seed", type=int, default=7, help="seed of --synth")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    help="processes for the extraction throughput pass (0 skips it)")
    args = ap.parse_args()

    if args.synth:
        t = time.perf_counter()
        make_synthetic(args.dir, args.fingers or 20, args.impressions or 8, args.seed)
        print(f"synth: wrote {args.fingers or 20} x {args.impressions or 8} impressions to {args.dir} "
              f"in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    sets = load_set(args.dir, args.fingers, args.impressions)
    items = [((f, k), sets[f][k]) for f in sets for k in sorted(sets[f])]
    extractor = new_extractor(args.ppi)

    # Warm-up: the first call initialises the library's tables.
    with open(items[0][1], "rb") as fh:
        extractor.extract_minutiae(fh.read())

    threads_before = _threads()
    templates, t_wall, t_cpu = extract_all(extractor, items)
    minutiae_counts = [len(templates[key].get()) for key, _ in items]
    genuine_pairs, impostor_pairs = pairs(sets, args.impostors)

    def run(pairs_list):
        # BOZORTH3 runs on the calling thread: process CPU seconds are
        # seconds of one core, whatever else the machine is doing.
        scores = []
        c, t = time.process_time(), time.perf_counter()
        for a, b in pairs_list:
            scores.append(int(templates[a].compare(templates[b])))
        return scores, time.perf_counter() - t, time.process_time() - c

    gen_scores, gen_wall, gen_cpu = run(genuine_pairs)
    imp_scores, imp_wall, imp_cpu = run(impostor_pairs)
    threads_after = _threads()
    throughput = parallel_throughput([p for _, p in items], args.jobs) if args.jobs > 0 else None
    n_cmp = len(gen_scores) + len(imp_scores)
    cmp_wall, cmp_cpu = gen_wall + imp_wall, gen_cpu + imp_cpu

    import importlib.metadata as md

    report = {
        "peer": {
            "name": "NBIS MINDTCT + BOZORTH3 (nbis-py)",
            "package": "nbis-py",
            "version": md.version("nbis-py"),
            "extractor": "mindtct",
            "matcher": "bozorth3",
            "settings": {"min_quality": 0.0, "ppi": args.ppi or 500, "nfiq2": False},
            "score": "bozorth3 integer score, higher is more similar",
        },
        "host": {
            "cpu": cpu_model(),
            "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "loadavg": list(os.getloadavg()),
            "python": platform.python_version(),
            "packages": sorted(f"{d.metadata['Name']}=={d.version}" for d in md.distributions()),
            "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")},
        },
        "dataset": {
            "dir": os.path.abspath(args.dir),
            "fingers": len(sets),
            "impressions_per_finger": max(len(v) for v in sets.values()),
            "images": len(items),
            "impostor_protocol": args.impostors,
        },
        "extraction_ms": ms_stats(t_wall),
        "extraction_cpu_ms": ms_stats(t_cpu),
        "threads": {"before": threads_before, "after": threads_after},
        "extraction_parallel": throughput,
        "minutiae_per_image": {
            "mean": statistics.fmean(minutiae_counts),
            "median": statistics.median(minutiae_counts),
            "min": min(minutiae_counts),
            "max": max(minutiae_counts),
        },
        "comparisons": {
            "n": n_cmp,
            "wall_s": cmp_wall,
            "cpu_s": cmp_cpu,
            "per_second": n_cmp / cmp_wall if cmp_wall > 0 else None,
            "per_cpu_second": n_cmp / cmp_cpu if cmp_cpu > 0 else None,
            # BOZORTH3 is slower on mated pairs (more compatible edges to link),
            # so the mix matters: both kinds separately.
            "genuine_per_second": len(gen_scores) / gen_wall if gen_wall > 0 else None,
            "genuine_per_cpu_second": len(gen_scores) / gen_cpu if gen_cpu > 0 else None,
            "impostor_per_second": len(imp_scores) / imp_wall if imp_wall > 0 else None,
            "impostor_per_cpu_second": len(imp_scores) / imp_cpu if imp_cpu > 0 else None,
        },
        "genuine_pairs": len(gen_scores),
        "impostor_pairs": len(imp_scores),
        "accuracy": summarize(gen_scores, imp_scores),
        "genuine_scores": gen_scores,
        "impostor_scores": imp_scores,
    }
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")

    if args.scores_csv:
        with open(args.scores_csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["kind", "finger_a", "imp_a", "finger_b", "imp_b", "score"])
            for kind, plist, slist in (("genuine", genuine_pairs, gen_scores), ("impostor", impostor_pairs, imp_scores)):
                for (a, b), s in zip(plist, slist):
                    w.writerow([kind, a[0], a[1], b[0], b[1], s])


if __name__ == "__main__":
    main()
