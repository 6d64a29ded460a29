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
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/intrusive/list.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
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

/// An established tunnel that outlives the coroutine which opened it: once
/// the handshake, the decision and the dial are done, the coroutine hands
/// the two sockets and the session's accounting to one plain object and
/// ends, so an idle tunnel keeps no coroutine frame, no co_spawn state and
/// no cancellation state (see docs/architecture.md, "Memory of an open tunnel").
class tunnel_link
    : public boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
 public:
  tunnel_link() = default;
  tunnel_link(const tunnel_link&) = delete;
  tunnel_link& operator=(const tunnel_link&) = delete;
  virtual ~tunnel_link() = default;
  /// Ends the tunnel soon (server shutdown); it accounts and frees itself.
  virtual void cancel() noexcept = 0;
};

/// The open tunnels of one worker (loop thread only). A tunnel frees itself
/// when its relay ends. Before destroying the set (and the io_context), its
/// owner must end them: cancel_all(), then run the loop until the posted
/// completions have run (server::worker's destructor does).
class tunnel_set {
 public:
  /// `on_ended` runs (on the loop) after each tunnel has ended and been freed.
  explicit tunnel_set(std::function<void()> on_ended) : on_ended_(std::move(on_ended)) {}
  ~tunnel_set();
  tunnel_set(const tunnel_set&) = delete;
  tunnel_set& operator=(const tunnel_set&) = delete;

  /// Cancels every tunnel, and from now on every tunnel added: a session
  /// whose last operation completed just before a forced shutdown cancelled
  /// it misses that cancellation and may become a tunnel afterwards.
  void cancel_all() noexcept;

  // For tunnels: register a new one; report that one was freed.
  void add(tunnel_link& t) noexcept {
    tunnels_.push_back(t);
    if (cancelled_) {
      t.cancel();
    }
  }
  void ended() {
    if (on_ended_) {
      on_ended_();
    }
  }

 private:
  boost::intrusive::list<tunnel_link, boost::intrusive::constant_time_size<false>> tunnels_;
  std::function<void()> on_ended_;
  bool cancelled_ = false;
};

/// One session's cancellation and phase deadline (loop thread only). Owned
/// by its worker in a list, it outlives the session's coroutine: the
/// coroutine is spawned bound to slot(), so emitting the signal cancels
/// whatever operation the coroutine awaits, however deeply nested. Server
/// shutdown emits it through cancel(); a phase deadline (handshake,
/// connect) emits it from one timer wait. That replaces an `op || timer`
/// parallel group per phase (two spawned coroutines, their cancellation
/// state and the group's), which profiles showed on every session.
class session_control {
 public:
  using list = std::list<session_control>;

  explicit session_control(const boost::asio::any_io_executor& ex) : timer_(ex) {}
  session_control(const session_control&) = delete;
  session_control& operator=(const session_control&) = delete;

  /// Where it lives; set once by the owner right after creating it.
  void place(list& owner, list::iterator self) noexcept {
    owner_ = &owner;
    self_ = self;
  }
  boost::asio::cancellation_slot slot() noexcept { return signal_.slot(); }
  /// Cancels what the session awaits now (server shutdown). Nothing once
  /// the session has ended.
  void cancel() {
    if (!released_) {
      signal_.emit(boost::asio::cancellation_type::terminal);
    }
  }

  /// Starts a phase: what the session awaits `d` from now is cancelled, and
  /// expired() says so. A new phase replaces the previous one's deadline.
  void expires_after(std::chrono::steady_clock::duration d);
  /// Ends the phase: its deadline no longer applies.
  void disarm() noexcept;
  /// The current (or just ended) phase's deadline passed.
  bool expired() const noexcept { return expired_; }
  /// disarm(), then expired(). After an expiry the coroutine's cancellation
  /// state stays "cancelled"; sessions run with throw_if_cancelled(false),
  /// so that only records it and what follows (a reply saying why) runs.
  bool end_phase() noexcept {
    disarm();
    return expired_;
  }

  /// The session has ended: erases this record from its list now or, when
  /// a timer wait is still queued (its handler refers to the record), as
  /// soon as that wait completes. `*this` may be gone on return.
  void release() noexcept;

 private:
  void on_wait(std::uint32_t phase, boost::system::error_code ec);

  boost::asio::cancellation_signal signal_;
  boost::asio::steady_timer timer_;
  list* owner_ = nullptr;
  list::iterator self_;
  std::uint32_t phase_ = 0;  ///< the timer wait that may still expire the phase
  std::uint32_t waits_ = 0;  ///< timer waits not yet completed
  bool expired_ = false;
  bool released_ = false;
};

/// Long-lived per-worker services a session borrows. Owned by server/ and
/// outliving every session on that worker.
struct worker_services {
  unsigned worker_id = 0;
  upstream::resolver& dns;
  relay::pipe_pool& pipes;
  relay::buffer_pool& buffers;
  relay::idle_sweeper& idle;
  tunnel_set& tunnels;
  obs::worker_metrics& metrics;
  auth::verify_cache& auth_cache;
  shared_services& shared;
  std::vector<std::uint8_t>& udp_buffer;  ///< scratch for one datagram at a time (64 KiB + header)
};

/// Runs a session on the calling worker's loop up to its tunnel. Never throws
/// for network or protocol events; honours cancellation (server shutdown).
/// The coroutine must be spawned bound to `ctl.slot()`; `ctl` outlives it.
/// Returns true when the session went on as a tunnel in `svc.tunnels`
/// (which reports its end), false when it ended here.
/// `peer`: the client's address as accept() returned it.
/// `proxy_protocol`: the listener expects a PROXY header before SOCKS.
boost::asio::awaitable<bool> run(boost::asio::ip::tcp::socket client, boost::asio::ip::tcp::endpoint peer,
                                 std::shared_ptr<const config::snapshot> snap, worker_services& svc,
                                 session_control& ctl, std::uint64_t id,
                                 config::proxy_protocol_mode proxy_protocol);

/// A plain TCP connection on a `port_forward` listener: relayed to the
/// entry's fixed target, through its upstream/chain/pool if any (seeds/004,
/// "PPP → DCS"). The ACL applies to the target as for SOCKS clients.
boost::asio::awaitable<bool> run_forward(boost::asio::ip::tcp::socket client, boost::asio::ip::tcp::endpoint peer,
                                         std::shared_ptr<const config::snapshot> snap, worker_services& svc,
                                         session_control& ctl, std::uint64_t id, std::size_t forward_index);

}  // namespace cs::session
