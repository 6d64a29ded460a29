#include "server/worker.hpp"

#include "core/address.hpp"
#include "obs/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <exception>

namespace cs::server {

namespace asio = boost::asio;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

namespace {
std::atomic<std::uint64_t> next_session_id{1};

// Once per process, from whichever worker sees it first. Called from the
// pool's noexcept acquire(): a failure to log must not escape.
void warn_pipes_limited(std::uint32_t capacity) noexcept {
  static std::atomic<bool> warned{false};
  if (warned.exchange(true, std::memory_order_relaxed)) {
    return;
  }
  try {
    obs::log().warn(
        "relay: the kernel now creates pipes of {} bytes only: this user's pipe buffers exceed "
        "fs.pipe-user-pages-soft, so each splice moves less and bulk transfers are slower. Raise the "
        "sysctl or grant CAP_SYS_RESOURCE (cleversocks_relay_pipes_limited_total counts such pipes)",
        capacity);
  } catch (...) {
  }
}

relay::pipe_pool make_pipe_pool(const config::settings& s) {
  const auto caps = relay::idle_pipe_caps_for(s.workers);
  return relay::pipe_pool(caps.max_idle, s.relay.pipe_size, caps.max_idle_grown, warn_pipes_limited);
}

bool out_of_resources(const core::error_code& ec) {
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory || ec.value() == ENFILE;
}
}  // namespace

bool nodelay_inherited_from(tcp::acceptor& acceptor) noexcept {
#ifdef __linux__
  core::error_code ec;
  acceptor.set_option(tcp::no_delay(true), ec);
  return !ec;
#else
  (void)acceptor;
  return false;
#endif
}

void run_loop(asio::io_context& io, std::chrono::microseconds window) {
  if (window <= std::chrono::microseconds::zero()) {
    io.run();
    return;
  }
  // The clock is read only while the loop is idle: a busy stretch of
  // handlers costs one poll() per turn and nothing more.
  using clock = std::chrono::steady_clock;
  clock::time_point quiet_since{};  // epoch: not idle
  while (!io.stopped()) {
    if (io.poll() > 0) {  // poll() stops `io` once it has no work left
      quiet_since = {};
      continue;
    }
    const auto now = clock::now();
    if (quiet_since == clock::time_point{}) {
      quiet_since = now;
    } else if (now - quiet_since >= window) {
      io.run_one();  // quiet for a whole window: sleep until the next event
      quiet_since = {};
    }
  }
}

worker::worker(unsigned id, std::shared_ptr<const config::snapshot> snap, session::shared_services& shared,
               std::function<void()> on_drained)
    : id_(id), on_drained_(std::move(on_drained)), snap_(std::move(snap)),
      pipes_(make_pipe_pool(snap_->source)),
      buffers_(snap_->source.relay.chunk),
      dns_(std::make_unique<upstream::resolver>(io_.get_executor(), snap_->source.dns)),
      services_{id_, *dns_, pipes_, buffers_, idle_, tunnels_, metrics_, auth_cache_, shared, udp_buffer_},
      work_(io_.get_executor()) {}

worker::~worker() {
  if (thread_.joinable()) {
    stop();
    join();
  }
  listeners_.clear();
  // Completes what is left in the loop (nothing, after a clean drain) so no
  // frame outlives the services it borrows. Tunnels end through posted
  // completions: cancel them first, so this poll frees them all.
  tunnels_.cancel_all();
  io_.restart();
  io_.poll();
}

tcp::endpoint worker::bind_listener(std::unique_ptr<listener> li, const tcp::endpoint& ep, int backlog) {
  auto& acc = li->acceptor;
  acc.open(ep.protocol());
  acc.set_option(tcp::acceptor::reuse_address(true));
  const int one = 1;
  if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    throw boost::system::system_error(core::error_code(errno, boost::system::system_category()),
                                      "SO_REUSEPORT");
  }
  if (ep.address().is_v6()) {
    acc.set_option(asio::ip::v6_only(true));  // [::] means IPv6 only; list 0.0.0.0 for IPv4
  }
  acc.bind(ep);
  li->nodelay_inherited = nodelay_inherited_from(acc);
  acc.listen(backlog);
  const auto bound = acc.local_endpoint();
  listeners_.push_back(std::move(li));
  return bound;
}

tcp::endpoint worker::listen(const config::listener_settings& l, int backlog) {
  return bind_listener(std::make_unique<listener>(listener{tcp::acceptor(io_), l.proxy_protocol}), l.endpoint,
                       backlog);
}

tcp::endpoint worker::listen_forward(const tcp::endpoint& ep, std::size_t index, int backlog) {
  return bind_listener(
      std::make_unique<listener>(listener{tcp::acceptor(io_), config::proxy_protocol_mode::off, index}), ep, backlog);
}

tcp::endpoint worker::adopt(int fd, config::proxy_protocol_mode pp) {
  const int copy = ::dup(fd);
  if (copy < 0) {
    throw boost::system::system_error(core::error_code(errno, boost::system::system_category()), "dup");
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(copy, reinterpret_cast<sockaddr*>(&ss), &len);
  auto li = std::make_unique<listener>(listener{tcp::acceptor(io_), pp});
  li->acceptor.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), copy);
  // nodelay_inherited stays false: connections queued before we could set
  // it on the listener (socket activation starts us for the first one)
  // would not have it.
  const auto bound = li->acceptor.local_endpoint();
  listeners_.push_back(std::move(li));
  return bound;
}

void worker::set_snapshot(std::shared_ptr<const config::snapshot> snap) {
  asio::post(io_, [this, snap = std::move(snap)]() mutable { snap_ = std::move(snap); });
}

void worker::start() {
  for (auto& li : listeners_) {
    asio::co_spawn(io_, accept_loop(*li), [](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          obs::log().critical("accept loop ended unexpectedly: {}", ex.what());
        }
      }
    });
  }
  thread_ = std::thread([this, window = snap_->source.busy_poll] { run_loop(io_, window); });
}

asio::awaitable<void> worker::accept_loop(listener& l) {
  auto& acceptor = l.acceptor;
  asio::steady_timer backoff(io_);
  tcp::endpoint peer;  // filled by accept() itself: no getpeername() per session
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(peer, nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
      co_return;
    }
    if (ec) {
      metrics_.accept_errors.inc();
      if (out_of_resources(ec)) {
        // Spinning on EMFILE would burn the core and starve the sessions
        // that will free descriptors; wait a little instead.
        obs::log().warn("accept: {}; pausing accepts for 100 ms", ec.message());
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(nothrow);
      } else {
        obs::log().debug("accept: {}", ec.message());
      }
      continue;
    }
    metrics_.connections_accepted.inc();
    if (!l.nodelay_inherited) {  // else the listener passed it on: one system call less per session
      core::error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
    }
    spawn_session(std::move(sock), peer, l);
  }
}

void worker::spawn_session(tcp::socket sock, const tcp::endpoint& peer, const listener& l) {
  const auto id = next_session_id.fetch_add(1, std::memory_order_relaxed);
  auto it = sessions_.emplace(sessions_.end(), io_.get_executor());
  it->place(sessions_, it);
  active_.fetch_add(1, std::memory_order_relaxed);
  metrics_.sessions_active.add();
  auto body = l.forward == SIZE_MAX ? session::run(std::move(sock), peer, snap_, services_, *it, id, l.proxy_protocol)
                                    : session::run_forward(std::move(sock), peer, snap_, services_, *it, id, l.forward);
  asio::co_spawn(io_, std::move(body),
                 asio::bind_cancellation_slot(it->slot(), [this, it, id](std::exception_ptr e, bool handed_off) {
                   if (e) {
                     metrics_.session_exceptions.inc();
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       obs::log().error("session {} ended by an unexpected exception: {}", id, ex.what());
                     } catch (...) {
                       obs::log().error("session {} ended by an unexpected exception", id);
                     }
                   }
                   session_ended(it, handed_off);  // false when it threw: co_spawn passes bool{}
                 }));
}

void worker::session_ended(session::session_control::list::iterator it, bool handed_off) {
  it->release();  // erased now, or once its deadline's timer wait has completed
  if (!handed_off) {
    finished();  // else the tunnel reports its own end
  }
}

void worker::finished() {
  metrics_.sessions_active.sub();
  if (active_.fetch_sub(1, std::memory_order_relaxed) == 1 && draining_ && on_drained_) {
    on_drained_();
  }
}

void worker::drain() {
  asio::post(io_, [this] {
    draining_ = true;
    for (auto& li : listeners_) {
      core::error_code ignored;
      li->acceptor.close(ignored);
    }
    if (active_.load(std::memory_order_relaxed) == 0 && on_drained_) {
      on_drained_();
    }
  });
}

void worker::cancel_sessions() {
  asio::post(io_, [this] {
    for (auto& s : sessions_) {
      s.cancel();
    }
    tunnels_.cancel_all();
  });
}

void worker::stop() {
  work_.reset();
  io_.stop();
}

void worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace cs::server
