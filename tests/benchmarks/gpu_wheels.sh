#!/usr/bin/env bash
# Wheels that the lent GPU machines lack (their image has torch, numpy, pandas, pyarrow, scipy, opencv,
# safetensors, transformers, PyYAML), for Python 3.12 on x86-64, into DIR (default .whl): what
# tests/benchmarks/synthetic_accuracy.py and the benchmarks need there. Install them on that machine with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site:$PWD
# The pins are requirements/base.txt's and the Makefile's (pyrender); donfig and google-crc32c are zarr's own.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.whl}
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
pin() { grep -ih "^$1[=<]" requirements/*.txt | head -n 1 | cut -d' ' -f1; }
pyrender=$(grep -o 'pyrender==[0-9.]*' Makefile)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dir" "$(pin zarr)" "$(pin numcodecs)" "$(pin trimesh)" "$(pin PyOpenGL)" \
  "$(pin roma)" "$pyrender" "$(pin pyglet)" freetype-py donfig google-crc32c
