#!/usr/bin/env bash
# ON THE GPU MACHINE: EngineBench of two builds in one command on the same card, alternating
# baseline, this tree, baseline, this tree, so that a drift of the card or the host shows as a
# difference between the two runs of one side: this tree's distribution (target/rollout-dist.tar.xz,
# test classes in target/test-classes) against a baseline packed by bench/ab-pack.sh. The baseline
# borrows this distribution's Java runtime, jars and JNI glue, and builds its own native preset
# from its own sources against the machine's torch. RESULT lines go to $OUT/bench.log, each
# prefixed with the side. AB_MAIN names another bench class to run the same way (KernelBench: MODEL_DIR
# is then "-", no model).
#   bench/ab-engine.sh BASELINE.tar.xz MODEL_DIR [EngineBench arguments...]
set -euo pipefail
out="${OUT:-/tmp}"
baseline="$1" model="$2"; shift 2
main="${AB_MAIN:-dev.rollout.bench.EngineBench}"
model_args=(--model "$model")
[ "$model" = - ] && model_args=()
bash tools/dist/unpack.sh
new=/tmp/rollout-dist/rollout
base=/tmp/ab-base
rm -rf "$base" && mkdir -p "$base" && tar -C "$base" -xJf "$baseline" --strip-components=1
for shared in jre jni-gpu lib; do ln -s "$new/$shared" "$base/rollout/$shared"; done
echo "baseline $(cat "$base/REVISION"), this tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')" | tee -a "$out/bench.log"
run() {  # run SIDE ROLLOUT_DIR CLASSES TEST_CLASSES
  local side="$1" here="$2" classes="$3" tests="$4"
  shift 4
  (
    source "$here/env.sh"
    cp="$classes:$tests:$(ls /tmp/rollout-dist/war/WEB-INF/lib/*.jar | tr '\n' ':')"
    # shellcheck disable=SC2086
    "$JAVA_HOME/bin/java" -Xmx8g $JVM_ARGS -cp "$cp" "$main" "${model_args[@]}" "$@" 2>&1 \
      | sed "s/^RESULT/RESULT $side/" | tee -a "$out/bench.log"
  )
}
for round in 1 2; do
  echo "== round $round: baseline" | tee -a "$out/bench.log"
  run baseline "$base/rollout" "$base/war/WEB-INF/classes" "$base/test-classes" "$@"
  echo "== round $round: this tree" | tee -a "$out/bench.log"
  run this "$new" /tmp/rollout-dist/war/WEB-INF/classes target/test-classes "$@"
done
