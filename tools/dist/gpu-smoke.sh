#!/usr/bin/env bash
# ON THE GPU MACHINE, with target/rollout-dist.tar.xz carried: unpacks the distribution, starts the
# server on CUDA with pickles allowed, waits for readiness, runs gpu_smoke.py, stops the server.
set -uo pipefail
out="${OUT:-/tmp}"
mkdir -p /tmp/rollout-dist && tar -C /tmp/rollout-dist -xJf target/rollout-dist.tar.xz
t0=$(date +%s)
ROLLOUT_ALLOW_PICKLE=true ROLLOUT_KV_BLOCKS=8192 /tmp/rollout-dist/rollout/start.sh > "$out/server.log" 2>&1 &
pid=$!
for i in $(seq 1 240); do
  if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://localhost:9080/health/ready', timeout=2).status == 200 else 1)" 2>/dev/null; then
    echo "ready after $(( $(date +%s) - t0 )) s"; break
  fi
  kill -0 $pid 2>/dev/null || { echo "server died"; tail -50 "$out/server.log"; exit 1; }
  if grep -q "the engine failed to start" /tmp/rollout-dist/rollout/wlp/usr/servers/rollout/logs/messages.log 2>/dev/null; then
    echo "the engine failed to start"; break
  fi
  sleep 1
done
python3 tools/dist/gpu_smoke.py http://localhost:9080; rc=$?
cp /tmp/rollout-dist/rollout/wlp/usr/servers/rollout/logs/messages.log "$out/messages.log" 2>/dev/null
kill $pid; wait $pid 2>/dev/null
exit $rc
