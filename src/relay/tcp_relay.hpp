#pragma once
// The TCP relay: moves bytes both ways between two connected sockets until
// both directions have ended, the tunnel has been idle too long, an error
// occurs, or the operation is cancelled.
//
// - Half-close: EOF from one side becomes shutdown(SHUT_WR) on the other,
//   while the other direction keeps flowing.
// - An error on either side ends both directions.
// - Linux: splice(2) through a pipe borrowed from the thread's pool only
//   while bytes are in flight (zero-copy). Otherwise, or in `copy` mode, a
//   pooled buffer, likewise held only while bytes are in flight. An idle
//   tunnel holds neither: it waits for readiness, not for data.
// - `adaptive` mode (the default) copies a direction's reads through the
//   buffer until one fills it, then splices: small messages cost less
//   copied (recv/send) than spliced, bulk transfers are zero-copy.
// - Each readiness event moves at most `burst` chunks before yielding to
//   the loop, so one fast tunnel cannot starve others on the same thread.
//
// Thread-safety: a relay and both sockets belong to one io_context thread.

#include "core/error.hpp"
#include "relay/pools.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace cs::relay {

using tcp = boost::asio::ip::tcp;

enum class relay_mode : std::uint8_t {
  adaptive,  ///< copy until a read fills the buffer (bulk), then splice (Linux)
  splice,    ///< always splice (Linux)
  copy,      ///< always recv/send through a pooled buffer
};

struct relay_options {
  relay_mode mode = relay_mode::adaptive;
  std::size_t chunk = 64 * 1024;  ///< copied reads: buffer per direction in flight (bytes per recv)
  /// spliced reads: a pipe that a transfer fills grows to this many bytes,
  /// so bulk moves in fewer, larger splices (a 64 B session in splice mode
  /// keeps the kernel's default pipe; in adaptive mode it takes none).
  /// Best effort: pipe-max-size and pipe-user-pages-soft may refuse, and
  /// the pipe keeps its size.
  std::size_t pipe_size = 256 * 1024;
  /// A direction that fills a read (a bulk transfer) sets TCP_NOTSENT_LOWAT
  /// to this on the socket it writes to: the kernel then queues at most
  /// about this many not-yet-sent bytes there (it still lets the congestion
  /// window's worth be in flight), so a bulk tunnel waits in the sender's
  /// window instead of in megabytes of the proxy's send buffer. 0 = leave
  /// the kernel's setting (net.ipv4.tcp_notsent_lowat).
  std::size_t notsent_lowat = 128 * 1024;
  int burst = 16;                 ///< chunks per readiness event before yielding
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};  ///< 0 = none
};

enum class end_reason : std::uint8_t {
  closed,        ///< both sides finished sending (normal end)
  idle_timeout,  ///< no byte moved for idle_timeout
  error,         ///< a socket error on either side (see ec)
  cancelled,     ///< the operation was cancelled (e.g. shutdown deadline)
};

struct relay_result {
  std::uint64_t bytes_up = 0;    ///< client → target
  std::uint64_t bytes_down = 0;  ///< target → client
  end_reason reason = end_reason::closed;
  core::error_code ec;
};

using relay_signature = void(relay_result);

class tcp_relay;

/// Room for the one asynchronous operation a relay direction has pending at
/// a time (its readiness wait), so a running relay allocates nothing: asio
/// allocates each operation through the handler's associated allocator.
/// An operation larger than the room, or a second one while the room is in
/// use, falls back to the heap.
class op_storage {
 public:
  static constexpr std::size_t capacity = 224;  // a reactive wait op with this handler: 208 B (Boost 1.81, x86-64)

  op_storage() = default;
  op_storage(const op_storage&) = delete;
  op_storage& operator=(const op_storage&) = delete;

  void* allocate(std::size_t n) {
    if (!used_ && n <= capacity) {
      used_ = true;
      return room_;
    }
    ++heap_fallbacks_;
    return ::operator new(n);
  }
  void deallocate(void* p) noexcept {
    if (p == static_cast<void*>(room_)) {
      used_ = false;
    } else {
      ::operator delete(p);
    }
  }
  /// Operations that did not fit (tests check the steady state has none).
  std::uint64_t heap_fallbacks() const noexcept { return heap_fallbacks_; }

 private:
  alignas(std::max_align_t) unsigned char room_[capacity];
  bool used_ = false;
  std::uint64_t heap_fallbacks_ = 0;
};

/// The allocator handed to asio with a direction's handlers.
template <typename T>
class op_allocator {
 public:
  using value_type = T;
  explicit op_allocator(op_storage& s) noexcept : s_(&s) {}
  template <typename U>
  op_allocator(const op_allocator<U>& o) noexcept : s_(o.storage()) {}  // NOLINT: rebinding is implicit
  T* allocate(std::size_t n) { return static_cast<T*>(s_->allocate(sizeof(T) * n)); }
  void deallocate(T* p, std::size_t) noexcept { s_->deallocate(p); }
  op_storage* storage() const noexcept { return s_; }
  friend bool operator==(const op_allocator& a, const op_allocator& b) noexcept { return a.s_ == b.s_; }

 private:
  op_storage* s_;
};

/// The link a relay is watched by (a base of tcp_relay; it unlinks itself
/// when the relay is destroyed).
struct idle_link
    : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {};

/// Idle timeouts for all the relays of one event loop: one timer that
/// sweeps the loop's open tunnels, instead of a timer (and a pending timer
/// operation) per tunnel. A tunnel is ended between `idle_timeout` and
/// `idle_timeout` + one tick after its last byte; the tick is a quarter of
/// the shortest timeout in use, at most one second.
class idle_sweeper {
 public:
  explicit idle_sweeper(const boost::asio::any_io_executor& ex) : timer_(ex) {}
  idle_sweeper(const idle_sweeper&) = delete;
  idle_sweeper& operator=(const idle_sweeper&) = delete;

  std::size_t watched() const noexcept { return relays_.size(); }
  /// Timer waits that did not fit timer_op_ (one while a replaced wait
  /// still completes; none in a steady state).
  std::uint64_t heap_fallbacks() const noexcept { return timer_op_.heap_fallbacks(); }

 private:
  friend class tcp_relay;
  void watch(tcp_relay& r, std::chrono::milliseconds timeout);
  void arm();
  void sweep();

  // constant_time_size<false>: required by auto-unlink hooks (a relay
  // leaves the list by itself when it ends or is destroyed).
  boost::intrusive::list<idle_link, boost::intrusive::constant_time_size<false>> relays_;
  boost::asio::steady_timer timer_;
  // Room for the pending timer wait, which is re-armed every tick for as
  // long as a relay is watched: Asio's per-thread cache of operation blocks
  // missed it now and then (it keeps two, of whatever sizes came last).
  op_storage timer_op_;
  std::chrono::milliseconds tick_{1000};
  bool armed_ = false;
};

class tcp_relay : public idle_link {
 public:
  /// Both sockets must be open and connected; they are left open at the end
  /// (the caller closes them). The pools and the sweeper must outlive the
  /// relay's operation.
  tcp_relay(tcp::socket& client, tcp::socket& target, const relay_options& options, pipe_pool& pipes,
            buffer_pool& buffers, idle_sweeper& idle) noexcept;
  ~tcp_relay();
  tcp_relay(const tcp_relay&) = delete;
  tcp_relay& operator=(const tcp_relay&) = delete;

  /// Runs the relay; completes once, when nothing is pending any more.
  /// Supports per-operation cancellation (any type ends the relay).
  template <typename Token>
  auto async_run(Token&& token) {
    return boost::asio::async_initiate<Token, relay_signature>(
        [this](auto handler) {
          start(boost::asio::any_completion_handler<relay_signature>(std::move(handler)));
        },
        token);
  }

  /// Ends a running relay as if its operation had been cancelled
  /// (end_reason::cancelled); the completion is delivered as usual. No-op
  /// once it is ending.
  void cancel() noexcept { stop(end_reason::cancelled, boost::asio::error::operation_aborted); }

  /// Bytes moved so far (readable while running, e.g. for periodic metrics).
  std::uint64_t bytes_up() const noexcept { return dirs_[0].bytes; }
  std::uint64_t bytes_down() const noexcept { return dirs_[1].bytes; }
  /// Waits that did not fit the per-direction operation storage.
  std::uint64_t heap_fallbacks() const noexcept {
    return dirs_[0].op.heap_fallbacks() + dirs_[1].op.heap_fallbacks();
  }

 private:
  struct direction {
    tcp::socket* from = nullptr;
    tcp::socket* to = nullptr;
    pipe_pair pipe;                        // spliced reads, while in flight
    std::unique_ptr<std::uint8_t[]> buf;   // copied reads, while in flight (never both)
    std::size_t pending = 0;               // bytes read but not yet written
    std::size_t offset = 0;                // copied reads: write position in buf
    std::uint64_t bytes = 0;
    bool done = false;
    bool bulk = false;                     // a read filled its pipe/buffer
    op_storage op;  // its pending wait
  };

  void start(boost::asio::any_completion_handler<relay_signature> handler);
  void pump(direction& d);
  void wait(direction& d, bool for_write);
  void finish_direction(direction& d);
  /// A read filled the pipe or buffer: a bulk transfer. Grows the pipe and,
  /// the first time, bounds the unsent bytes on the socket written to and
  /// (adaptive mode) makes the direction's later reads splice.
  void filled(direction& d) noexcept;
  void stop(end_reason reason, core::error_code ec);
  void release(direction& d) noexcept;
  void check_idle(std::chrono::steady_clock::time_point now);
  void op_done();
  friend class idle_sweeper;

  bool splicing(const direction& d) const noexcept;  // d's next read splices (else it copies)
  // Transfer primitives: bytes moved, 0 at EOF, -1 with errno set.
  long read_in(direction& d, core::error_code& ec, std::size_t& asked);  // asked: bytes it asked for
  long write_out(direction& d, core::error_code& ec);

  tcp::socket& client_;
  tcp::socket& target_;
  relay_options options_;
  pipe_pool& pipes_;
  buffer_pool& buffers_;
  idle_sweeper& idle_;
  direction dirs_[2];
  boost::asio::any_completion_handler<relay_signature> handler_;
  std::chrono::steady_clock::time_point last_activity_;
  int outstanding_ = 0;  // pending waits and posts
  bool stopping_ = false;
  bool completed_ = false;
  end_reason reason_ = end_reason::closed;
  core::error_code ec_;
};

}  // namespace cs::relay
