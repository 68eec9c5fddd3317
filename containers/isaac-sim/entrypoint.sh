#!/usr/bin/env bash
# Entrypoint of the Isaac Sim render image: runs ONE render step of a run, then exits.
#
#   entrypoint.sh shard     render shard $AWS_BATCH_JOB_ARRAY_INDEX (0 if unset) of $SIM2CLOUD_SHARD_COUNT
#                           from s3://$SIM2CLOUD_DATA_BUCKET/meshes/$SIM2CLOUD_BATCH_ID/ to renders/<run>/shard-<k>/
#   entrypoint.sh finalize  merge every shard of $SIM2CLOUD_RUN_ID into datasets/<run>/ (manifest.json last)
#
# Any further arguments go to `python -m isaac_jobs.cloud` (e.g. --no-progress). Settings are the
# SIM2CLOUD_* environment variables documented in isaac_jobs/cloud.py. Exit status: 0 done (or already
# done), 1 job failure, 2 bad settings or usage, 3 licence not accepted.
set -euo pipefail

# The job driver's venv (usd-core and friends); it starts Isaac's own Python only to render (see the Dockerfile).
JOB_PYTHON="${JOB_PYTHON:-/opt/sim2cloud/venv/bin/python}"

usage() {
    echo "usage: entrypoint.sh shard|finalize [--no-progress]" >&2
}

mode="${1:-}"
case "${mode}" in
    shard | finalize) shift ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "entrypoint.sh: unknown mode '${mode}'" >&2
        usage
        exit 2
        ;;
esac

# The licence is accepted by whoever starts the container, never by the image (see the Dockerfile).
case "${ACCEPT_EULA:-}" in
    Y | y | yes | YES) ;;
    *)
        echo "entrypoint.sh: ACCEPT_EULA=Y is required: running Isaac Sim means accepting the NVIDIA Isaac Sim licence" >&2
        exit 3
        ;;
esac

exec "${JOB_PYTHON}" -m isaac_jobs.cloud "${mode}" "$@"
