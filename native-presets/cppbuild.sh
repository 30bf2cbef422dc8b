#!/usr/bin/env bash
# Builds libjniRolloutCuda.so, the JNI library of dev.rollout.model.RolloutCuda and
# dev.rollout.dist.NativeC10d, against the libtorch and CUDA of the machine's PyTorch
# (`python3 -c "import torch"`): libtorch's C++ ABI
# changes between versions, so the library is built where it runs, once per torch version, as
# torch's own C++ extensions are (ADR 0007). Our kernels (src/*.cu) are built by nvcc for the
# GPU that is there (ROLLOUT_CUDA_ARCH, default native). About 30 seconds.
#   usage: cppbuild.sh GENERATED_DIR JNI_INCLUDE_DIR OUT_DIR
#   GENERATED_DIR: jniRolloutCuda.cpp and jnijavacpp.cpp from JavaCPP's Builder (-nocompile)
#   JNI_INCLUDE_DIR: holds jni.h and linux/jni_md.h
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
gen="$1" jni="$2" out="$3"
read -r torch_lib torch_inc < <(python3 -c 'import torch, os; d = os.path.dirname(torch.__file__); print(os.path.join(d, "lib"), os.path.join(d, "include"))')
site="$(dirname "$(dirname "$torch_lib")")"
# CUDA's headers and runtime: the toolkit's, or those of the nvidia-* wheels that came with torch
cuda_inc=() cudart=""
for d in /usr/local/cuda/include "$site"/nvidia/*/include; do
  [ -f "$d/cuda_runtime_api.h" ] && cuda_inc+=("-I$d")
done
for f in /usr/local/cuda/lib64/libcudart.so "$site"/nvidia/*/lib/libcudart.so.*; do
  [ -f "$f" ] && { cudart="$f"; break; }
done
[ ${#cuda_inc[@]} -gt 0 ] && [ -n "$cudart" ] || { echo "cppbuild: no CUDA runtime headers or library found" >&2; exit 1; }
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
obj="$(mktemp -d)"
trap 'rm -rf "$obj"' EXIT
for cu in "$here"/src/*.cu; do
  "$nvcc" -O3 -std=c++17 -arch="${ROLLOUT_CUDA_ARCH:-native}" -Xcompiler -fPIC -I"$here/include" "${cuda_inc[@]}" \
    -c "$cu" -o "$obj/$(basename "$cu" .cu).o"
done
mkdir -p "$out"
# gloo's headers are ours (third_party/): torch's wheels ship c10d's but not gloo's (ADR 0025)
${CXX:-g++} -O2 -shared -fPIC -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO \
  -I"$here/include" -I"$here/third_party" -I"$jni" -I"$jni/linux" -I"$torch_inc" -I"$torch_inc/torch/csrc/api/include" "${cuda_inc[@]}" \
  "$gen/jniRolloutCuda.cpp" "$gen/jnijavacpp.cpp" "$obj"/*.o \
  -L"$torch_lib" -ltorch_cuda -ltorch_cpu -lc10_cuda -lc10 "$cudart" -Wl,-rpath,"$torch_lib" -Wl,-rpath,"$(dirname "$cudart")" \
  -o "$out/libjniRolloutCuda.so.tmp"
mv "$out/libjniRolloutCuda.so.tmp" "$out/libjniRolloutCuda.so"
echo "cppbuild: built $out/libjniRolloutCuda.so against $torch_lib"
