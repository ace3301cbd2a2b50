"""Peer figures for 1:N search: faiss IndexFlatIP and usearch (exact, HNSW).

Reads the gallery and probes written by the ipseity-index `export_gallery`
example and prints JSON lines: queries/s at batch 1 and batch N, recall@1
against faiss's exact answer, memory per template, build time and the load
average when each line was printed.

Environment: SINGLE (probes timed one by one, default 200), USEARCH=0 to
measure faiss only, HNSW=0 to skip usearch's HNSW indexes, HNSW_LIMIT_S (default 900): an HNSW build is fed in
chunks and abandoned once it has taken longer than this; its line then says
how many rows were inserted in how long instead of search figures.
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


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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
                      "rss_bytes_per_template": round(mem, 1), "load": load()}), flush=True)
    del flat
    if os.environ.get("USEARCH", "1") == "0":
        return

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
                      "rss_bytes_per_template": 4.0 * dim, "load": load()}), flush=True)

    if os.environ.get("HNSW", "1") == "0":
        return
    limit = float(os.environ.get("HNSW_LIMIT_S", "900"))
    chunk = 20_000

    for dtype in ["f32", "i8"]:
        r0 = rss_bytes()
        t = time.perf_counter()
        idx = Index(ndim=dim, metric="ip", dtype=dtype)
        done = 0
        while done < n and time.perf_counter() - t < limit:
            end = min(n, done + chunk)
            idx.add(np.arange(done, end), gallery[done:end], threads=threads)
            done = end
        build = time.perf_counter() - t
        mem = (rss_bytes() - r0) / max(done, 1)
        if done < n:
            # A partial graph's answers are not comparable with the others'.
            print(json.dumps({"engine": "usearch", "index": f"hnsw-{dtype}", "version": usearch.__version__,
                              "threads": threads, "n": n, "dim": dim, "capped": True,
                              "rows_inserted": done, "build_s_so_far": round(build, 1),
                              "rows_per_s": round(done / build, 1),
                              "rss_bytes_per_template": round(mem, 1), "load": load()}), flush=True)
            del idx
            continue
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
                          "rss_bytes_per_template": round(mem, 1), "load": load()}), flush=True)
        del idx


if __name__ == "__main__":
    main()
