#!/usr/bin/env bash
# Builds libjniRolloutCuda.so, the JNI library of dev.rollout.model.RolloutCuda, against the
# libtorch and CUDA of the machine's PyTorch (`python3 -c "import torch"`): libtorch's C++ ABI
# changes between versions, so the library is built where it runs, once per torch version, as
# torch's own C++ extensions are. Takes a few seconds.
#   usage: cppbuild.sh GENERATED_DIR JNI_INCLUDE_DIR OUT_DIR
#   GENERATED_DIR: jniRolloutCuda.cpp and jnijavacpp.cpp from JavaCPP's Builder (-nocompile)
#   JNI_INCLUDE_DIR: holds jni.h and linux/jni_md.h (or jni_md.h)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
gen="$1" jni="$2" out="$3"
read -r torch_lib torch_inc < <(python3 -c 'import torch, os; d = os.path.dirname(torch.__file__); print(os.path.join(d, "lib"), os.path.join(d, "include"))')
# CUDA's headers: the toolkit's, or those of the nvidia-* wheels that came with torch
cuda_inc=()
for d in /usr/local/cuda/include "$(dirname "$(dirname "$torch_lib")")"/nvidia/*/include "$(dirname "$(dirname "$torch_lib")")"/nvidia/cu*/include; do
  [ -f "$d/cuda_runtime_api.h" ] && cuda_inc+=("-I$d")
done
[ ${#cuda_inc[@]} -gt 0 ] || { echo "cppbuild: no cuda_runtime_api.h found" >&2; exit 1; }
mkdir -p "$out"
${CXX:-g++} -O2 -shared -fPIC -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 \
  -I"$here/include" -I"$jni" -I"$jni/linux" -I"$torch_inc" "${cuda_inc[@]}" \
  "$gen/jniRolloutCuda.cpp" "$gen/jnijavacpp.cpp" \
  -L"$torch_lib" -lc10_cuda -lc10 -Wl,-rpath,"$torch_lib" -o "$out/libjniRolloutCuda.so.tmp"
mv "$out/libjniRolloutCuda.so.tmp" "$out/libjniRolloutCuda.so"
echo "cppbuild: built $out/libjniRolloutCuda.so against $torch_lib"
