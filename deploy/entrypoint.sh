#!/bin/sh
# Entry point of both images. The database wait and the migrations belong to `rlhf init`
# (the compose `migrate` service), so that one process migrates while web and workers start
# only after it has finished; here we only check the data dir and hand over the process.
set -eu

# Checkpoints are written by workers and read by the web app and other machines (NFS):
# keep them group-readable and group-writable.
umask 0002

data_dir="${RLHF_DATA_DIR:-/data}"
if ! mkdir -p "$data_dir" 2>/dev/null || [ ! -w "$data_dir" ]; then
  echo "error: RLHF_DATA_DIR=$data_dir is not writable by uid $(id -u); chown -R $(id -u):$(id -g) it on the host or volume" >&2
  exit 1
fi

# `docker run IMAGE serve` means `rlhf serve`.
if [ "$#" -eq 0 ]; then
  set -- rlhf serve --host 0.0.0.0
elif ! command -v "$1" >/dev/null 2>&1; then
  set -- rlhf "$@"
fi

# exec: the command becomes PID 1's child under `init: true` and receives SIGTERM directly,
# so Celery's warm shutdown and uvicorn's graceful stop work.
exec "$@"
