#!/usr/bin/env bash
# Run HERE (the CPU machine) after `./mvnw test-compile`: packs what the GPU machine needs to run
# the engine tests on CUDA into .device/ (ignored by git; name it in the device tool's `carry`).
# The GPU machine has no Java and no network, but its own libtorch and CUDA libraries (its
# PyTorch): we bring a small JRE, the Java jars and the presets' GPU JNI glue (from Maven Central,
# the dist profile's unpack, as for the distribution; docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
jdk="${DIST_JDK:-/usr/lib/jvm/java-17-openjdk-amd64}"
out=.device
mkdir -p "$out/lib"
if [ ! -s "$out/jre.tar.xz" ]; then  # the modules a plain JavaCPP program and the engine tests use
  tmp="$(mktemp -d)"
  "$jdk/bin/jlink" --add-modules java.base,jdk.unsupported,java.logging,java.management,java.naming,java.sql \
    --strip-debug --no-header-files --no-man-pages --compress=2 --output "$tmp/jre"
  tar -C "$tmp" -cf - jre | xz -6 -T2 > "$out/jre.tar.xz" && rm -rf "$tmp"
fi
# the GPU JNI glue (libjnitorch*.so), compressed: 31 MB as files, 5 MB as xz
./mvnw -q -B -Pdist dependency:unpack@dist-gpu-jni
tar -C target/dist-deps/jni-gpu -cf - . | xz -6 -T2 > "$out/jni-gpu.tar.xz"
# runtime jars without the CPU libtorch natives (the machine's own libtorch is used instead)
./mvnw -q -B dependency:copy-dependencies -DincludeScope=test -DexcludeClassifiers=linux-x86_64 -DoutputDirectory="$out/lib"
# the engine tests need neither the tokenizer (DJL and its dependencies), nor the chat templates
# (Jinjava and its dependencies: 10 MB, which took .device past the 64 MiB a call carries), nor the Jakarta APIs
rm -f "$out"/lib/{tokenizers,api,commons,jna,slf4j,parsson,microprofile}-* "$out"/lib/jakarta.* "$out"/lib/error_prone*
rm -f "$out"/lib/{jinjava,guava,failureaccess,listenablefuture,jsr305,checker-qual,j2objc-annotations,javassist,re2j}-* \
      "$out"/lib/{java-ipv6,annotations,jackson-annotations,jackson-databind,jackson-dataformat-yaml,snakeyaml}-* \
      "$out"/lib/{jackson-datatype-jdk8,big-math,immutables-exceptions,algebra,hubspot-style,immutable-collection-encodings}-* \
      "$out"/lib/{encode,derive4j-annotation}-*
for a in org.bytedeco:openblas:0.3.31-1.5.13:jar:linux-x86_64 org.bytedeco:cuda:13.1-9.19-1.5.13 \
         org.bytedeco:cuda:13.1-9.19-1.5.13:jar:linux-x86_64 org.bytedeco:javacpp:1.5.13:jar:linux-x86_64 \
         org.junit.platform:junit-platform-console-standalone:1.11.4; do
  ./mvnw -q -B dependency:copy -Dartifact="$a" -DoutputDirectory="$out/lib"
done
# the console launcher brings JUnit itself
rm -f "$out"/lib/junit-jupiter*.jar "$out"/lib/junit-platform-commons*.jar "$out"/lib/junit-platform-engine*.jar \
      "$out"/lib/opentest4j*.jar "$out"/lib/apiguardian*.jar
# our classes and test classes, without the 11 MB tokenizer the GPU tests do not need
rm -rf "$out/classes" "$out/test-classes"
cp -r target/classes "$out/classes"; rm -rf "$out/classes/dev/rollout/tokenizer"
cp -r target/test-classes "$out/test-classes"
# nor the ITs (it/) and the agent tests' tool-calling model (agent/, 1.6 MB)
rm -rf "$out/test-classes/it" "$out/test-classes/agent"
du -sh "$out"
