# Sourced on a lent GPU machine from the repository root: unpacks what tests/benchmarks/xformers_carry.sh packed
# (DIR, default .xf) into /tmp/site once per machine, and puts it and the CUDA 12 runtime on the paths.
dir=${1:-.xf}
if [ ! -f /tmp/site/xformers/flash_attn_3/_C.so ]; then
  mkdir -p /tmp/site
  tar xzf "$dir/xformers-0.0.34-nofa3.tgz" -C /tmp/site
  xz -dc "$dir/fa3_C.so.xz" > /tmp/site/xformers/flash_attn_3/_C.so
  echo "$(cat "$dir/fa3_C.so.sha256")  /tmp/site/xformers/flash_attn_3/_C.so" | sha256sum -c --quiet
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$dir"/nvidia_cuda_runtime_cu12-*.whl
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=/tmp/site/nvidia/cuda_runtime/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
