#!/usr/bin/env bash
# One command for the GPU half of the labeling benchmark (benchmarks/gpu_labeling.py)
# on a machine that has torch + transformers but not ultralytics/open_clip/pymongo.
#
# Wheels (py3.12, manylinux x86_64 / py3-none-any) travel in .whl/ and real photos in
# .gpuimg/, both ignored through .git/info/exclude; prepare them with:
#   echo /.whl/ >> .git/info/exclude; echo /.gpuimg/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl ultralytics ultralytics-thop \
#     open_clip_torch ftfy wcwidth pymongo dnspython dill
#   mkdir -p .gpuimg && cp <ultralytics>/assets/{bus,zidane}.jpg \
#     <sklearn>/datasets/images/{china,flower}.jpg .gpuimg/
# Extra arguments go to gpu_labeling.py. Output is teed to $OUT/gpu_labeling.log.
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-/tmp/yolo-config}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$OUT/gpu_labeling.log"
IMAGES=()
[ -d .gpuimg ] && IMAGES=(--images .gpuimg)
$PY benchmarks/gpu_labeling.py "${IMAGES[@]}" --json "$OUT/gpu_labeling.json" "$@" 2>&1 \
  | grep --line-buffered -v 'Loading weights\|Writing model shards' | tee -a "$OUT/gpu_labeling.log"
