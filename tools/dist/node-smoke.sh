#!/usr/bin/env bash
# ON A GPU NODE: the steps docs/gpu.md gives a user, as written: unpack the archive into a fresh
# directory, start.sh, wait for /health/ready, then /generate with curl (text and token ids), and
# stop the server. Prints the archive's SOURCES.txt first, so that a run records which build it
# served. Server settings come from the environment (ROLLOUT_MODEL_PATH, HTTP_PORT, ...).
#   tools/dist/node-smoke.sh [ARCHIVE]        (default target/rollout-dist.tar.xz)
set -uo pipefail
archive="${1:-target/rollout-dist.tar.xz}"
dir="$(mktemp -d /tmp/rollout-node.XXXX)"
out="${OUT:-$dir}"
echo "archive: $archive, $(stat -c %s "$archive") bytes, sha256 $(sha256sum "$archive" | cut -c1-64)"
t0=$(date +%s)
tar -C "$dir" -xJf "$archive" || exit 1
echo "unpacked in $(( $(date +%s) - t0 )) s"
cat "$dir/rollout/SOURCES.txt"
"$dir/rollout/start.sh" > "$out/node-server.log" 2>&1 &
pid=$!
url="http://localhost:${HTTP_PORT:-9080}"
rc=1
for _ in $(seq 1 300); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready")" = 200 ]; then
    echo "ready after $(( $(date +%s) - t0 )) s"; rc=0; break
  fi
  kill -0 $pid 2>/dev/null || { echo "the server exited"; break; }
  sleep 1
done
if [ $rc = 0 ]; then
  curl -s "$url/get_server_info" | head -c 400; echo
  for body in '{"text": "The capital of France is", "sampling_params": {"max_new_tokens": 16, "temperature": 0}}' \
              '{"input_ids": [9707, 11, 1879], "sampling_params": {"max_new_tokens": 8, "temperature": 0}}'; do
    echo "POST /generate $body"
    code="$(curl -s -o "$dir/generate.json" -w '%{http_code}' "$url/generate" -d "$body")"
    echo "HTTP $code: $(head -c 600 "$dir/generate.json")"
    [ "$code" = 200 ] || rc=1
  done
fi
kill $pid 2>/dev/null; wait $pid 2>/dev/null
log="$dir/rollout/wlp/usr/servers/rollout/logs/messages.log"
[ $rc = 0 ] || { tail -40 "$out/node-server.log"; tail -40 "$log" 2>/dev/null; }
cp "$log" "$out/node-messages.log" 2>/dev/null
echo "NODE SMOKE $([ $rc = 0 ] && echo PASSED || echo FAILED)"
exit $rc
