#!/usr/bin/env bash
# ON THE GPU MACHINE: the engine benchmarks in-process (EngineBench) and the transformers baseline
# (hf_cb.py), one after the other on the same GPU, same prompt ids, same shapes; the log goes to $OUT.
# Carry ["target/rollout-dist.tar.xz", "target/test-classes/dev/rollout/bench"].
#   bench/gpu-bench.sh ours  MODEL_DIR [--dummy] [--hbm-gbps 4300] WORKLOAD...   (EngineBench's arguments)
#   bench/gpu-bench.sh hf    MODEL_DIR WORKLOAD...                               (hf_cb.py run)
#   bench/gpu-bench.sh save  MODEL_DIR ARCH                                      (hf_cb.py save)
set -euo pipefail
out="${OUT:-/tmp}"
what="$1"; shift
case "$what" in
  save) exec python3 bench/hf_cb.py save "$@" ;;
  hf) python3 bench/hf_cb.py run "$@" 2>&1 | tee -a "$out/bench.log" ;;
  ours)
    bash tools/dist/unpack.sh
    here=/tmp/rollout-dist/rollout
    source "$here/env.sh"
    war=/tmp/rollout-dist/war/WEB-INF
    cp="$war/classes:target/test-classes:$(ls "$war"/lib/*.jar | tr '\n' ':')"
    model="$1"; shift
    # shellcheck disable=SC2086
    "$JAVA_HOME/bin/java" -Xmx8g $JVM_ARGS -cp "$cp" dev.rollout.bench.EngineBench --model "$model" "$@" 2>&1 | tee -a "$out/bench.log"
    ;;
  *) echo "usage: gpu-bench.sh ours|hf|save ..." >&2; exit 2 ;;
esac
