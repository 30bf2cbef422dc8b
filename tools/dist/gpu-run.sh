#!/usr/bin/env bash
# ON THE GPU MACHINE, with target/rollout-dist.tar.xz carried: unpacks the distribution (again
# when it changed), starts the server on CUDA with pickles allowed, waits for readiness, runs CMD with
# ROLLOUT_URL and ROLLOUT_SERVER_PID set, then stops the server and copies its log to $OUT.
# Server settings come from the environment (ROLLOUT_MODEL_PATH, ROLLOUT_KV_BLOCKS, ...).
#     tools/dist/gpu-run.sh python3 tools/dist/gpu_smoke.py
set -uo pipefail
out="${OUT:-/tmp}"
dist=/tmp/rollout-dist
bash "$(dirname "$0")/unpack.sh" || exit 1
logs="$dist/rollout/wlp/usr/servers/rollout/logs"
rm -f "$logs/messages.log"
t0=$(date +%s)
ROLLOUT_ALLOW_PICKLE="${ROLLOUT_ALLOW_PICKLE:-true}" "$dist/rollout/start.sh" > "$out/server.log" 2>&1 &
pid=$!
export ROLLOUT_URL="http://localhost:${HTTP_PORT:-9080}"
ready=0
for i in $(seq 1 240); do
  if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('$ROLLOUT_URL/health/ready', timeout=2).status == 200 else 1)" 2>/dev/null; then
    echo "ready after $(( $(date +%s) - t0 )) s"; ready=1; break
  fi
  kill -0 $pid 2>/dev/null || { echo "server died"; tail -50 "$out/server.log"; exit 1; }
  grep -q "the engine failed to start" "$logs/messages.log" 2>/dev/null && { echo "the engine failed to start"; break; }
  sleep 1
done
# the JVM is the newest java process under the start script (Liberty's script may fork it)
export ROLLOUT_SERVER_PID="$(pgrep -n -f 'ws-server.jar' || echo $pid)"
grep -q libjemalloc "/proc/$ROLLOUT_SERVER_PID/maps" 2>/dev/null && echo "server malloc: jemalloc" || echo "server malloc: glibc"
rc=1
[ $ready = 1 ] && { "$@"; rc=$?; }
cp "$logs/messages.log" "$out/messages.log" 2>/dev/null
kill $pid 2>/dev/null; wait $pid 2>/dev/null
exit $rc
