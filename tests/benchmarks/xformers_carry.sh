#!/usr/bin/env bash
# xformers for the lent GPU machines (torch 2.11 + CUDA 13, Python 3.12), packed under their 64 MiB transfer
# limit, into DIR (default .xf). PyPI's only build for torch >= 2.10 (0.0.35) has no CUDA kernels; 0.0.34's CUDA
# build (111 MB, for torch 2.10 + CUDA 12.8) loads under torch 2.11 because its libraries use PyTorch's stable
# ABI (aoti_torch_* symbols only), given the CUDA 12 runtime beside it. Its FlashAttention-3 library (355 MB)
# travels xz-compressed (37 MB) and the rest as a tarball (3 MB). On the GPU machine, from the repository root:
#   source tests/benchmarks/xformers_setup.sh DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.xf}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir"
get() {
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$1" "$2"
}
get "$work" xformers==0.0.34
get "$dir" nvidia-cuda-runtime-cu12==12.8.90
mkdir "$work/pkg"
(cd "$work/pkg" && python3 -m zipfile -e "$work"/xformers-0.0.34-*.whl .)
mv "$work/pkg/xformers/flash_attn_3/_C.so" "$work/fa3_C.so"
sha256sum "$work/fa3_C.so" | cut -c1-64 > "$dir/fa3_C.so.sha256"
xz -T0 -9 -c "$work/fa3_C.so" > "$dir/fa3_C.so.xz"
tar czf "$dir/xformers-0.0.34-nofa3.tgz" -C "$work/pkg" xformers xformers-0.0.34.dist-info
du -sh "$dir"
