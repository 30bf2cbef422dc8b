#!/usr/bin/env bash
# Starts the Rollout Server from the unpacked distribution on a GPU machine, using that machine's
# PyTorch for libtorch, CUDA and cuBLAS (env.sh): nothing of several GB to ship.
# Everything after the script's name goes to `server run`; settings come from the environment
# (ROLLOUT_MODEL_PATH, ROLLOUT_DEVICE (default cuda), HTTP_PORT, ...).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
preload_jemalloc
export WLP_USER_DIR="$here/wlp/usr"
export ROLLOUT_DEVICE="${ROLLOUT_DEVICE:-cuda}"
exec "$here/wlp/bin/server" run rollout "$@"
