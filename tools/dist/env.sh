# Sourced by start.sh (and by bench/gpu-bench.sh): points the distribution's Java at the machine's
# PyTorch (python3 -c "import torch") for libtorch, CUDA and cuBLAS, builds our native preset
# against it once per torch version, and exports JAVA_HOME and JVM_ARGS. Needs $here, the
# unpacked distribution's directory.
torch_lib="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || {
  echo "env: $(command -v python3 || echo python3) cannot import torch; activate the Python environment that has PyTorch 2.11 for CUDA 13 (docs/gpu.md)" >&2
  exit 1
}
nv="$(dirname "$(dirname "$torch_lib")")/nvidia"
libs="$torch_lib:$here/jni-gpu"
for d in "$nv"/*/lib; do libs="$libs:$d"; done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# libtorch_cuda registers the CUDA kernels; the JNI glue does not link it by itself
export LD_PRELOAD="$torch_lib/libtorch_cuda.so:$torch_lib/libc10_cuda.so${LD_PRELOAD:+:$LD_PRELOAD}"
# our native preset, built once per torch version and sources against that torch (a few seconds;
# needs g++): a library built from another distribution's sources lacks the classes this one binds
sources="$(cat "$here"/native/generated/*.cpp "$here"/native/include/*.h | sha256sum | cut -c1-12)"
native="$here/native/lib-$(python3 -c 'import torch; print(torch.__version__)')-$sources"
if [ ! -f "$native/libjniRolloutCuda.so" ] && command -v "${CXX:-g++}" >/dev/null; then
  "$here/native/cppbuild.sh" "$here/native/generated" "$here/native/jni" "$native" >&2 \
    || echo "env: could not build the native preset; going on without it" >&2
fi
export JAVA_HOME="$here/jre"
export JVM_ARGS="-Djava.library.path=$here/jni-gpu:$native -Dorg.bytedeco.javacpp.pathsFirst=true ${JVM_ARGS:-}"
# jemalloc, where the bundled copy loads on this machine (ROLLOUT_JEMALLOC=false for glibc's malloc),
# for the server and its workers (start.sh, worker.sh). Under hundreds of HTTP threads glibc's arenas
# fragment: in the GPU soak the server's main heap grew by 3.5 GB that neither a full GC nor
# malloc_trim gave back, while jemalloc's heap profile of the same load shows flat live memory
# (docs/benchmarks.md, weight-update soak).
preload_jemalloc() {
  local jemalloc="$here/lib/libjemalloc.so.2"
  if [ "${ROLLOUT_JEMALLOC:-true}" = true ] && [ -f "$jemalloc" ] && LD_PRELOAD="$jemalloc" /bin/true 2>/dev/null; then
    export LD_PRELOAD="$jemalloc:$LD_PRELOAD"
  fi
}
