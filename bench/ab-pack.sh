#!/usr/bin/env bash
# HERE: packs a baseline build for bench/ab-engine.sh: the war's classes, the test classes (the
# EngineBench of that tree) and the native preset's sources of another checkout, after
# `./mvnw package -DskipTests && tools/dist/make-dist.sh` there. A few MB: the Java runtime, the
# jars and the JNI glue come from this tree's distribution on the GPU machine, so the baseline
# rides along in the same device call.
#   bench/ab-pack.sh OTHER_CHECKOUT OUT.tar.xz
set -euo pipefail
other="$(cd "$1" && pwd)"; out="$2"
[ -d "$other/target/dist/war/WEB-INF/classes" ] && [ -d "$other/target/dist/rollout/native" ] \
  || { echo "ab-pack: build the distribution in $other first (tools/dist/make-dist.sh)" >&2; exit 1; }
tmp="$(mktemp -d)"
mkdir -p "$tmp/base/rollout" "$tmp/base/war/WEB-INF"
cp -r "$other/target/dist/war/WEB-INF/classes" "$tmp/base/war/WEB-INF/"
rm -rf "$tmp/base/war/WEB-INF/classes/dev/rollout/tokenizer/qwen3"   # the embedded model's tokenizer: benchmarks load their own model
cp -r "$other/target/dist/rollout/native" "$other/target/dist/rollout/env.sh" "$tmp/base/rollout/"
cp -r "$other/target/test-classes" "$tmp/base/test-classes"
(cd "$other" && git rev-parse --short HEAD) > "$tmp/base/REVISION"
tar -C "$tmp" -cf - base | xz -6 -T2 > "$out"
rm -rf "$tmp"
ls -la "$out"
