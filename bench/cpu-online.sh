#!/usr/bin/env bash
# R6's shape on the CPU: where the server's host time goes per engine step under streaming
# clients, without a GPU. The runnable jar serves a small-vocabulary copy of the default model
# (2,048 tokens, so that the LM head and the sampler do not drown a step's host work), 256
# streams at once with incremental chunks; a warm-up pass, one pass under async-profiler (CPU
# samples every 200 us, collapsed stacks in $OUT/NAME.collapsed; read them with bench/collapsed.py),
# then two plain passes, whose RESULT lines carry the engine's own split (step_model_ms_mean,
# step_host_ms_mean: applying a step's tokens, snapshots and hooks included).
#   ./mvnw -B package -DskipTests
#   mvn -B dependency:get -Dartifact=tools.profiler:async-profiler:4.1:jar:linux-x64   # the profiler, from Maven Central
#   bash bench/cpu-online.sh NAME [JAR]           # e.g. cpu-online.sh after target/rollout-server.jar
set -eu
name="$1"; jar="$(realpath "${2:-target/rollout-server.jar}")"
out="${OUT:-target/cpu-online}"; mkdir -p "$out"; out="$(realpath "$out")"
requests="${REQUESTS:-256}"; in="${IN:-32}"; len="${LEN:-256}"
ap_jar="$HOME/.m2/repository/tools/profiler/async-profiler/4.1/async-profiler-4.1-linux-x64.jar"
ap="$out/ap/linux-x64/libasyncProfiler.so"
[ -f "$ap" ] || (mkdir -p "$out/ap" && cd "$out/ap" && unzip -q -o "$ap_jar")
model="$out/small-model"
if [ ! -f "$model/model.safetensors" ]; then
  war="target/rollout-server/WEB-INF"
  java -cp "$war/classes:$(ls "$war"/lib/*.jar | tr '\n' ':')" bench/SmallModel.java "$model" target/classes/dev/rollout/tokenizer/qwen3
fi
ROLLOUT_MODEL_PATH="$model" ROLLOUT_MAX_RUNNING_REQUESTS="$requests" ROLLOUT_INCREMENTAL_STREAMING_OUTPUT=true \
  java -jar "$jar" > "$out/$name-server.log" 2>&1 &
launcher=$!
trap 'kill $launcher 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf localhost:9080/health/ready > /dev/null && break; sleep 1; done
pid=$(pgrep -P "$launcher" -f ws-server.jar)   # the runnable jar starts Liberty as its child
pass() { python3 bench/online.py --requests "$1" --in "$in" --out "$len" --rates inf --processes 2 --vocab 2048 | tail -n 1; }
pass 64 > /dev/null
# jcmd's parser takes a bare key=value as its own option: the agent's options go quoted
jcmd "$pid" JVMTI.agent_load "$ap" '"start,event=cpu,interval=200us"' > /dev/null
echo "$name profiled $(pass "$requests")"
jcmd "$pid" JVMTI.agent_load "$ap" "\"stop,file=$out/$name.collapsed,collapsed\"" > /dev/null
echo "$name plain $(pass "$requests")"
echo "$name plain $(pass "$requests")"
