"""Peer figures for 1:N search: faiss IndexFlatIP and usearch (exact, HNSW).

Reads the gallery and probes written by the ipseity-index `export_gallery`
example and prints JSON lines: queries/s at batch 1 and batch N, recall@1
against faiss's exact answer, memory per template and build time.
"""
import json
import os
import resource
import sys
import time

import numpy as np


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def timed_single(search, queries, n):
    t = time.perf_counter()
    out = [search(queries[i : i + 1]) for i in range(n)]
    return n / (time.perf_counter() - t), out


def main():
    gallery = np.load(sys.argv[1])
    queries = np.load(sys.argv[2])
    n, dim = gallery.shape
    nq = queries.shape[0]
    single = int(os.environ.get("SINGLE", "200"))
    k = 10
    threads = os.cpu_count()

    import faiss

    faiss.omp_set_num_threads(threads)
    r0 = rss_bytes()
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(gallery)
    build = time.perf_counter() - t
    mem = (rss_bytes() - r0) / n
    qps1, _ = timed_single(lambda q: flat.search(q, k), queries, single)
    t = time.perf_counter()
    _, truth = flat.search(queries, k)
    qpsb = nq / (time.perf_counter() - t)
    truth1 = truth[:, 0]
    print(json.dumps({"engine": "faiss", "index": "IndexFlatIP", "version": faiss.__version__,
                      "omp_threads": faiss.omp_get_max_threads(), "n": n, "dim": dim, "k": k,
                      "build_s": round(build, 3), "qps_batch1": round(qps1, 1),
                      f"qps_batch{nq}": round(qpsb, 1), "recall_at_1": 1.0,
                      "rss_bytes_per_template": round(mem, 1)}), flush=True)
    del flat

    import usearch
    from usearch.index import Index, search as brute_search, MetricKind

    # Exact search in usearch: its brute-force `search` over the raw matrix.
    qps1, _ = timed_single(lambda q: brute_search(gallery, q, k, MetricKind.IP, exact=True, threads=threads), queries, single)
    t = time.perf_counter()
    m = brute_search(gallery, queries, k, MetricKind.IP, exact=True, threads=threads)
    qpsb = nq / (time.perf_counter() - t)
    rec = float(np.mean(m.keys[:, 0] == truth1))
    print(json.dumps({"engine": "usearch", "index": "exact", "version": usearch.__version__, "threads": threads,
                      "n": n, "dim": dim, "k": k, "build_s": 0.0, "qps_batch1": round(qps1, 1),
                      f"qps_batch{nq}": round(qpsb, 1), "recall_at_1": rec,
                      "rss_bytes_per_template": 4.0 * dim}), flush=True)

    for dtype in ["f32", "i8"]:
        r0 = rss_bytes()
        t = time.perf_counter()
        idx = Index(ndim=dim, metric="ip", dtype=dtype)
        idx.add(np.arange(n), gallery, threads=threads)
        build = time.perf_counter() - t
        mem = (rss_bytes() - r0) / n
        qps1, _ = timed_single(lambda q: idx.search(q, k), queries, single)
        t = time.perf_counter()
        m = idx.search(queries, k, threads=threads)
        qpsb = nq / (time.perf_counter() - t)
        rec1 = float(np.mean(m.keys[:, 0] == truth1))
        rec10 = float(np.mean([truth1[i] in m.keys[i] for i in range(nq)]))
        print(json.dumps({"engine": "usearch", "index": f"hnsw-{dtype}", "version": usearch.__version__,
                          "threads": threads, "n": n, "dim": dim, "k": k, "build_s": round(build, 3),
                          "qps_batch1": round(qps1, 1), f"qps_batch{nq}": round(qpsb, 1),
                          "recall_at_1": rec1, "top1_in_10": rec10,
                          "rss_bytes_per_template": round(mem, 1)}), flush=True)
        del idx


if __name__ == "__main__":
    main()
