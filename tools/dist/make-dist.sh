#!/usr/bin/env bash
# Builds target/rollout-dist.tar.xz: a self-contained Rollout Server for a GPU machine without
# Java (issue #4, "mode (b)": it uses the machine's own PyTorch for libtorch and CUDA). One
# archive, under 64 MiB: a jlink'd Java runtime, the minified Liberty with the war, and the
# JavaCPP GPU JNI glue. Run after `./mvnw package` (and a verify, which unpacks Liberty).
#   usage: tools/dist/make-dist.sh [SHARED_DEVICE_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
shared="${1:-../shared/device}"
root="$(pwd)"
work="$root/target/dist"
wlp="$root/target/liberty/wlp"
# Debian's JDK 17 makes the smallest runtime (4 MB less than Temurin 25 once compressed), which is
# what keeps the archive under the GPU machine's 64 MiB; it needs glibc 2.34, libstdc++ and zlib there.
jdk="${DIST_JDK:-/usr/lib/jvm/java-17-openjdk-amd64}"
[ -x "$wlp/bin/server" ] || { echo "make-dist: run ./mvnw verify first (it unpacks Liberty into target/liberty)" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work/war" "$work/rollout"

# 1. the war, minus what the GPU machine brings itself: libtorch (CPU natives), other platforms' natives
(cd "$work/war" && unzip -q "$root/target/rollout-server.war")
lib="$work/war/WEB-INF/lib"
rm -f "$lib"/pytorch-*-linux-x86_64.jar
keep_only() {  # keep_only JAR PATTERN...: drop every native library in JAR that matches none of the patterns
  local jar="$1"; shift; local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && unzip -q "$jar")
  find "$tmp" -type d \( -name 'linux-aarch64' -o -name 'linux-arm64' -o -name 'osx-*' -o -name 'win-*' -o -name 'macosx-*' \) -prune -exec rm -rf {} +
  find "$tmp" \( -name '*.so' -o -name '*.so.*' -o -name '*.dylib' -o -name '*.dll' -o -name '*.h' \) | while read -r f; do
    local b; b="$(basename "$f")"; local k=0
    for p in "$@"; do case "$b" in $p) k=1 ;; esac; done
    [ $k = 1 ] || rm -f "$f"
  done
  find "$tmp" -type d -empty -delete
  rm -f "$jar" && (cd "$tmp" && zip -q -r -0 "$jar" .) && rm -rf "$tmp"
}
keep_only "$lib"/tokenizers-*.jar 'libtokenizers.so'
cp ~/.m2/repository/org/bytedeco/cuda/13.1-9.19-1.5.13/cuda-13.1-9.19-1.5.13-linux-x86_64.jar "$lib/"
keep_only "$lib"/cuda-*-linux-x86_64.jar 'libjnicudart.so'
# the torch preset inherits openblas (which inherits openblas_nolapack): both JNI libraries load, with libopenblas
# the embedded default model's tokenizer stays (11 MB, 1.4 MB compressed): agent loops and the GRPO
# demo tokenize through the server
# JNA (DJL's) carries its dispatch library for some thirty platforms: keep Linux x86-64's
jna="$(ls "$lib"/jna-*.jar)" && jtmp="$(mktemp -d)" && (cd "$jtmp" && unzip -q "$jna" \
  && find com/sun/jna -mindepth 1 -maxdepth 1 -type d -name '*-*' ! -name linux-x86-64 -exec rm -rf {} + \
  && rm -f "$jna" && zip -q -r -0 "$jna" .) && rm -rf "$jtmp"
keep_only "$lib"/openblas-*-linux-x86_64.jar 'libjniopenblas.so' 'libjniopenblas_nolapack.so' 'libopenblas.so.0' 'libgfortran.so.5' 'libquadmath.so.0'
(cd "$work/war" && zip -q -r -0 "$work/rollout-server.war" .)

# 2. Liberty with only the features server.xml names, and the war
export WLP_USER_DIR="$work/usr"
"$wlp/bin/server" create rollout >/dev/null
cp src/main/liberty/config/server.xml src/main/liberty/config/jvm.options src/main/liberty/config/server.env "$WLP_USER_DIR/servers/rollout/"
mkdir -p "$WLP_USER_DIR/servers/rollout/apps" && cp "$work/rollout-server.war" "$WLP_USER_DIR/servers/rollout/apps/"
"$wlp/bin/server" package rollout --archive="$work/liberty.zip" --include=minify >/dev/null
(cd "$work/rollout" && unzip -q "$work/liberty.zip")
rm -rf "$work/rollout/wlp/usr/servers/rollout/resources/security" "$work/rollout/wlp/usr/servers/rollout/apps/expanded"
# jars stored, not deflated: one xz pass over everything compresses far better (liberty-feasibility.md)
python3 tools/dist/store_jars.py "$work/rollout/wlp"

# 3. a Java runtime: the modules Liberty needs, and java.net.http for the Java client (AgentBench, RolloutClient), uncompressed for the same reason
"$jdk/bin/jlink" --add-modules java.base,java.compiler,java.desktop,java.instrument,java.logging,java.management,java.naming,java.net.http,java.rmi,java.security.jgss,java.sql,java.xml,jdk.jfr,jdk.jcmd,jdk.attach,jdk.management,jdk.unsupported,jdk.crypto.ec,jdk.zipfs \
  --strip-debug --no-header-files --no-man-pages --compress=0 --output "$work/rollout/jre"

# 4. the GPU JNI glue and the start script
mkdir -p "$work/rollout/jni-gpu"
tar -C "$work/rollout/jni-gpu" -xJf "$shared"/pytorch-*-linux-x86_64-gpu-jni.tar.xz
cp tools/dist/start.sh tools/dist/env.sh "$work/rollout/" && chmod +x "$work/rollout/start.sh"
# jemalloc for the server's native heap (start.sh says why), from the Debian package libjemalloc2
mkdir -p "$work/rollout/lib"
cp /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 "$work/rollout/lib/" \
  || { echo "make-dist: needs libjemalloc2 (apt-get install libjemalloc2)" >&2; exit 1; }

# 5. our native preset as sources: start.sh builds it against the machine's libtorch (cppbuild.sh)
native="$work/rollout/native"
mkdir -p "$native/jni/linux"
cp -r native-presets/include native-presets/src native-presets/cppbuild.sh "$native/"
cp "$jdk/include/jni.h" "$native/jni/" && cp "$jdk/include/linux/jni_md.h" "$native/jni/linux/"
# the pytorch jar too: RolloutCuda's kernels take its Tensor class, and without it the Builder leaves
# them out with a mere warning
"$jdk/bin/java" -cp "$(ls ~/.m2/repository/org/bytedeco/javacpp/1.5.13/javacpp-1.5.13.jar):$(ls ~/.m2/repository/org/bytedeco/pytorch/2.10.0-1.5.13/pytorch-2.10.0-1.5.13.jar):target/classes" \
  org.bytedeco.javacpp.tools.Builder -nocompile -d "$native/generated" dev.rollout.model.RolloutCuda >/dev/null
grep -q Java_dev_rollout_model_RolloutCuda_ropeAndCache "$native/generated/jniRolloutCuda.cpp" \
  || { echo "make-dist: JavaCPP generated no JNI code for RolloutCuda's kernels" >&2; exit 1; }

tar -C "$work" -cf - rollout | xz -9e -T2 > target/rollout-dist.tar.xz
# beside it, for bench/gpu-bench.sh test (carried with target/test-classes when CUDA tests run)
./mvnw -q -B dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4 -DoutputDirectory=target
python3 tools/dist/trim_junit.py target/junit-platform-console-standalone-1.11.4.jar target/junit-console.jar
rm target/junit-platform-console-standalone-1.11.4.jar
ls -la target/rollout-dist.tar.xz
