#!/usr/bin/env bash
# The ranks of one node other than node 0 of a tensor-parallel server (docs/operations.md, Tensor
# parallelism): rollout.tp-size / rollout.nnodes processes, one per GPU, that meet rank 0 (the
# server, started by start.sh on node 0) at ROLLOUT_DIST_INIT_ADDR. Give it the server's ROLLOUT_*
# settings (the same model path, dtype, sizes) and this node's ROLLOUT_NODE_RANK.
#   ROLLOUT_TP_SIZE=16 ROLLOUT_NNODES=2 ROLLOUT_NODE_RANK=1 ROLLOUT_DIST_INIT_ADDR=10.0.0.1:29500 \
#     ROLLOUT_MODEL_PATH=/models/qwen2.5-72b ./worker.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
preload_jemalloc
export ROLLOUT_DEVICE="${ROLLOUT_DEVICE:-cuda}"
# the workers run the server's own classes and jars, from the war unpacked once
war="$here/wlp/usr/servers/rollout/apps/rollout-server.war"
app="$here/worker-app"
if [ ! -f "$app/.complete" ] || [ "$war" -nt "$app/.complete" ]; then
  rm -rf "$app" && python3 -m zipfile -e "$war" "$app" && touch "$app/.complete"
fi
# jvm.options' settings that a worker needs (the server's own JVM reads them from that file)
exec "$JAVA_HOME/bin/java" -Xmx2g -Dfile.encoding=UTF-8 -Djdk.lang.processReaperUseDefaultStackSize=true -DRUST_FLAVOR=cpu \
  -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 $JVM_ARGS -cp "$app/WEB-INF/classes:$app/WEB-INF/lib/*" dev.rollout.ranks.Worker
