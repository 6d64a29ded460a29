#pragma once
// One client connection, start to finish:
//
//   handshake → decide → dial → reply → relay → account
//
// Each step takes a value and returns one; the steps live in their own
// modules (protocol/, auth/, policy/, routing/, upstream/, relay/, obs/) and
// only this coroutine strings them together.

#include "auth/verify_cache.hpp"
#include "config/settings.hpp"
#include "obs/metrics.hpp"
#include "policy/limits.hpp"
#include "relay/pools.hpp"
#include "relay/tcp_relay.hpp"
#include "upstream/resolver.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace cs::session {

/// Process-wide services shared by every worker (thread-safe).
struct shared_services {
  policy::limits limits;
  /// Runs argon2 verifications off the event loops.
  boost::asio::thread_pool hash_pool{2};
  std::atomic<int> hashing{0};  ///< verifications queued or running
  static constexpr int max_hashing = 64;
};

/// Long-lived per-worker services a session borrows. Owned by server/ and
/// outliving every session on that worker.
struct worker_services {
  unsigned worker_id = 0;
  upstream::resolver& dns;
  relay::pipe_pool& pipes;
  relay::buffer_pool& buffers;
  relay::idle_sweeper& idle;
  obs::worker_metrics& metrics;
  auth::verify_cache& auth_cache;
  shared_services& shared;
  std::vector<std::uint8_t>& udp_buffer;  ///< scratch for one datagram at a time (64 KiB + header)
};

/// Runs a session to completion on the calling worker's loop. Never throws
/// for network or protocol events; honours cancellation (server shutdown).
/// `proxy_protocol`: the listener expects a PROXY header before SOCKS.
boost::asio::awaitable<void> run(boost::asio::ip::tcp::socket client,
                                 std::shared_ptr<const config::snapshot> snap, worker_services& svc,
                                 std::uint64_t id, config::proxy_protocol_mode proxy_protocol);

/// A plain TCP connection on a `port_forward` listener: relayed to the
/// entry's fixed target, through its upstream/chain/pool if any (seeds/004,
/// "PPP → DCS"). The ACL applies to the target as for SOCKS clients.
boost::asio::awaitable<void> run_forward(boost::asio::ip::tcp::socket client,
                                         std::shared_ptr<const config::snapshot> snap, worker_services& svc,
                                         std::uint64_t id, std::size_t forward_index);

}  // namespace cs::session
