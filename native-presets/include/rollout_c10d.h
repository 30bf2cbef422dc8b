// The c10d objects of a gloo group (its rendezvous store, its key prefixes, the process group and
// its pending collectives), made and used here, compiled against the node's libtorch, for
// dev.rollout.dist.NativeC10d. The presets' JNI glue was compiled against another libtorch: a
// c10d class that it allocates (make_intrusive with its sizeof) or whose fields it writes (the
// gloo options' device list) has another layout in the node's library, and the server crashed
// there (ADR 0025). Java holds each object as an opaque handle and releases it once.
#pragma once
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace rollout {
namespace c10d {

namespace detail {
// A handle is a heap box of one intrusive_ptr; its kind is checked on every use, so that a store
// passed where a group is expected throws instead of being misread.
struct Handle {
    virtual ~Handle() = default;
};
template <typename T>
struct Held final : Handle {
    explicit Held(c10::intrusive_ptr<T> p) : ptr(std::move(p)) {}
    c10::intrusive_ptr<T> ptr;
};
template <typename T>
long long box(c10::intrusive_ptr<T> p) {
    return reinterpret_cast<long long>(static_cast<Handle*>(new Held<T>(std::move(p))));
}
// A new reference, so that the object outlives this call even if its handle is released meanwhile.
template <typename T>
c10::intrusive_ptr<T> unbox(long long handle, const char* kind) {
    auto* held = handle == 0 ? nullptr : dynamic_cast<Held<T>*>(reinterpret_cast<Handle*>(handle));
    if (held == nullptr) throw std::invalid_argument(std::string("not a handle of a ") + kind);
    return held->ptr;
}
inline std::chrono::milliseconds millis(long long ms) {
    if (ms < 1) throw std::invalid_argument("a c10d deadline must be at least 1 ms");
    return std::chrono::milliseconds(ms);
}
}  // namespace detail

// torch's rendezvous store at host:port, hosted by rank 0 (isServer) and joined by the others, with
// the options init_process_group uses: every rank counts itself in and the host waits for all.
inline long long tcpStore(const std::string& host, int port, bool isServer, int world, long long timeoutMs) {
    if (port < 1 || port > 65535) throw std::invalid_argument("port " + std::to_string(port) + " is not a TCP port");
    ::c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = isServer;
    o.numWorkers = static_cast<std::size_t>(world);
    o.waitWorkers = true;
    o.timeout = detail::millis(timeoutMs);
    return detail::box<::c10d::Store>(c10::make_intrusive<::c10d::TCPStore>(host, o));
}

// The keys of `store` under `prefix` + "/", as torch's PrefixStore names them.
inline long long prefixStore(long long store, const std::string& prefix) {
    return detail::box<::c10d::Store>(
            c10::make_intrusive<::c10d::PrefixStore>(prefix, detail::unbox<::c10d::Store>(store, "store")));
}

// A gloo group of `size` ranks over `store`; returns once every rank has connected. Its device:
// one per interface of `ifnames` (comma-separated, GLOO_SOCKET_IFNAME's form) if any, else the
// address of `hostname` if given, else gloo's default (this host's name, or loopback).
inline long long glooGroup(long long store, int rank, int size, const std::string& ifnames, const std::string& hostname,
                           long long timeoutMs) {
    auto options = ::c10d::ProcessGroupGloo::Options::create(detail::millis(timeoutMs));
    for (size_t from = 0; from < ifnames.size();) {
        size_t comma = ifnames.find(',', from);
        if (comma == std::string::npos) comma = ifnames.size();
        if (comma > from) options->devices.push_back(::c10d::ProcessGroupGloo::createDeviceForInterface(ifnames.substr(from, comma - from)));
        from = comma + 1;
    }
    if (options->devices.empty())
        options->devices.push_back(hostname.empty() ? ::c10d::ProcessGroupGloo::createDefaultDevice()
                                                    : ::c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
    return detail::box<::c10d::Backend>(c10::make_intrusive<::c10d::ProcessGroupGloo>(
            detail::unbox<::c10d::Store>(store, "store"), rank, size, options));
}

// The collectives: each issues one and returns its pending work, to await and release.
inline long long broadcast(long long group, const at::Tensor& t, int root, long long timeoutMs) {
    ::c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = detail::millis(timeoutMs);
    std::vector<at::Tensor> tensors{t};
    return detail::box<::c10d::Work>(detail::unbox<::c10d::Backend>(group, "group")->broadcast(tensors, o));
}

inline long long allReduceSum(long long group, const at::Tensor& t, long long timeoutMs) {
    ::c10d::AllreduceOptions o;
    o.reduceOp = ::c10d::ReduceOp::SUM;
    o.timeout = detail::millis(timeoutMs);
    std::vector<at::Tensor> tensors{t};
    return detail::box<::c10d::Work>(detail::unbox<::c10d::Backend>(group, "group")->allreduce(tensors, o));
}

// Every rank's `in` (one shape everywhere), concatenated along dim 0 into `out`.
inline long long allGather(long long group, const at::Tensor& out, const at::Tensor& in, long long timeoutMs) {
    ::c10d::AllgatherOptions o;
    o.timeout = detail::millis(timeoutMs);
    at::Tensor output = out, input = in;
    return detail::box<::c10d::Work>(detail::unbox<::c10d::Backend>(group, "group")->_allgather_base(output, input, o));
}

// True once the work completed; false, or c10d's exception, when the deadline passed first.
inline bool await(long long work, long long timeoutMs) {
    return detail::unbox<::c10d::Work>(work, "pending collective")->wait(detail::millis(timeoutMs));
}

// Lets a handle's object go (its last reference frees it); 0 is ignored.
inline void release(long long handle) {
    delete reinterpret_cast<detail::Handle*>(handle);
}

}  // namespace c10d
}  // namespace rollout
