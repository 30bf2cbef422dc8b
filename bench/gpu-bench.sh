#!/usr/bin/env bash
# ON THE GPU MACHINE: the engine benchmarks in-process (EngineBench) and the transformers baseline
# (hf_cb.py), one after the other on the same GPU, same prompt ids, same shapes; the log goes to $OUT.
# Carry ["target/rollout-dist.tar.xz", "target/test-classes/dev"] for ours (hf and save need only
# the working tree). For test, carry also "target/junit-console.jar" (make-dist.sh trims it to
# Jupiter, so that all three fit in 64 MiB).
#   bench/gpu-bench.sh ours  MODEL_DIR [--dummy] [--hbm-gbps 4300] WORKLOAD...   (EngineBench's arguments)
#   bench/gpu-bench.sh hf    MODEL_DIR WORKLOAD...                               (hf_cb.py run)
#   bench/gpu-bench.sh hfc   MODEL_DIR WORKLOAD...                               (hf_compiled.py run)
#   bench/gpu-bench.sh save  MODEL_DIR ARCH                                      (hf_cb.py save)
#   bench/gpu-bench.sh test  CLASS...            JUnit classes on CUDA, with the native preset built
#   bench/gpu-bench.sh kernels [--hbm-gbps 3000] MODEL:B:CONTEXT...   single kernels in isolation (KernelBench)
#   bench/gpu-bench.sh agent [AgentBench's options]   agent loop against $ROLLOUT_URL (run under tools/dist/gpu-run.sh)
set -euo pipefail
out="${OUT:-/tmp}"
what="$1"; shift
case "$what" in
  save) exec python3 bench/hf_cb.py save "$@" ;;
  hf) python3 bench/hf_cb.py run "$@" 2>&1 | tee -a "$out/bench.log" ;;
  hfc) python3 bench/hf_compiled.py run "$@" 2>&1 | tee -a "$out/bench.log" ;;
  ours|test|kernels|agent)
    bash tools/dist/unpack.sh
    here=/tmp/rollout-dist/rollout
    source "$here/env.sh"
    war=/tmp/rollout-dist/war/WEB-INF
    cp="$war/classes:target/test-classes:$(ls "$war"/lib/*.jar | tr '\n' ':')"
    if [ "$what" = agent ]; then
      # the client's JSON-P: Liberty provides it to the war, so the war does not carry it
      json="$(ls "$here"/wlp/dev/api/spec/io.openliberty.jakarta.jsonp.2.1_*.jar "$here"/wlp/lib/io.openliberty.org.eclipse.parsson.1.1_*.jar | tr '\n' ':')"
      "$JAVA_HOME/bin/java" -Xmx2g -cp "$cp:$json" dev.rollout.bench.AgentBench "$ROLLOUT_URL" "$@" 2>&1 | tee -a "$out/bench.log"
    elif [ "$what" = kernels ]; then
      # shellcheck disable=SC2086
      "$JAVA_HOME/bin/java" -Xmx8g $JVM_ARGS -cp "$cp" dev.rollout.model.KernelBench "$@" 2>&1 | tee -a "$out/bench.log"
    elif [ "$what" = ours ]; then
      model="$1"; shift
      # shellcheck disable=SC2086
      "$JAVA_HOME/bin/java" -Xmx8g $JVM_ARGS ${BENCH_JVM_ARGS:-} -cp "$cp" dev.rollout.bench.EngineBench --model "$model" "$@" 2>&1 | tee -a "$out/bench.log"
    else
      sel=()
      for c in "$@"; do sel+=(--select-class "$c"); done
      # shellcheck disable=SC2086
      "$JAVA_HOME/bin/java" $JVM_ARGS -Drollout.test.device=cuda -jar target/junit-console.jar execute -cp "$cp" \
        --details=tree --disable-banner "${sel[@]}" 2>&1 | tee -a "$out/tests.log"
    fi
    ;;
  *) echo "usage: gpu-bench.sh ours|hf|hfc|save|test|kernels|agent ..." >&2; exit 2 ;;
esac
