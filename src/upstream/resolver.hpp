#pragma once
// Asynchronous DNS for one event loop: c-ares driven by the loop's reactor,
// with a TTL cache and coalescing of concurrent lookups of the same name.
//
// Thread-safety: a resolver belongs to one io_context (one worker thread) and
// must only be used from it. Nothing here ever blocks the loop: no
// getaddrinfo(), no file I/O after construction (c-ares reads resolv.conf and
// /etc/hosts when the channel is created; /etc/hosts again per lookup, which
// is a small local file read, as every libc resolver does).

#include "core/address.hpp"
#include "core/error.hpp"
#include "obs/metrics.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cs::upstream {

using address_list = std::vector<core::ip::address>;
using resolve_signature = void(core::error_code, address_list);

struct resolver_options {
  /// Name servers; empty means the system's (/etc/resolv.conf).
  std::vector<core::ip::udp::endpoint> servers;
  std::chrono::milliseconds query_timeout{2000};
  int tries = 2;
  std::size_t cache_capacity = 4096;
  std::chrono::seconds min_ttl{1};
  std::chrono::seconds max_ttl{300};
  std::chrono::seconds negative_ttl{5};
};

/// Written by the resolver's thread only; readable from any thread.
struct resolver_stats {
  obs::counter lookups;     ///< names asked of c-ares
  obs::counter cache_hits;  ///< answered from the cache (positive or negative)
  obs::counter coalesced;   ///< joined a lookup already in flight
  obs::counter failures;
};

class resolver {
 public:
  using executor_type = boost::asio::io_context::executor_type;

  /// Throws std::runtime_error if c-ares cannot be initialised (start-up only).
  resolver(executor_type ex, const resolver_options& options);
  ~resolver();
  resolver(const resolver&) = delete;
  resolver& operator=(const resolver&) = delete;

  /// Cached answer for `name` if fresh: addresses, or an error for a cached
  /// negative answer. nullopt on a miss. Never blocks, never allocates on a hit
  /// beyond copying the list.
  std::optional<std::pair<core::error_code, address_list>> cached(std::string_view name);

  /// Resolves `name` (A and AAAA). Completes with host_not_found, dns_failure
  /// or operation_aborted (on per-operation cancellation) as the error.
  /// Handlers are never invoked from inside this call.
  template <typename Token>
  auto async_resolve(std::string_view name, Token&& token) {
    return boost::asio::async_initiate<Token, resolve_signature>(
        [this](auto handler, std::string n) {
          start(std::move(n), boost::asio::any_completion_handler<resolve_signature>(std::move(handler)));
        },
        token, std::string(name));
  }

  const resolver_stats& stats() const noexcept { return stats_; }
  executor_type get_executor() const noexcept;

 private:
  struct impl;
  void start(std::string name, boost::asio::any_completion_handler<resolve_signature> handler);

  std::unique_ptr<impl> impl_;
  resolver_stats stats_;
};

/// Process-wide c-ares initialisation; call once before creating resolvers.
void init_dns_library();

}  // namespace cs::upstream
