#!/usr/bin/env bash
# Smoke run of the YOLO image's two SageMaker entrypoints, as SageMaker calls them (`make smoke-container`;
# CI runs it where Docker is available): `train` on a tiny dataset rendered by this checkout, laid out under
# /opt/ml exactly as a training job sees it, then `serve` on the model it wrote: GET /ping and one POST
# /invocations must answer. VARIANT=cpu by default (gpu images run the same entrypoints).
set -euo pipefail
cd "$(dirname "$0")/.."

VARIANT="${VARIANT:-cpu}"
image="sim2cloud-yolo:smoke-${VARIANT}"
work=$(mktemp -d)
container=""
cleanup() {
  if [[ -n "${container}" ]]; then docker rm -f "${container}" >/dev/null 2>&1 || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT

echo "==> docker build (${VARIANT})"
docker build -f containers/yolo/Dockerfile --build-arg "VARIANT=${VARIANT}" -t "${image}" .

echo "==> a tiny dataset (GL renderer of this checkout)"
OPENBLAS_NUM_THREADS=1 .venv/bin/sim2cloud render --meshes samples/meshes --out "${work}/dataset" --frames 24 \
  --set width=128 --set height=128

echo "==> train (1 epoch) in the container"
mkdir -p "${work}/opt-ml/input/config" "${work}/opt-ml/input/data" "${work}/opt-ml/model" "${work}/opt-ml/output"
cp -r "${work}/dataset" "${work}/opt-ml/input/data/dataset"
printf '{"epochs": "1", "imgsz": "64", "batch": "4", "workers": "0"}\n' >"${work}/opt-ml/input/config/hyperparameters.json"
printf '{"dataset": {"TrainingInputMode": "File"}}\n' >"${work}/opt-ml/input/config/inputdataconfig.json"
chmod -R a+rwX "${work}/opt-ml"
docker run --rm --network none -v "${work}/opt-ml:/opt/ml" "${image}" train
test -s "${work}/opt-ml/model/model.onnx" || { echo "train wrote no /opt/ml/model/model.onnx" >&2; exit 1; }

echo "==> serve the model it wrote"
container=$(docker run -d -p 127.0.0.1::8080 -v "${work}/opt-ml/model:/opt/ml/model:ro" "${image}" serve)
port=$(docker port "${container}" 8080/tcp | head -n 1 | sed 's/.*://')
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:${port}/ping" >/dev/null 2>&1; then break; fi
  sleep 2
done
curl -fsS "http://127.0.0.1:${port}/ping" >/dev/null
picture=$(find "${work}/dataset/images/val" -name '*.jpg' | head -n 1)
answer=$(curl -fsS -H 'Content-Type: image/jpeg' --data-binary @"${picture}" "http://127.0.0.1:${port}/invocations")
echo "${answer}" | python3 -c 'import json, sys; json.load(sys.stdin)' || { echo "not JSON: ${answer}" >&2; exit 1; }
echo "container smoke run passed: train wrote a model, serve answered /ping and /invocations"
