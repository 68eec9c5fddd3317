#!/usr/bin/env bash
# Builds the pipeline's images, tags them with IMAGE_TAG and pushes them to an environment's ECR repositories
# (what `make images` and the images workflow run). Needs Docker, the AWS CLI and credentials that may push
# (the CiAccess deploy role, or an administrator), and the environment's Registries stack deployed.
#
#   ENV=dev IMAGE_TAG=$(git rev-parse HEAD) scripts/build_images.sh
#
# Images (repository URIs are read from the Registries stack's outputs, never rebuilt from a naming rule):
#   <YoloRepositoryUri>:<tag>        containers/yolo, VARIANT=gpu: what SageMaker training and the endpoint run
#   <YoloRepositoryUri>:<tag>-cpu    containers/yolo, VARIANT=cpu: the same entrypoints on CPU-only hosts
#   <IsaacSimRepositoryUri>:<tag>    containers/isaac-sim, FROM <IsaacSimBaseRepositoryUri>:<ISAAC_SIM_VERSION>
# Tags are immutable in these repositories, so an image already pushed under a tag is kept, not rebuilt.
# ONLY=yolo or ONLY=isaac-sim builds one of them.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ENV:?set ENV (dev, prod)}"
: "${IMAGE_TAG:?set IMAGE_TAG (a commit SHA or a version; never latest)}"
ISAAC_SIM_VERSION="${ISAAC_SIM_VERSION:-5.1.0}"
ONLY="${ONLY:-}"
if [[ "${IMAGE_TAG}" == "latest" || ! "${IMAGE_TAG}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$ ]]; then
  echo "IMAGE_TAG=${IMAGE_TAG}: use an immutable tag such as a commit SHA" >&2
  exit 2
fi

stack="Sim2Cloud-${ENV}-Registries"
output() {
  aws cloudformation describe-stacks --stack-name "${stack}" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
yolo_repository=$(output YoloRepositoryUri)
isaac_repository=$(output IsaacSimRepositoryUri)
isaac_base_repository=$(output IsaacSimBaseRepositoryUri)
registry="${yolo_repository%%/*}"
aws ecr get-login-password | docker login --username AWS --password-stdin "${registry}"

exists() { # repository URI, tag
  aws ecr describe-images --repository-name "${1#*/}" --image-ids "imageTag=$2" >/dev/null 2>&1
}

build_and_push() { # image, then docker build arguments
  local image=$1
  shift
  if exists "${image%:*}" "${image##*:}"; then
    echo "==> ${image} already pushed (immutable tag): kept"
    return
  fi
  echo "==> docker build ${image}"
  docker build --pull --label "org.opencontainers.image.revision=${IMAGE_TAG}" -t "${image}" "$@" .
  docker push "${image}"
}

if [[ -z "${ONLY}" || "${ONLY}" == "yolo" ]]; then
  build_and_push "${yolo_repository}:${IMAGE_TAG}" -f containers/yolo/Dockerfile --build-arg VARIANT=gpu
  build_and_push "${yolo_repository}:${IMAGE_TAG}-cpu" -f containers/yolo/Dockerfile --build-arg VARIANT=cpu
fi
if [[ -z "${ONLY}" || "${ONLY}" == "isaac-sim" ]]; then
  if ! exists "${isaac_base_repository}" "${ISAAC_SIM_VERSION}"; then
    echo "no ${isaac_base_repository}:${ISAAC_SIM_VERSION}: mirror nvcr.io/nvidia/isaac-sim:${ISAAC_SIM_VERSION} first" \
      "(README 'Deploy to your account', step 3)" >&2
    exit 3
  fi
  build_and_push "${isaac_repository}:${IMAGE_TAG}" -f containers/isaac-sim/Dockerfile \
    --build-arg "ISAAC_SIM_BASE=${isaac_base_repository}:${ISAAC_SIM_VERSION}"
fi
echo "image tag ${IMAGE_TAG}"
