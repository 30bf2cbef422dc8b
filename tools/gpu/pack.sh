#!/usr/bin/env bash
# Run HERE (the CPU machine) after `./mvnw test-compile`: packs what the GPU machine needs to run
# the engine tests on CUDA into .device/ (ignored by git; name it in the device tool's `carry`).
# The GPU machine has no Java and no network, but its own libtorch and CUDA libraries
# (../shared/device/README.md): we bring a small JRE, the Java jars and the GPU JNI glue.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared="${SHARED:-../shared/device}"
out=.device
mkdir -p "$out/lib"
[ -s "$out/jre.tar.xz" ] || bash "$shared/make-jre.sh" "$out/jre.tar.xz" java.base,jdk.unsupported,java.logging,java.management,java.naming,java.sql
cp "$shared/torch-env.sh" "$shared"/pytorch-*-gpu-jni.tar.xz "$out/"
# runtime jars without the CPU libtorch natives (the machine's own libtorch is used instead)
./mvnw -q -B dependency:copy-dependencies -DincludeScope=test -DexcludeClassifiers=linux-x86_64 -DoutputDirectory="$out/lib"
# the engine tests need neither the tokenizer (DJL and its dependencies) nor the Jakarta APIs
rm -f "$out"/lib/{tokenizers,api,commons,jna,slf4j,parsson,microprofile}-* "$out"/lib/jakarta.* "$out"/lib/error_prone*
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
du -sh "$out"
