"""The peer for benches/face.rs: face_recognition 1.3.0 (dlib) on the same images.

Measures CNN detection (1 upsample, as face_recognition does), embedding alone
(compute_face_descriptor on 150x150 aligned chips) and end to end (detect, 5-point
landmarks, descriptor). Prints one JSON line. Threads are set by the caller
(OMP_NUM_THREADS / OPENBLAS_NUM_THREADS), as tools/bench/face.sh does.
"""
import json
import os
import sys
import time

import dlib
import face_recognition
from face_recognition import api


def main():
    images_dir = os.environ["IPSEITY_TEST_IMAGES"]
    names = os.environ.get("BENCH_IMAGES", "obama.jpg").split(",")
    reps = int(os.environ.get("BENCH_EMBED_REPS", "20"))
    imgs = [face_recognition.load_image_file(os.path.join(images_dir, n)) for n in names]

    t = time.perf_counter()
    dets = [api.cnn_face_detector(img, 1) for img in imgs]
    det_s = time.perf_counter() - t
    faces = sum(len(d) for d in dets)

    chips = []
    for img, ds in zip(imgs, dets):
        for d in ds:
            shape = api.pose_predictor_5_point(img, d.rect)
            chips.append(dlib.get_face_chip(img, shape, 150, 0.25))
    t = time.perf_counter()
    for _ in range(reps):
        for c in chips:
            api.face_encoder.compute_face_descriptor(c)
    emb_s = time.perf_counter() - t

    t = time.perf_counter()
    e2e = 0
    for img in imgs:
        for d in api.cnn_face_detector(img, 1):
            shape = api.pose_predictor_5_point(img, d.rect)
            api.face_encoder.compute_face_descriptor(img, shape, 1)
            e2e += 1
    e2e_s = time.perf_counter() - t

    import resource
    print(json.dumps({
        "impl": "face_recognition " + face_recognition.__version__ + " / dlib " + dlib.__version__,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "images": len(imgs),
        "faces": faces,
        "detect_faces_per_s": round(faces / det_s, 4),
        "detect_s_per_image": round(det_s / len(imgs), 3),
        "embed_faces_per_s": round(reps * len(chips) / emb_s, 2),
        "end_to_end_faces_per_s": round(e2e / e2e_s, 4),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "dlib_uses_blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
    }))


if __name__ == "__main__":
    sys.exit(main())
