#!/usr/bin/env bash
# Builds target/rollout-dist.tar.xz: a self-contained Rollout Server for a GPU machine without
# Java (issue #4, "mode (b)": it uses the machine's own PyTorch for libtorch and CUDA). One
# archive: a jlink'd Java runtime, the minified Liberty with the war, the JavaCPP GPU JNI glue and
# jemalloc. Every input is public and resolved by the build, none is read from outside the
# checkout: run `./mvnw -Pdist package` first (the war, Liberty in target/liberty, and the GPU JNI
# glue, the CUDA JNI jar and the JUnit console from Maven Central in target/dist-deps); jemalloc
# comes from Debian's libjemalloc2. This script downloads nothing but that .deb, when the package
# is not installed. docs/gpu.md has the steps.
#   usage: tools/dist/make-dist.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
work="$root/target/dist"
wlp="$root/target/liberty/wlp"
deps="$root/target/dist-deps"
# Debian's JDK 17 (openjdk-17-jdk-headless) makes the smallest runtime (4 MB less than Temurin 25
# once compressed), which kept the archive under the GPU machine's 64 MiB per call; it needs
# glibc 2.34, libstdc++ and zlib on the node. DIST_JDK picks another JDK 17+ with jmods.
jdk="${DIST_JDK:-/usr/lib/jvm/java-17-openjdk-amd64}"
[ -x "$jdk/bin/jlink" ] || { echo "make-dist: no JDK with jlink at $jdk (apt-get install openjdk-17-jdk-headless, or set DIST_JDK)" >&2; exit 1; }
[ -x "$wlp/bin/server" ] && [ -f target/rollout-server.war ] && [ -f "$deps/jni-gpu/libjnitorch.so" ] \
  && [ -f "$deps/jni-gpu/libjnitorch_gloo.so" ] \
  || { echo "make-dist: run ./mvnw -Pdist package first (the war, Liberty in target/liberty, the GPU JNI glue in target/dist-deps)" >&2; exit 1; }
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
cp "$deps"/cuda-*-linux-x86_64.jar "$lib/"
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
# jars stored, not deflated: one xz pass over the whole tree then finds the redundancy between
# files that per-file deflate hides
python3 tools/dist/store_jars.py "$work/rollout/wlp"

# 3. a Java runtime: the modules Liberty needs, and java.net.http for the Java client (AgentBench, RolloutClient), uncompressed for the same reason
"$jdk/bin/jlink" --add-modules java.base,java.compiler,java.desktop,java.instrument,java.logging,java.management,java.naming,java.net.http,java.rmi,java.security.jgss,java.sql,java.xml,jdk.jfr,jdk.jcmd,jdk.attach,jdk.management,jdk.unsupported,jdk.crypto.ec,jdk.zipfs \
  --strip-debug --no-header-files --no-man-pages --compress=0 --output "$work/rollout/jre"

# 4. the GPU JNI glue (libjnitorch*.so of the presets' linux-x86_64-gpu jar, unpacked by -Pdist),
# the start script, and jemalloc for the server's native heap (start.sh says why): Debian's
# libjemalloc2, the installed one, else its .deb fetched with apt-get download (no root needed)
mkdir -p "$work/rollout/jni-gpu" "$work/rollout/lib"
cp "$deps"/jni-gpu/libjnitorch*.so "$work/rollout/jni-gpu/"
cp tools/dist/start.sh tools/dist/worker.sh tools/dist/env.sh "$work/rollout/" && chmod +x "$work/rollout/start.sh" "$work/rollout/worker.sh"
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [ -f "$jemalloc" ]; then
  jemalloc_from="libjemalloc2 $(dpkg-query -W -f '${Version}' libjemalloc2 2>/dev/null || echo '(version unknown)'), installed"
else
  deb_dir="$work/deb" && mkdir -p "$deb_dir" && chmod 755 "$deb_dir"  # apt's _apt user writes there
  (cd "$deb_dir" && apt-get download libjemalloc2 > apt.log 2>&1) \
    || { cat "$deb_dir/apt.log" >&2; echo "make-dist: needs Debian's libjemalloc2: apt-get install libjemalloc2, or apt-get update so that apt-get download finds it" >&2; exit 1; }
  deb="$(ls "$deb_dir"/libjemalloc2_*.deb)"
  dpkg-deb -x "$deb" "$deb_dir/x"
  jemalloc="$deb_dir/x/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
  jemalloc_from="libjemalloc2 $(dpkg-deb -f "$deb" Version), $(basename "$deb") from apt-get download"
fi
cp "$jemalloc" "$work/rollout/lib/libjemalloc.so.2"

# 5. our native preset as sources: start.sh builds it against the machine's libtorch (cppbuild.sh)
native="$work/rollout/native"
mkdir -p "$native/jni/linux"
cp -r native-presets/include native-presets/src native-presets/third_party native-presets/cppbuild.sh "$native/"
cp "$jdk/include/jni.h" "$native/jni/" && cp "$jdk/include/linux/jni_md.h" "$native/jni/linux/"
# javacpp and the pytorch jar, from the war: RolloutCuda's kernels take the presets' Tensor class,
# and without it on the classpath the Builder leaves them out with a mere warning
javacpp="$(find "$work/war/WEB-INF/lib" -name 'javacpp-*.jar' ! -name '*-linux-*')"
pytorch="$(find "$work/war/WEB-INF/lib" -name 'pytorch-*.jar' ! -name '*-linux-*')"
"$jdk/bin/java" -cp "$javacpp:$pytorch:target/classes" \
  org.bytedeco.javacpp.tools.Builder -nocompile -d "$native/generated" dev.rollout.model.RolloutCuda dev.rollout.dist.NativeC10d >/dev/null
grep -q Java_dev_rollout_model_RolloutCuda_ropeAndCache "$native/generated/jniRolloutCuda.cpp" \
  && grep -q Java_dev_rollout_dist_NativeC10d_glooGroup "$native/generated/jniRolloutCuda.cpp" \
  || { echo "make-dist: JavaCPP generated no JNI code for RolloutCuda's kernels or NativeC10d's groups" >&2; exit 1; }

# 6. where each binary came from, for whoever checks the archive against its public sources
{
  echo "Rollout Server distribution, built $(date -u +%FT%TZ) from commit $(git describe --always --dirty 2>/dev/null || echo unknown)"
  echo "jre/: jlink of the JDK $(sed -n 's/^JAVA_RUNTIME_VERSION=//p' "$jdk/release" | tr -d '"')"
  torch="$(basename "$(ls "$lib"/pytorch-*.jar)" .jar)"  # pytorch-VERSION: the war keeps only the Java classes' jar
  echo "jni-gpu/: from org.bytedeco:pytorch:${torch#pytorch-}:jar:linux-x86_64-gpu (Maven Central)"
  (cd "$work/rollout/jni-gpu" && sha256sum -- *.so)
  echo "lib/libjemalloc.so.2: $jemalloc_from"
  (cd "$work/rollout/lib" && sha256sum libjemalloc.so.2)
} > "$work/rollout/SOURCES.txt"

tar -C "$work" -cf - rollout | xz -9e -T2 > target/rollout-dist.tar.xz
# beside it, for bench/gpu-bench.sh test (carried with target/test-classes when CUDA tests run)
python3 tools/dist/trim_junit.py "$deps"/junit-platform-console-standalone-*.jar target/junit-console.jar
ls -la target/rollout-dist.tar.xz
