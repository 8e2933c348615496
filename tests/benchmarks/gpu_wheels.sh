#!/usr/bin/env bash
# Wheels that the lent GPU machines lack (their image has torch, numpy, pandas, pyarrow, scipy, opencv,
# safetensors, transformers, PyYAML and the web stack around them), for Python 3.12 on x86-64, into DIR
# (default .whl).
#   gpu_wheels.sh DIR             what tests/benchmarks/synthetic_accuracy.py and the inference benchmarks
#                                 need there (zarr, trimesh, pyrender, ...; 17 MB). Install on that machine with
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site:$PWD
#   gpu_wheels.sh DIR preprocess  the preprocessing stack as well (Prefect and its server, Dask, zarr, pyrender:
#                                 about 90 wheels, greenlet among them for the server's SQLAlchemy asyncio),
#                                 unpacked and packed into DIR/site.tar.xz (about 40 MB, so it travels beside
#                                 the tree in one call). Install with
#     mkdir -p /tmp/site && tar -C /tmp/site -xJf DIR/site.tar.xz && export PYTHONPATH=/tmp/site:$PWD
# The pins are requirements/base.txt's and the Makefile's (pyrender); donfig and google-crc32c are zarr's own.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.whl}
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
download() { python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dir" "$@"; }
pin() { grep -ih "^$1[=<]" requirements/*.txt | head -n 1 | cut -d' ' -f1; }
pyrender=$(grep -o 'pyrender==[0-9.]*' Makefile)
# roma would pull torch and pyrender an old PyOpenGL: both go without their dependencies.
download --no-deps "$(pin zarr)" "$(pin numcodecs)" "$(pin trimesh)" "$(pin PyOpenGL)" \
  "$(pin roma)" "$pyrender" "$(pin pyglet)" freetype-py donfig google-crc32c
[ "${2:-}" = preprocess ] || exit 0

download "$(pin prefect)" "$(pin prefect-dask)" "$(pin dask)" "$(pin distributed)" "$(pin obstore)" \
  "$(pin fastapi)" "$(pin zarr)" "$(pin numcodecs)" "$(pin trimesh)" "$(pin PyOpenGL)" "$(pin pyglet)" freetype-py
# What the image already has (a second copy would shadow it, and numpy's must match its compiled users).
image_has=(annotated_doc anyio attrs certifi charset_normalizer click cloudpickle colorama filelock fsspec
  h11 h2 hpack httpcore httpx humanize hyperframe idna importlib_metadata jinja2 lazy_importer markdown
  markdown_it_py markupsafe mdurl mpmath msgpack networkx numpy packaging pathspec pluggy prometheus_client
  psutil pygments python_dateutil pyyaml regex requests rich shellingham six sortedcontainers sympy toolz
  typer typing_extensions urllib3 zipp)
for wheel in "$dir"/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z-' 'a-z_')
  if printf '%s\n' "${image_has[@]}" | grep -qx "$name"; then rm "$wheel"; fi
done
site=$(mktemp -d)
for wheel in "$dir"/*.whl; do python3 -m zipfile -e "$wheel" "$site"; done
tar -C "$site" -cf - . | xz -T0 -6 >"$dir/site.tar.xz"
rm -rf "$site"
echo "$(ls "$dir"/*.whl | wc -l) wheels; $(du -h "$dir/site.tar.xz" | cut -f1) in $dir/site.tar.xz"
