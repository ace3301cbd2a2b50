#!/usr/bin/env bash
# Regenerates crates/ipseity-finger/tests/data/wsq/ with NIST NBIS's WSQ codec.
# Needs python3 (with venv) and a C compiler: the `wsq` package builds NBIS from source.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${WSQ_VENV:-/tmp/ipseity-wsq-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "wsq==0.9" "numpy==2.4.6" "pillow==13.0.0"
fi
"$venv/bin/python" tools/wsq/make_fixtures.py crates/ipseity-finger/tests/data/wsq
