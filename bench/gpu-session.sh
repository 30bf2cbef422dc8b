#!/usr/bin/env bash
# ON THE GPU MACHINE: several benchmark and test stages in one device command, each under its own
# time limit, a failed stage not stopping the next. The card's copy bandwidth (--hbm-gbps,
# docs/benchmark-protocol.md) is chosen from nvidia-smi. $OUT gets session.log (each stage's end),
# bench.log (every RESULT line), logs.tgz (each stage's whole log and files) and NAME.log for each
# stage as it runs: the device tool brings back at most 8 files.
#   bench/gpu-session.sh STAGE...
# Carry ["target/rollout-dist.tar.xz", "target/test-classes/dev", "target/junit-console.jar"]; the archive
# passes 64 MiB by itself, so it travels in two parts over two calls (docs/gpu.md).
# Stages (in the order given):
#   tests          the CUDA-only JUnit classes (kernels, fused ops, graphs, sampling kernel, the native checks, the host backup)
#   tests17        issue #17's engine features on CUDA: logit_bias (kernel and libtorch paths), stop_regex,
#                  input_embeds, prompt scoring in slices, sessions, weights_checker and updates while released
#                  (EngineHarness puts them on the GPU)
#   groups         c10d groups on the GPU build (ADR 0025): gloo groups made by our preset, against the node's libtorch
#                  (CollectivesTest, WeightSyncGroupTest, C10dTpGroupTest)
#   moetests       issue #19 on CUDA: the routing kernels against libtorch's ops, grouped expert GEMMs against a GEMM
#                  pair per expert, routed experts, a captured mixture against the same steps eager
#   frameworks     veRL's and slime's pickle pushes in their ITs' order (tools/gpu/framework_pushes.py)
#   save05         a random Qwen2.5-0.5B checkpoint in /tmp/q05 (both engines load it)
#   gather05       ours, libtorch's gathered attention, eager (R1 R4 R5)
#   prof05         graphs05's decode shapes under Java Flight Recorder (prof05.jfr in logs.tgz)
#   ncu05          Nsight Compute's time of each kernel of one eager decode step at batch 512
#   nsys05         Nsight Systems' per-kernel summary of graphed decode steps at batch 512
#                  (it traces, where Nsight Compute replays each kernel and did not finish in 300 s)
#   ncu05b1        Nsight Compute's time of every kernel of eager 0.5B decode steps at batch 1, summed by name
#                  (past EngineBench's warm-up at 8 rows, some 8,000 launches; a batch-1 step is some 150)
#   soak           issue #3's GPU soak (bench/rl_soak.py, the embedded default model, as in benchmarks.md)
#   heapprobe      where the soak's native memory growth comes from: streams alone, then 200 pushes
#                  in each transport alone, then release/resume cycles alone (the glibc heap after each)
#   kernelmoe      the experts' GEMMs of Qwen3-30B-A3B at 1 to 64 tokens in isolation (KernelBench moe30):
#                  libtorch's grouped GEMMs against our matrix-vector kernels, the crossover of CausalLm.GEMV_COPIES
#   samplingtests  the sampling kernel's tests, its checks, CUDA graphs (bf16 logits) and logit_bias
#   gemvtests      the decode matrix-vector kernels (dense_gemv.cu) against the ops they replace, in a model against
#                  cuBLAS's GEMMs, and replayed from graphs
#   gemv05         R4 and R5 at batches 1, 2, 4, 8 with cuBLAS's projections (--cublas-projections) and with dense_gemv.cu's
#                  (the default, up to Kernels.GEMV_STEP_ROWS rows), two rounds
#   gemv7          the same at 7B (random weights made on the GPU), one round
#   mmatests       dense_gemv.cu's tensor-core form (ROLLOUT_GEMV_MMA=1): DenseGemvTest and CudaGraphTest
#   mmagemv        KernelBench gemv at 1, 4 and 8 rows (0.5B, 7B), the CUDA-core form then the tensor-core form
#   pdltests       the kernels' and graphs' tests with programmatic dependent launch on (ROLLOUT_PDL=1)
#   pdl05          R4 and R5 at batches 1, 2, 4 and 64 without and with programmatic dependent launch, two rounds
#   kernelgemv     KernelBench of a layer's projections at 1 to 8 rows, 0.5B and 7B: cuBLAS + fused ops against dense_gemv.cu,
#                  weights from HBM (copies past the L2)
#   busy05         the GPU's share of graphed decode steps at batches 1, 64 and 512 (CUDA events around the replay and
#                  the sampling against the step's wall time: the rest is host work the GPU waits for), PDL off then on
#   phases05       GPU time per phase of eager decode steps (CUDA events: GEMMs, attention, fused ops, LM head,
#                  sampling) at batches 1, 64 and 512: the profile behind the large-batch misses
#   phases7        the same on 7B random weights (batches 1, 64, 256)
#   kernelbench    single kernels in isolation (KernelBench): our paged attention and one layer's GEMMs, each
#                  with its bytes and fraction of the HBM floor, for Qwen2.5-0.5B's and 7B's shapes
#   toolmodels     trains the tool-calling test model and GRPO's starting point from target/agent/*.jsonl.xz
#                  (AgentTranscripts' output); the safetensors come back in logs.tgz
#   grpo           the GRPO demonstration (examples/python/grpo_demo.py): grpo.jsonl and grpo-reward.svg in logs.tgz
#   agentbench     AgentBench on the server: episodes/s and engine busy fraction, continuous against lock-step
#                  (carry also "target/test-classes/agent", the tool-calling model it loads)
#   kernels05      ours, our paged kernel and fused ops, eager
#   graphs05       ours, kernel + fused ops + CUDA graphs, --repeat 2 (the first run captures)
#   ab05           graphs05's R4 and R1 for this tree and a baseline tree, alternating (bench/ab-engine.sh; carry
#                  also ".device/base.tar.xz", made here by bench/ab-pack.sh OTHER_CHECKOUT .device/base.tar.xz,
#                  or another archive named by AB_BASE)
#   ab05sweep      R5's decode steps at batches 1, 64 and 512 (AB_SWEEP picks others, e.g. 1,512 when device
#                  time is short) for this tree and the baseline, as ab05
#   abkernel       KernelBench (our paged attention and one layer's GEMMs, each with its fraction of the
#                  bandwidth) for this tree and the baseline, as ab05: a kernel's change on its own
#   ab7            R4 at 7B (random weights made on the GPU), this tree against the baseline as ab05
#   ab30g          moe30's decode and sweep with CUDA graphs, this tree against the baseline as ab05
#   ab30           eager steps of moe30's model, this tree against the baseline as ab05 (the fused routing on its own)
#   ncu30          Nsight Compute's time of every kernel of eager decode steps at batch 1, four layers of the
#                  30B-A3B shape, summed by kernel name
#   nsys30         Nsight Systems' per-kernel summary of graphed 30B-A3B decode steps at batch 1 (issue #19's profile)
#   moe30g         moe30's first run alone and GRPO 32 x 8 (in 512, out 1024): grouped expert GEMMs with CUDA graphs
#   hf30           transformers on moe30's shape, random weights made on the GPU: decode and the sweep (the baseline)
#   moe30          issue #19: a random Qwen3-30B-A3B on the GPU, decode and a sweep: grouped expert GEMMs with CUDA
#                  graphs, then eager, a GEMM pair per expert (eager: their baseline), graphs with routed experts kept
#   sampling05     graphs05's R1 and batch sweep with libtorch's sampling ops instead of our kernel (its baseline)
#   constrained05  issue #22's per-step cost: 256 requests constrained to JSON tool-call lines (EngineBench csweep,
#                  the real Qwen3 vocabulary) against the same 256 unconstrained, kernels + graphs, two rounds
#   r6ref          R6's in-process reference: 512 requests of 512 + 256 at once, kernels + graphs
#   hf05           transformers on 0.5B: continuous batching on the reduced R1 shape, `generate` at
#                  batch 1 (R4) and batches 1-512 (R5), load_state_dict from GPU/host/disk (R8)
#   hf05r6         transformers continuous batching on R6's shape (512 requests of 512 + 256 at once)
#                  and its load_state_dict pushes (R8), for the run of r6ref online05inc push05
#   hf7            the same on 7B random weights made on the GPU (R2 reduced, R4, R8 from GPU and host)
#   hfc05          issue #20's compiled PyTorch baseline on 0.5B (bench/hf_compiled.py): transformers with a static
#                  cache, the decode step compiled (reduce-overhead: CUDA graphs); R4, R5 at batches 1, 64, 512, R1
#   hfc7           the same on 7B random weights made on the GPU, R4 only
#   graphs7        7B random weights made on the GPU (R2 R4), kernels + graphs
#   online05 push05  R6 and R8 against the distribution's server (kernels and graphs: its defaults)
#   online05inc    online05 with incremental streaming (each chunk only what is new)
#   online05prof   online05inc at rate inf with the server under Java Flight Recorder (server.jfr in logs.tgz)
#   kernelab       the paged attention kernel of this tree against kernel-baseline.cu, same card, same command
#                  (git show REV:native-presets/src/paged_attention.cu > kernel-baseline.cu, uncommitted)
#   chatfixtures   issue #6: Qwen3's chat template rendered by transformers (chat-fixtures.json in logs.tgz)
#   push7          R8 for 7B against the server (its weights and the pusher's random, made on the GPU)
#   dist           the distribution as docs/gpu.md tells a user to start it (tools/dist/node-smoke.sh):
#                  a fresh unpack, start.sh, /health/ready, /generate with curl; needs only the archive
#   opssmoke       issue #7 from the distribution on CUDA: status page, /status, chat, log lines; a 7B load's progress
#   pyclient       examples/python's torch transports (safetensors buckets, CUDA IPC, pickles) against the server
#   parity         bf16 parity with transformers (tools/gpu/parity.py)
#   moeparity      issue #19: the same on four layers of Qwen3-30B-A3B's shape, routed experts against transformers' router
#   parity32       the same with float32 logits from the LM head (rollout.fp32-lm-head)
set -uo pipefail
export OUT="${OUT:-/tmp/out}"
logs=/tmp/session-logs
mkdir -p "$OUT" "$logs"
card="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
case "$card" in *H200*) gbps=4300 ;; *) gbps=3000 ;; esac
echo "card: $card, hbm-gbps $gbps, $(date -u +%FT%TZ)" | tee -a "$OUT/session.log"
r1="grpo:64:8:512:256"
shapes05="--hbm-gbps $gbps decode:128:512 sweep:512:128:1,8,32,64,128,256,512 $r1 sweep:512:256:512"
stage() {  # stage NAME SECONDS CMD...
  local name="$1" limit="$2"; shift 2
  local t0; t0=$(date +%s)
  echo "== $name ($(date -u +%T))" | tee -a "$OUT/session.log"
  # the log is written under $OUT as it grows, so that a device call cut short still brings it back
  OUT="$logs" timeout -k 10 "$limit" "$@" > "$OUT/$name.log" 2>&1  # their own files go to the tarball
  local rc=$?
  cp "$OUT/$name.log" "$logs/$name.log"
  echo "== $name rc=$rc in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/session.log"
  grep -h '^RESULT' "$logs/$name.log" >> "$OUT/bench.log" 2>/dev/null
  # the tests' own comparisons, then the end of the log
  grep -h 'vs reference\|max |' "$logs/$name.log" | sed 's/^/   /' | tee -a "$OUT/session.log"
  tail -5 "$logs/$name.log" | sed 's/^/   /' | tee -a "$OUT/session.log"
  tar -C "$logs" -czf "$OUT/logs.tgz" .
}
ours=(bash bench/gpu-bench.sh ours)
for s in "$@"; do
  case "$s" in
    tests) stage tests 300 bash bench/gpu-bench.sh test dev.rollout.model.PagedDecodeKernelTest \
             dev.rollout.model.FusedOpsTest dev.rollout.engine.CudaGraphTest dev.rollout.model.RolloutCudaTest \
             dev.rollout.model.DenseGemvTest dev.rollout.engine.SamplingKernelTest dev.rollout.model.NativeChecksTest dev.rollout.engine.CudaHostBackupTest ;;
    tests17) stage tests17 300 bash bench/gpu-bench.sh test dev.rollout.engine.SamplingKernelTest \
             dev.rollout.engine.LogitBiasTest dev.rollout.engine.StopRegexTest dev.rollout.engine.PromptEmbedsTest \
             dev.rollout.engine.PromptScoringTest dev.rollout.engine.SessionsTest dev.rollout.engine.RequestTimeoutsTest \
             dev.rollout.engine.CudaWeightCheckerTest dev.rollout.engine.CudaHostBackupTest dev.rollout.engine.UpdateWhileReleasedTest ;;
    # the sampling path alone: the kernel, its checks, bf16 logits through graphs and logit_bias
    samplingtests) stage samplingtests 200 bash bench/gpu-bench.sh test dev.rollout.engine.SamplingKernelTest \
             dev.rollout.model.NativeChecksTest dev.rollout.engine.CudaGraphTest dev.rollout.engine.LogitBiasTest \
             dev.rollout.model.SamplingLogitsTest ;;
    # issue #20's decode matrix-vector kernels: against the ops they replace, in a model, under graphs; then their speed
    gemvtests) stage gemvtests 240 bash bench/gpu-bench.sh test dev.rollout.model.DenseGemvTest dev.rollout.engine.CudaGraphTest \
             dev.rollout.model.FusedOpsTest ;;
    # the tensor-core form of dense_gemv.cu (ROLLOUT_GEMV_MMA=1): its tests, then KernelBench against the CUDA-core form
    mmatests) stage mmatests 240 env ROLLOUT_GEMV_MMA=1 bash bench/gpu-bench.sh test dev.rollout.model.DenseGemvTest \
             dev.rollout.engine.CudaGraphTest ;;
    mmagemv) stage mmagemv 300 bash -c "for mma in 0 1; do echo \"== ROLLOUT_GEMV_MMA=\$mma\"; ROLLOUT_GEMV_MMA=\$mma bash bench/gpu-bench.sh \
             kernels --hbm-gbps $gbps gemv:0.5b:1 gemv:0.5b:4 gemv:0.5b:8 gemv:7b:1 gemv:7b:8 || exit 1; done" ;;
    kernelgemv) stage kernelgemv 200 bash bench/gpu-bench.sh kernels --hbm-gbps "$gbps" gemv:0.5b:1 gemv:0.5b:2 gemv:0.5b:4 \
             gemv:0.5b:8 gemv:7b:1 gemv:7b:4 gemv:7b:8 ;;
    # R4 and R5's small batches with cuBLAS's projections, then dense_gemv.cu's, alternating twice (same build, same card)
    gemv05) stage gemv05 400 bash -c "for round in 1 2; do for g in --cublas-projections ''; do echo \"== projections: \${g:-dense_gemv}\"; \
             ${ours[*]} /tmp/q05 --native-kernels \$g --cuda-graphs --repeat 2 --hbm-gbps $gbps decode:128:512 sweep:512:128:1,2,4,8 \
             || exit 1; done; done" ;;
    pdltests) stage pdltests 300 env ROLLOUT_PDL=1 bash bench/gpu-bench.sh test dev.rollout.model.DenseGemvTest \
                dev.rollout.engine.CudaGraphTest dev.rollout.model.PagedDecodeKernelTest dev.rollout.model.FusedOpsTest ;;
    pdl05) stage pdl05 400 bash -c "for round in 1 2; do for pdl in 0 1; do echo \"== ROLLOUT_PDL=\$pdl\"; \
             ROLLOUT_PDL=\$pdl ${ours[*]} /tmp/q05 --native-kernels --cuda-graphs --repeat 2 --hbm-gbps $gbps decode:128:512 \
             sweep:512:128:1,2,4,64 || exit 1; done; done" ;;
    gemv7) bash bench/gpu-bench.sh save /tmp/q7 qwen2.5-7b > /dev/null 2>&1
           stage gemv7 400 bash -c "for g in --cublas-projections ''; do echo \"== projections: \${g:-dense_gemv}\"; \
             ${ours[*]} /tmp/q7 --dummy --native-kernels \$g --cuda-graphs --repeat 2 --hbm-gbps $gbps decode:128:512 \
             sweep:512:128:1,8 || exit 1; done" ;;
    groups) stage groups 200 bash bench/gpu-bench.sh test dev.rollout.dist.CollectivesTest dev.rollout.dist.WeightSyncGroupTest \
              dev.rollout.model.C10dTpGroupTest ;;
    moetests) stage moetests 240 bash bench/gpu-bench.sh test dev.rollout.model.MoeKernelsTest dev.rollout.model.NativeChecksTest dev.rollout.model.GroupedMmTest dev.rollout.engine.GroupedExpertsTest \
                dev.rollout.engine.RoutedExpertsTest dev.rollout.engine.CudaGraphTest ;;
    frameworks) stage frameworks 400 bash -c 'python3 tools/gpu/framework_pushes.py make /tmp/fw && \
              ROLLOUT_MODEL_PATH=/tmp/fw/a bash tools/dist/gpu-run.sh python3 tools/gpu/framework_pushes.py check /tmp/fw' ;;
    save05) stage save05 120 bash bench/gpu-bench.sh save /tmp/q05 qwen2.5-0.5b ;;
    gather05) stage gather05 150 "${ours[@]}" /tmp/q05 $shapes05 ;;
    prof05) stage prof05 120 env BENCH_JVM_ARGS="-XX:StartFlightRecording=filename=$logs/prof05.jfr,settings=profile" \
              "${ours[@]}" /tmp/q05 --native-kernels --cuda-graphs --repeat 3 --hbm-gbps "$gbps" decode:128:512 sweep:512:128:64 ;;
    # Nsight Compute's time of single kernels, our attention first: a small KV cache (ncu saves and
    # restores what a kernel may write), and only kernels whose name matches are counted and timed
    ncu05) ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
           stage ncu05 300 "$ncu" --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
             --kernel-name regex:"partition_kernel|merge_kernel|rope_and_cache|rms_norm|silu_and_mul|nvjet|gemm|gemv|cutlass" \
             --launch-skip 600 --launch-count 300 "${ours[@]}" /tmp/q05 --native-kernels --kv-fraction 0.05 \
             --hbm-gbps "$gbps" sweep:16:8:512 ;;
    # issue #19: every kernel of eager decode steps at batch 1 of four layers of Qwen3-30B-A3B's shape (the
    # whole model's 48 did not reach its first profiled launch in 400 s: ncu intercepts every launch, the
    # weights' initialisation included), summed by kernel name; no nsys on the GPU machines lent so far
    ncu30) ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
           bash bench/gpu-bench.sh save /tmp/q30 qwen3-30b-a3b > /dev/null 2>&1
           mkdir -p /tmp/q30l4 && python3 -c "import json; c = json.load(open('/tmp/q30/config.json')); c['num_hidden_layers'] = 4; \
             json.dump(c, open('/tmp/q30l4/config.json', 'w'))"
           stage ncu30 400 bash -c "'$ncu' --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
             --launch-skip 1500 --launch-count 650 ${ours[*]} /tmp/q30l4 --dummy --native-kernels --kv-fraction 0.05 \
             --hbm-gbps $gbps decode:128:64 > $logs/ncu30.csv; python3 bench/ncu-summary.py < $logs/ncu30.csv" ;;
    # issue #20: every kernel of eager 0.5B decode steps at batch 1 (about 260 a step), summed by kernel name
    ncu05b1) ncu="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
             stage ncu05b1 400 bash -c "'$ncu' --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
               --launch-skip 9500 --launch-count 450 ${ours[*]} /tmp/q05 --native-kernels --kv-fraction 0.05 \
               --hbm-gbps $gbps decode:128:64 > $logs/ncu05b1.csv; python3 bench/ncu-summary.py < $logs/ncu05b1.csv" ;;
    nsys05) nsys="$(command -v nsys || ls /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda/bin/nsys 2>/dev/null | head -1)"
            if [ -z "$nsys" ]; then echo "no nsys on this machine" | tee -a "$OUT/session.log"; else
              stage nsys05 300 bash -c "'$nsys' profile --cuda-graph-trace=node --trace=cuda -o /tmp/nsys05 --force-overwrite true \
                ${ours[*]} /tmp/q05 --native-kernels --cuda-graphs --hbm-gbps $gbps sweep:512:128:512 && \
                '$nsys' stats --report cuda_gpu_kern_sum --format csv /tmp/nsys05.nsys-rep"; fi ;;  # the report stays out of logs.tgz: too large to bring back
    # issue #19: where a graphed Qwen3-30B-A3B decode step at batch 1 spends its time, kernel by kernel
    nsys30) nsys="$(command -v nsys || ls /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda/bin/nsys 2>/dev/null | head -1)"
            bash bench/gpu-bench.sh save /tmp/q30 qwen3-30b-a3b > /dev/null 2>&1
            if [ -z "$nsys" ]; then echo "no nsys on this machine" | tee -a "$OUT/session.log"; else
              stage nsys30 300 bash -c "'$nsys' profile --cuda-graph-trace=node --trace=cuda -o /tmp/nsys30 --force-overwrite true \
                ${ours[*]} /tmp/q30 --dummy --native-kernels --cuda-graphs --hbm-gbps $gbps sweep:128:64:1 && \
                '$nsys' stats --report cuda_gpu_kern_sum --format csv /tmp/nsys30.nsys-rep"; fi ;;
    # issue #3's soak with the engine's defaults (kernels and graphs), the JVM tracking its own native memory
    soak) stage soak 590 env ROLLOUT_MAX_RUNNING_REQUESTS=512 JVM_ARGS=-XX:NativeMemoryTracking=summary \
            bash tools/dist/gpu-run.sh python3 bench/rl_soak.py --deadline-s 400 ;;
    heapprobe) stage heapprobe 400 env ROLLOUT_MAX_RUNNING_REQUESTS=512 bash tools/dist/gpu-run.sh bash -c '
                 soak="python3 bench/rl_soak.py --cycles 0 --no-sessions --modes wait"
                 $soak --pushes 0 --streams-only-s 60 | grep "^streams only"
                 for t in safetensors binary flattened_bucket cuda_ipc pickle; do echo "== $t"
                   $soak --streams 0 --pushes 200 --transports $t | grep "^pushes\|^memory \(start\|end\)\|PROBLEM"; done
                 echo "== cycles"; python3 bench/rl_soak.py --streams 0 --pushes 0 --cycles 100 | grep "^release\|^memory \(start\|end\)"' ;;
    kernelbench) stage kernelbench 200 bash bench/gpu-bench.sh kernels --hbm-gbps "$gbps" 0.5b:1:576 0.5b:64:576 0.5b:512:576 \
                   0.5b:512:2048 7b:1:576 7b:64:576 7b:256:576 ;;
    kernelmoe) stage kernelmoe 200 bash bench/gpu-bench.sh kernels --hbm-gbps "$gbps" moe30:1 moe30:2 moe30:4 moe30:8 moe30:16 \
                 moe30:32 moe30:64 ;;
    busy05) stage busy05 300 bash -c "for pdl in 0 1; do echo \"== ROLLOUT_PDL=\$pdl\"; ROLLOUT_PDL=\$pdl ${ours[*]} /tmp/q05 --native-kernels \
              --cuda-graphs --phase-profile --repeat 2 --hbm-gbps $gbps sweep:512:128:1,64,512 || exit 1; done" ;;
    phases05) stage phases05 200 "${ours[@]}" /tmp/q05 --native-kernels --phase-profile --hbm-gbps "$gbps" sweep:512:128:1,64,512 ;;
    phases7) bash bench/gpu-bench.sh save /tmp/q7 qwen2.5-7b > /dev/null 2>&1
             stage phases7 240 "${ours[@]}" /tmp/q7 --dummy --native-kernels --phase-profile --hbm-gbps "$gbps" sweep:512:128:1,64,256 ;;
    # the tool-calling test models (tools/agent/train_tool_model.py) from target/agent's transcripts, into logs.tgz
    toolmodels) stage toolmodels 300 bash -c "xz -dc target/agent/tool.jsonl.xz > /tmp/tool.jsonl && \
                  xz -dc target/agent/tool-partial.jsonl.xz > /tmp/tool-partial.jsonl && \
                  python3 tools/agent/train_tool_model.py /tmp/tool.jsonl $logs/tool-model.safetensors --steps 3000 --batch 64 && \
                  python3 tools/agent/train_tool_model.py /tmp/tool-partial.jsonl $logs/tool-model-partial.safetensors --steps 3000 --batch 64" ;;
    # issue #5's GRPO demonstration: the starting policy trained from target/agent's transcripts (85% guesses),
    # then examples/python/grpo_demo.py against the server and its example environment
    grpo) stage grpo 560 bash -c "xz -dc target/agent/tool-partial.jsonl.xz > /tmp/tool-partial.jsonl && \
            python3 tools/agent/train_tool_model.py /tmp/tool-partial.jsonl /tmp/tool-model-partial.safetensors --steps 3000 --batch 64 && \
            ROLLOUT_EXAMPLE_ENV_ENABLED=true bash tools/dist/gpu-run.sh bash -c \
              'cd examples/python && OUT=$logs python3 grpo_demo.py /tmp/tool-model-partial.safetensors --steps 30'" ;;
    # issue #5's claim: the agent loop with continuous batching against lock-step, tool model loaded, env latencies
    agentbench) stage agentbench 400 env ROLLOUT_EXAMPLE_ENV_ENABLED=true bash tools/dist/gpu-run.sh \
                  bash bench/gpu-bench.sh agent --episodes 1024 --concurrency 256 --latencies 50,50-500,50-2000 ;;
    kernels05) stage kernels05 150 "${ours[@]}" /tmp/q05 --native-kernels $shapes05 ;;
    graphs05) stage graphs05 330 "${ours[@]}" /tmp/q05 --native-kernels --cuda-graphs --repeat 2 $shapes05 ;;
    # R4 and R1 (reduced) of this tree against a baseline tree, alternating, in this one command
    ab05) stage ab05 560 bash bench/ab-engine.sh "${AB_BASE:-.device/base.tar.xz}" /tmp/q05 --native-kernels --cuda-graphs --repeat 2 \
            --hbm-gbps "$gbps" decode:128:512 $r1 ;;
    ab05sweep) stage ab05sweep 400 bash bench/ab-engine.sh "${AB_BASE:-.device/base.tar.xz}" /tmp/q05 --native-kernels --cuda-graphs \
                 --repeat 2 --hbm-gbps "$gbps" "sweep:512:128:${AB_SWEEP:-1,64,512}" ;;
    abkernel) stage abkernel 300 env AB_MAIN=dev.rollout.model.KernelBench bash bench/ab-engine.sh "${AB_BASE:-.device/base.tar.xz}" - \
                --hbm-gbps "$gbps" 0.5b:1:576 0.5b:64:576 0.5b:512:576 0.5b:512:2048 0.5b:1:8192 7b:1:576 7b:64:576 7b:256:576 7b:1:8192 ;;
    # R4 at 7B (random weights made on the GPU) for this tree and the baseline, alternating: issue #18's "TP=1 is no slower"
    ab7) bash bench/gpu-bench.sh save /tmp/q7 qwen2.5-7b > /dev/null 2>&1
         stage ab7 400 bash bench/ab-engine.sh "${AB_BASE:-.device/base.tar.xz}" /tmp/q7 --dummy --native-kernels --cuda-graphs --repeat 2 \
            --hbm-gbps "$gbps" decode:128:512 ;;
    # issue #19's fused routing on its own: eager steps of a random Qwen3-30B-A3B, this tree against the baseline as ab05
    ab30g) bash bench/gpu-bench.sh save /tmp/q30 qwen3-30b-a3b > /dev/null 2>&1
           stage ab30g 560 bash bench/ab-engine.sh "${AB_BASE:-.device/base.tar.xz}" /tmp/q30 --dummy --native-kernels --cuda-graphs \
             --hbm-gbps "$gbps" decode:128:64 sweep:128:32:1,8,64 ;;
    ab30) bash bench/gpu-bench.sh save /tmp/q30 qwen3-30b-a3b > /dev/null 2>&1
          stage ab30 500 bash bench/ab-engine.sh "${AB_BASE:-.device/base.tar.xz}" /tmp/q30 --dummy --native-kernels \
            --hbm-gbps "$gbps" decode:128:64 sweep:128:32:1,8,64 ;;
    sampling05) stage sampling05 200 "${ours[@]}" /tmp/q05 --native-kernels --libtorch-sampling --cuda-graphs --repeat 2 \
                  --hbm-gbps "$gbps" sweep:512:128:1,64,512 $r1 ;;
    constrained05) stage constrained05 300 "${ours[@]}" /tmp/q05 --native-kernels --cuda-graphs --repeat 2 --hbm-gbps "$gbps" \
        sweep:128:256:256 csweep:128:256:256 ;;
    r6ref) stage r6ref 120 "${ours[@]}" /tmp/q05 --native-kernels --cuda-graphs --repeat 2 --hbm-gbps "$gbps" sweep:512:256:512 ;;
    hf05) stage hf05 300 bash bench/gpu-bench.sh hf /tmp/q05 --hbm-gbps "$gbps" decode:128:512 sweep:512:128:1,8,64,512 push \
            grpo:16:8:512:256 ;;
    hf05r6) stage hf05r6 300 bash bench/gpu-bench.sh hf /tmp/q05 --hbm-gbps "$gbps" push grpo:512:1:512:256 ;;
    hf7) bash bench/gpu-bench.sh save /tmp/q7 qwen2.5-7b > /dev/null 2>&1
         stage hf7 400 bash bench/gpu-bench.sh hf /tmp/q7 --hbm-gbps "$gbps" decode:128:512 push grpo:4:8:512:256 ;;
    # issue #20's compiled baseline: compilation of each static batch is in the stage's time (compile_s in its lines)
    hfc05) stage hfc05 400 bash bench/gpu-bench.sh hfc /tmp/q05 --hbm-gbps "$gbps" decode:128:512 sweep:512:128:1,64,512 $r1 ;;
    hfc7) bash bench/gpu-bench.sh save /tmp/q7 qwen2.5-7b > /dev/null 2>&1
          stage hfc7 300 bash bench/gpu-bench.sh hfc /tmp/q7 --hbm-gbps "$gbps" decode:128:512 ;;
    graphs7) bash bench/gpu-bench.sh save /tmp/q7 qwen2.5-7b > /dev/null 2>&1
             stage graphs7 300 "${ours[@]}" /tmp/q7 --dummy --native-kernels --cuda-graphs --repeat 2 --hbm-gbps "$gbps" decode:128:512 grpo:32:8:512:1024 ;;
    # issue #19: a random Qwen3-30B-A3B made on the GPU (61 GB in bf16), eager on libtorch's ops: decode at
    # batch 1 against the floor of the chosen experts, a batch sweep, then the same with routed experts kept (R3's cost)
    moe30g) bash bench/gpu-bench.sh save /tmp/q30 qwen3-30b-a3b > /dev/null 2>&1
            stage moe30g 400 "${ours[@]}" /tmp/q30 --dummy --native-kernels --cuda-graphs --repeat 2 --hbm-gbps "$gbps" \
              decode:128:64 sweep:128:32:1,8,64 grpo:32:8:512:1024 ;;
    hf30) bash bench/gpu-bench.sh save /tmp/q30 qwen3-30b-a3b > /dev/null 2>&1
          stage hf30 400 bash bench/gpu-bench.sh hf /tmp/q30 --hbm-gbps "$gbps" decode:128:64 sweep:128:32:1,8,64 ;;
    moe30) bash bench/gpu-bench.sh save /tmp/q30 qwen3-30b-a3b > /dev/null 2>&1
           stage moe30 540 bash -c "${ours[*]} /tmp/q30 --dummy --native-kernels --cuda-graphs --repeat 2 --hbm-gbps $gbps decode:128:64 sweep:128:32:1,8,64 \
              && ${ours[*]} /tmp/q30 --dummy --native-kernels --hbm-gbps $gbps decode:128:64 sweep:128:32:1,8,64 \
              && ${ours[*]} /tmp/q30 --dummy --native-kernels --per-expert-gemms --hbm-gbps $gbps decode:128:64 sweep:128:32:1,8,64 \
              && ${ours[*]} /tmp/q30 --dummy --native-kernels --cuda-graphs --repeat 2 --routed-experts --hbm-gbps $gbps decode:128:64 sweep:128:32:1,8,64" ;;
    # R6 against the in-process engine's settings (EngineBench: 512 running, 8,192 tokens a step)
    online05) stage online05 300 env ROLLOUT_MODEL_PATH=/tmp/q05 ROLLOUT_MAX_RUNNING_REQUESTS=512 ROLLOUT_MAX_BATCHED_TOKENS=8192 \
                bash tools/dist/gpu-run.sh python3 bench/online.py --requests 512 --in 512 --out 256 --rates inf,inf,16 ;;
    online05inc) stage online05inc 300 env ROLLOUT_MODEL_PATH=/tmp/q05 ROLLOUT_MAX_RUNNING_REQUESTS=512 ROLLOUT_MAX_BATCHED_TOKENS=8192 \
                   ROLLOUT_INCREMENTAL_STREAMING_OUTPUT=true \
                   bash tools/dist/gpu-run.sh python3 bench/online.py --requests 512 --in 512 --out 256 --rates inf,inf,16 ;;
    online05prof) stage online05prof 240 env ROLLOUT_MODEL_PATH=/tmp/q05 ROLLOUT_MAX_RUNNING_REQUESTS=512 ROLLOUT_MAX_BATCHED_TOKENS=8192 \
                    ROLLOUT_INCREMENTAL_STREAMING_OUTPUT=true \
                    JVM_ARGS="-XX:StartFlightRecording=filename=$logs/server.jfr,settings=profile,dumponexit=true" \
                    bash tools/dist/gpu-run.sh bash -c 'python3 bench/online.py --requests 512 --in 512 --out 256 --rates inf;
                      kill "$ROLLOUT_SERVER_PID"; sleep 10' ;;  # the JVM writes its recording as it exits
    push05) stage push05 200 env ROLLOUT_MODEL_PATH=/tmp/q05 ROLLOUT_KV_MEMORY_FRACTION=0.3 \
              bash tools/dist/gpu-run.sh python3 bench/weight_push.py --ways gpu,host,disk ;;
    # the paged attention kernel of this tree against a baseline source (kernel-baseline.cu at the tree's
    # root), one after the other on the same card: KernelBench and graphed steps (R5 at 1 and 512, R1)
    kernelab) stage kernelab 500 bash -c "set -e; src=/tmp/rollout-dist/rollout/native/src/paged_attention.cu
                both() { bash bench/gpu-bench.sh kernels --hbm-gbps $gbps 0.5b:1:576 0.5b:512:576 0.5b:512:2048 7b:1:576 7b:256:576
                         bash bench/gpu-bench.sh ours /tmp/q05 --native-kernels --cuda-graphs --repeat 2 --hbm-gbps $gbps \
                           sweep:512:128:1,512 grpo:64:8:512:256; }
                bash tools/dist/unpack.sh; cp \$src /tmp/kernel-this-tree.cu
                echo '== this tree'; both
                cp kernel-baseline.cu \$src; rm -rf /tmp/rollout-dist/rollout/native/lib-*
                echo '== baseline'; both
                cp /tmp/kernel-this-tree.cu \$src; rm -rf /tmp/rollout-dist/rollout/native/lib-*" ;;
    # issue #6's chat-template fixtures: transformers' apply_chat_template on the tokenizer the war carries
    chatfixtures) stage chatfixtures 120 bash -c "bash tools/dist/unpack.sh && python3 tools/gpu/chat_fixtures.py \
                    /tmp/rollout-dist/war/WEB-INF/classes/dev/rollout/tokenizer/qwen3 $logs/chat-fixtures.json" ;;
    # R8 for 7B through the server: random weights made on the GPU on both sides (15 GB; disk left out)
    push7) bash bench/gpu-bench.sh save /tmp/q7 qwen2.5-7b > /dev/null 2>&1
           stage push7 400 env ROLLOUT_MODEL_PATH=/tmp/q7 ROLLOUT_LOAD_FORMAT=dummy ROLLOUT_KV_MEMORY_FRACTION=0.3 \
             bash tools/dist/gpu-run.sh python3 bench/weight_push.py --ways gpu,host ;;
    dist) stage dist 400 bash tools/dist/node-smoke.sh target/rollout-dist.tar.xz ;;
    opssmoke) stage opssmoke 560 bash tools/gpu/ops_smoke.sh "$logs/opssmoke" ;;
    pyclient) stage pyclient 300 bash tools/dist/gpu-run.sh bash -c 'cd examples/python && python3 gpu_check.py' ;;
    # make trains for up to 120 s; the server starts on the flat checkpoint and loads the trained one
    parity) stage parity 560 bash -c 'python3 tools/gpu/parity.py make /tmp/parity --train-s 120 && \
              ROLLOUT_MODEL_PATH=/tmp/parity/flat bash tools/dist/gpu-run.sh python3 tools/gpu/parity.py check /tmp/parity' ;;
    moeparity) stage moeparity 580 bash -c 'python3 tools/gpu/parity.py make /tmp/moeparity --arch qwen3-moe --layers 4 --train-s 120 && \
                 ROLLOUT_MODEL_PATH=/tmp/moeparity/flat ROLLOUT_ENABLE_RETURN_ROUTED_EXPERTS=true bash tools/dist/gpu-run.sh \
                 python3 tools/gpu/parity.py check /tmp/moeparity' ;;
    parity32) stage parity32 560 bash -c '[ -d /tmp/parity/trained ] || python3 tools/gpu/parity.py make /tmp/parity --train-s 120; \
                ROLLOUT_MODEL_PATH=/tmp/parity/flat ROLLOUT_FP32_LM_HEAD=true bash tools/dist/gpu-run.sh \
                python3 tools/gpu/parity.py check /tmp/parity --logits fp32' ;;
    *) echo "unknown stage $s" | tee -a "$OUT/session.log" ;;
  esac
done
