#!/usr/bin/env bash
# CPU-machine compile check of native-presets (JNI source + header against Debian's libtorch headers, nvcc on src/*.cu)
#   usage: native-presets/compile-check.sh [WORK]   (default target/jni-check; after ./mvnw compile, the classes the JNI source is generated from)
# About 1.5 minutes the first time (two Debian packages downloaded), seconds after.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"; w="$(realpath -m "${1:-$repo/target/jni-check}")"; N="$repo/native-presets"
jdk="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}"; J="$jdk/include"; M=~/.m2/repository/org/bytedeco
mkdir -p "$w" && cd "$w"
# 1. the JNI source, as make-dist.sh generates it, from the compiled classes
javap -cp "$repo/target/classes" dev.rollout.model.RolloutCuda | grep sampleRows
rm -rf classes generated && cp -r "$repo/target/classes" classes
"$jdk/bin/java" -cp "$M/javacpp/1.5.13/javacpp-1.5.13.jar:$M/pytorch/2.10.0-1.5.13/pytorch-2.10.0-1.5.13.jar:classes" \
  org.bytedeco.javacpp.tools.Builder -nocompile -d "$w/generated" dev.rollout.model.RolloutCuda dev.rollout.dist.NativeC10d >/dev/null
# 2. headers: trixie's libtorch-cuda-dev 2.6 and sid's libtorch-dev 2.14, through a private apt list (system sources untouched)
mkdir -p apt/lists/partial apt/cache/archives/partial deb && chmod -R 777 apt deb
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main contrib\n' trixie sid > apt/sources.list
A=(-o Dir::Etc::SourceList="$w/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$w/apt/lists" -o Dir::Cache="$w/apt/cache" -o Acquire::Languages=none)
[ -n "$(ls deb/*.deb 2>/dev/null)" ] || apt-get "${A[@]}" update >/dev/null
[ -n "$(ls deb/*.deb 2>/dev/null)" ] || (cd deb && apt-get "${A[@]}" download libtorch-cuda-dev=2.6.0+dfsg-7+b1 libtorch-dev=2.14.1+dfsg-1 >/dev/null)
[ -d t26 ] || dpkg-deb -x deb/libtorch-cuda-dev_*.deb t26; [ -d t214 ] || dpkg-deb -x deb/libtorch-dev_2.14*.deb t214
# stubs: at::_grouped_mm (torch >= 2.8) for 2.6; cuda_cmake_macros.h, which 2.14's CPU package lacks
mkdir -p stub26/ATen/ops stub214/c10/cuda/impl
cat > stub26/ATen/ops/_grouped_mm.h <<'H'
#pragma once
#include <ATen/core/Tensor.h>
#include <optional>
namespace at {
at::Tensor _grouped_mm(const at::Tensor& self, const at::Tensor& mat2, const std::optional<at::Tensor>& offs = {},
                       const std::optional<at::Tensor>& bias = {}, std::optional<at::ScalarType> out_dtype = std::nullopt);
}
H
echo '#pragma once' > stub214/c10/cuda/impl/cuda_cmake_macros.h
# 3. g++ as cppbuild.sh compiles (syntax only)
flags=(-fsyntax-only -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO -I"$N/include" -I"$N/third_party" -I"$J" -I"$J/linux")
g++ -std=c++17 "${flags[@]}" -Istub26 -It26/usr/include -It26/usr/include/torch/csrc/api/include -I/usr/local/cuda/include generated/jniRolloutCuda.cpp generated/jnijavacpp.cpp \
  && echo "torch 2.6, C++17: OK"
g++ -std=c++20 "${flags[@]}" -Istub214 -It214/usr/include -It214/usr/include/torch/csrc/api/include -I/usr/local/cuda/include generated/jniRolloutCuda.cpp \
  && echo "torch 2.14, C++20: OK"
# 4. the kernels
for cu in "$N"/src/*.cu; do
  nvcc -arch=sm_90a -O3 -std=c++17 -Xcompiler -fPIC -I"$N/include" -c "$cu" -o "$w/$(basename "$cu" .cu).o" && echo "$(basename "$cu"): OK"
done
