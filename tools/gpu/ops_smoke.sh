#!/usr/bin/env bash
# ON THE GPU MACHINE (bench/gpu-session.sh opssmoke): issue #7's operations features from the
# distribution on CUDA: the status page and GET /status, a chat completion, the ready line and a
# weight update's log line for the default model; then a 7B checkpoint's load, whose progress the
# log reports every 3 s. Everything lands in OUT_DIR (default $OUT).
set -uo pipefail
out="${1:-${OUT:-/tmp/out}}"
mkdir -p "$out/default" "$out/q7"
# a 7B checkpoint with its weights on disk (15 GB of random bf16; bench/hf_cb.py's save writes only its config)
python3 - > "$out/q7/save.log" 2>&1 <<'PY' &
import os, sys, torch
sys.path.insert(0, "bench")
from hf_cb import ARCHS
from transformers import AutoModelForCausalLM
if not os.path.exists("/tmp/q7w/model.safetensors.index.json"):
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(ARCHS["qwen2.5-7b"](), dtype=torch.bfloat16)
    model.save_pretrained("/tmp/q7w")
print("saved /tmp/q7w")
PY
saver=$!
OUT="$out/default" bash tools/dist/gpu-run.sh bash -c '
  curl -s "$ROLLOUT_URL/" | head -c 200; echo
  curl -s "$ROLLOUT_URL/status.js" | head -c 80; echo
  model=$(curl -s "$ROLLOUT_URL/v1/models" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"data\"][0][\"id\"])")
  curl -s "$ROLLOUT_URL/v1/chat/completions" -H "Content-Type: application/json" \
    -d "{\"model\": \"$model\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 16}" > "$OUT/chat.json"
  info=$(curl -s "$ROLLOUT_URL/get_model_info" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"model_path\"])")
  curl -s "$ROLLOUT_URL/update_weights_from_disk" -d "{\"model_path\": \"$info\", \"weight_version\": \"smoke-1\"}" > "$OUT/push.json"
  sleep 2
  curl -s "$ROLLOUT_URL/status" > "$OUT/status.json"
  python3 -c "import json; s=json.load(open(\"$OUT/status.json\")); print(s[\"model\"], s[\"engine\"][\"kv_total_blocks\"], s[\"weights\"][\"pushes\"][0])"
  python3 -c "import json; print(json.load(open(\"$OUT/chat.json\"))[\"choices\"][0][\"message\"])"'
echo "default model rc=$?"
grep -E "ready:|weights smoke-1" "$out/default/messages.log" | cut -c1-300
wait $saver
OUT="$out/q7" ROLLOUT_KV_MEMORY_FRACTION=0.3 ROLLOUT_MODEL_PATH=/tmp/q7w bash tools/dist/gpu-run.sh bash -c 'curl -s "$ROLLOUT_URL/status" > "$OUT/status.json"'
echo "7B rc=$?"
grep -E "LoadProgress|ready:" "$out/q7/messages.log" | cut -c1-300
