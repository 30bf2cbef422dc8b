#!/usr/bin/env bash
# Starts the Rollout Server from the unpacked distribution on a GPU machine, using that machine's
# PyTorch (python3 -c "import torch") for libtorch, CUDA and cuBLAS: nothing of several GB to ship.
# Everything after the script's name goes to `server run`; settings come from the environment
# (ROLLOUT_MODEL_PATH, ROLLOUT_DEVICE (default cuda), HTTP_PORT, ...).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
torch_lib="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
nv="$(dirname "$(dirname "$torch_lib")")/nvidia"
libs="$torch_lib:$here/jni-gpu"
for d in "$nv"/*/lib; do libs="$libs:$d"; done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# libtorch_cuda registers the CUDA kernels; the JNI glue does not link it by itself
export LD_PRELOAD="$torch_lib/libtorch_cuda.so:$torch_lib/libc10_cuda.so${LD_PRELOAD:+:$LD_PRELOAD}"
export JAVA_HOME="$here/jre" WLP_USER_DIR="$here/wlp/usr"
export JVM_ARGS="-Djava.library.path=$here/jni-gpu -Dorg.bytedeco.javacpp.pathsFirst=true ${JVM_ARGS:-}"
export ROLLOUT_DEVICE="${ROLLOUT_DEVICE:-cuda}"
exec "$here/wlp/bin/server" run rollout "$@"
