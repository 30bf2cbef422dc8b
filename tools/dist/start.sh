#!/usr/bin/env bash
# Starts the Rollout Server from the unpacked distribution on a GPU machine, using that machine's
# PyTorch for libtorch, CUDA and cuBLAS (env.sh): nothing of several GB to ship.
# Everything after the script's name goes to `server run`; settings come from the environment
# (ROLLOUT_MODEL_PATH, ROLLOUT_DEVICE (default cuda), HTTP_PORT, ...).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
# jemalloc, where the bundled copy loads on this machine (ROLLOUT_JEMALLOC=false for glibc's malloc).
# Under hundreds of HTTP threads glibc's arenas fragment: in the GPU soak the server's main heap
# grew by 3.5 GB that neither a full GC nor malloc_trim gave back, while jemalloc's heap profile
# of the same load shows flat live memory (docs/benchmarks.md, weight-update soak).
jemalloc="$here/lib/libjemalloc.so.2"
if [ "${ROLLOUT_JEMALLOC:-true}" = true ] && [ -f "$jemalloc" ] && LD_PRELOAD="$jemalloc" /bin/true 2>/dev/null; then
  export LD_PRELOAD="$jemalloc:$LD_PRELOAD"
fi
export WLP_USER_DIR="$here/wlp/usr"
export ROLLOUT_DEVICE="${ROLLOUT_DEVICE:-cuda}"
exec "$here/wlp/bin/server" run rollout "$@"
