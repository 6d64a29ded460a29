#pragma once
// One event loop thread: its own io_context, its own listening sockets
// (SO_REUSEPORT), its own resolver, relay pools and metrics shard. A session
// lives and dies on the worker that accepted it, so the data path takes no
// lock.

#include "config/settings.hpp"
#include "obs/metrics.hpp"
#include "relay/pools.hpp"
#include "session/session.hpp"
#include "upstream/resolver.hpp"

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <thread>
#include <vector>

namespace cs::server {

using tcp = boost::asio::ip::tcp;

/// Sets TCP_NODELAY on a listening socket. Returns true when the sockets it
/// accepts inherit the option (Linux copies it to each accepted socket), so
/// the accept loop need not set it on each one; false elsewhere, or when the
/// listener refused it.
bool nodelay_inherited_from(tcp::acceptor& acceptor) noexcept;

/// Runs `io` like io_context::run(), but after the last handler it polls
/// (epoll_wait with no timeout) for up to `window` before it blocks: an event
/// that arrives meanwhile is handled without the wake-up of a sleeping thread.
/// Returns when `io` is stopped or runs out of work. `window` 0 is run().
void run_loop(boost::asio::io_context& io, std::chrono::microseconds window);

class worker {
 public:
  /// `on_drained` is called (from this worker's thread) when the worker is
  /// draining and its last session has ended.
  worker(unsigned id, std::shared_ptr<const config::snapshot> snap, session::shared_services& shared,
         std::function<void()> on_drained);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Opens, binds and listens on `l.endpoint` in this worker's loop. Throws
  /// boost::system::system_error (start-up only). Returns the bound endpoint.
  tcp::endpoint listen(const config::listener_settings& l, int backlog);
  /// Listens for plain TCP connections relayed by port_forward entry `index`.
  tcp::endpoint listen_forward(const tcp::endpoint& ep, std::size_t index, int backlog);
  /// Accepts on an already listening socket (socket activation); takes a
  /// duplicate of `fd`.
  tcp::endpoint adopt(int fd, config::proxy_protocol_mode pp);

  /// New sessions use `snap` from now on; running ones keep theirs.
  void set_snapshot(std::shared_ptr<const config::snapshot> snap);

  void start();             ///< starts the thread and the accept loops
  void drain();             ///< stop accepting; sessions continue (thread-safe)
  void cancel_sessions();   ///< ends every session now (thread-safe)
  void stop();              ///< stops the loop (thread-safe); then join()
  void join();

  std::size_t active_sessions() const noexcept { return active_.load(std::memory_order_relaxed); }
  const obs::worker_metrics& metrics() const noexcept { return metrics_; }
  const relay::pipe_pool& pipes() const noexcept { return pipes_; }
  const upstream::resolver_stats& dns_stats() const noexcept { return dns_->stats(); }

 private:
  struct listener {
    tcp::acceptor acceptor;
    config::proxy_protocol_mode proxy_protocol;
    std::size_t forward = SIZE_MAX;  ///< port_forward index, or SIZE_MAX for SOCKS
    bool nodelay_inherited = false;  ///< accepted sockets already have TCP_NODELAY
  };
  tcp::endpoint bind_listener(std::unique_ptr<listener> li, const tcp::endpoint& ep, int backlog);
  boost::asio::awaitable<void> accept_loop(listener& l);
  void spawn_session(tcp::socket sock, const tcp::endpoint& peer, const listener& l);
  void session_ended(session::session_control::list::iterator it, bool handed_off);
  void finished();  ///< a session (coroutine or tunnel) is over

  const unsigned id_;
  std::function<void()> on_drained_;
  std::shared_ptr<const config::snapshot> snap_;
  // Declared before io_ so they outlive it: session frames destroyed with
  // the io_context may still return pipes and buffers.
  obs::worker_metrics metrics_;
  relay::pipe_pool pipes_;
  relay::buffer_pool buffers_;
  boost::asio::io_context io_{1};
  // After io_ (its timer needs the loop); relays that outlive it find their
  // hooks unlinked by the list's destructor.
  relay::idle_sweeper idle_{io_.get_executor()};
  // Sessions past their handshake (declared after io_ and idle_: tunnels
  // still open at destruction close their sockets on a live loop).
  session::tunnel_set tunnels_{[this] { finished(); }};
  std::unique_ptr<upstream::resolver> dns_;
  auth::verify_cache auth_cache_;
  std::vector<std::uint8_t> udp_buffer_ = std::vector<std::uint8_t>(65536 + 512);
  session::worker_services services_;
  std::vector<std::unique_ptr<listener>> listeners_;
  session::session_control::list sessions_;  // one per session coroutine (and briefly after)
  std::atomic<std::size_t> active_{0};
  bool draining_ = false;  // loop thread only
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

}  // namespace cs::server
