#!/usr/bin/env bash
# Run ON THE GPU MACHINE from the repository root, with .device/ carried (tools/gpu/pack.sh):
# runs the given JUnit classes with the engine on CUDA.  usage: run-tests.sh CLASS...
# CUDA IPC: python3 tools/reference/make_pickles.py /tmp/p.json -- bash tools/gpu/run-tests.sh dev.rollout.runtime.CudaIpcTest
set -euo pipefail
[ -x /tmp/jre/bin/java ] || tar -C /tmp -xJf .device/jre.tar.xz
source .device/torch-env.sh /tmp/jni-gpu
CP=".device/classes:.device/test-classes:$(ls .device/lib/*.jar | grep -v console-standalone | tr '\n' ':')"
args=()
for c in "$@"; do args+=(--select-class "$c"); done
/tmp/jre/bin/java $JAVACPP_OPTS -Drollout.test.device=cuda -jar .device/lib/junit-platform-console-standalone-*.jar \
  -cp "$CP" --details=tree --disable-banner "${args[@]}"
