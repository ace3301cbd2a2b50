#!/usr/bin/env python3
"""Writes tests/data/face_reference.json: what dlib (through face_recognition) finds
in the face_recognition test images, for Ipseity's face pipeline to be compared against.

Run it through tools/reference/make_reference.sh, which builds the pinned venv.
For every image it records the CNN (MMOD) detections with one upsample, as
face_recognition's "cnn" model does, and for each face the 5-point landmarks,
the 128-D descriptor (num_jitters=1) and a summary of the 150x150 aligned chip.
"""

import argparse
import importlib.metadata
import hashlib
import json
import os
import sys

import dlib
import face_recognition
import face_recognition.api as fr_api
import numpy as np

GENERATOR = "tools/reference/make_reference.py"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
UPSAMPLE = 1
NUM_JITTERS = 1
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# (x, y) = (column, row) positions sampled from each aligned chip.
CHIP_SAMPLE_POINTS = [(0, 0), (75, 75), (149, 149), (30, 100)]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_face(img, det):
    rect = det.rect
    shape = fr_api.pose_predictor_5_point(img, rect)
    descriptor = fr_api.face_encoder.compute_face_descriptor(img, shape, NUM_JITTERS)
    chip = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    chip = np.asarray(chip)
    return {
        "rect": [rect.left(), rect.top(), rect.right(), rect.bottom()],
        "confidence": float(det.confidence),
        "landmarks": [[p.x, p.y] for p in shape.parts()],
        "embedding": [float(v) for v in descriptor],
        "chip_mean": [float(chip[:, :, c].mean()) for c in range(3)],
        "chip_samples": [
            {"xy": [x, y], "rgb": [int(v) for v in chip[y, x]]}
            for (x, y) in CHIP_SAMPLE_POINTS
        ],
    }


def describe_image(path):
    img = face_recognition.load_image_file(path)
    detections = list(fr_api.cnn_face_detector(img, UPSAMPLE))
    detections.sort(key=lambda d: d.confidence, reverse=True)
    return {
        "file": os.path.basename(path),
        "sha256": sha256_of(path),
        "width": int(img.shape[1]),
        "height": int(img.shape[0]),
        "faces": [describe_face(img, d) for d in detections],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="directory of test images")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    names = sorted(
        n for n in os.listdir(args.images) if n.lower().endswith(IMAGE_SUFFIXES)
    )
    if not names:
        sys.exit(f"no images in {args.images}; run tools/setup-test-data.sh first")

    models = {
        "detector": fr_api.cnn_face_detection_model,
        "landmarks": fr_api.predictor_5_point_model,
        "embedder": fr_api.face_recognition_model,
    }
    images = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        images.append(describe_image(os.path.join(args.images, name)))

    doc = {
        "generator": GENERATOR,
        "dlib_version": dlib.__version__,
        # The modules' own __version__ strings are stale; ask the installed metadata.
        "face_recognition_version": importlib.metadata.version("face_recognition"),
        "face_recognition_models_version": importlib.metadata.version(
            "face_recognition_models"
        ),
        "models": {
            role: {"file": os.path.basename(p), "sha256": sha256_of(p)}
            for role, p in models.items()
        },
        "params": {
            "upsample": UPSAMPLE,
            "num_jitters": NUM_JITTERS,
            "chip_size": CHIP_SIZE,
            "chip_padding": CHIP_PADDING,
            "chip_sample_points_xy": [list(p) for p in CHIP_SAMPLE_POINTS],
            "rect": "dlib rectangle [left, top, right, bottom], inclusive",
        },
        "images": images,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
