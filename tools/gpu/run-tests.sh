#!/usr/bin/env bash
# Run ON THE GPU MACHINE from the repository root, with .device/ carried (tools/gpu/pack.sh):
# runs the given JUnit classes with the engine on CUDA.  usage: run-tests.sh CLASS...
# CUDA IPC: python3 tools/reference/make_pickles.py /tmp/p.json -- bash tools/gpu/run-tests.sh dev.rollout.weights.CudaIpcTest
set -euo pipefail
[ -x /tmp/jre/bin/java ] || tar -C /tmp -xJf .device/jre.tar.xz
# the machine's own libtorch, CUDA and cuBLAS (its PyTorch) under the presets' GPU JNI glue, as
# the distribution's env.sh sets them up
jni=/tmp/jni-gpu
[ -f "$jni/libjnitorch.so" ] || { mkdir -p "$jni" && tar -C "$jni" -xJf .device/jni-gpu.tar.xz; }
torch_lib="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
libs="$torch_lib:$jni"
for d in "$(dirname "$(dirname "$torch_lib")")"/nvidia/*/lib; do libs="$libs:$d"; done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# libtorch_cuda registers the CUDA kernels; the JNI glue does not link it by itself
export LD_PRELOAD="$torch_lib/libtorch_cuda.so:$torch_lib/libc10_cuda.so${LD_PRELOAD:+:$LD_PRELOAD}"
JAVACPP_OPTS="-Djava.library.path=$jni -Dorg.bytedeco.javacpp.pathsFirst=true"
CP=".device/classes:.device/test-classes:$(ls .device/lib/*.jar | grep -v console-standalone | tr '\n' ':')"
args=()
for c in "$@"; do args+=(--select-class "$c"); done
/tmp/jre/bin/java $JAVACPP_OPTS -Drollout.test.device=cuda -jar .device/lib/junit-platform-console-standalone-*.jar \
  -cp "$CP" --details=tree --disable-banner "${args[@]}"
