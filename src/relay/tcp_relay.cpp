#include "relay/tcp_relay.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace cs::relay {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {
core::error_code errno_code() noexcept {
  const int e = errno;
  if (e == EAGAIN || e == EWOULDBLOCK) {
    return asio::error::would_block;
  }
  return {e, boost::system::system_category()};
}

std::size_t page_size() noexcept {
  static const auto size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}
}  // namespace

void idle_sweeper::watch(tcp_relay& r, std::chrono::milliseconds timeout) {
  relays_.push_back(r);
  const auto tick = std::clamp(timeout / 4, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
  if (tick < tick_ || !armed_) {
    tick_ = armed_ ? std::min(tick_, tick) : tick;
    armed_ = true;
    arm();  // replaces a longer wait in progress
  }
}

void idle_sweeper::arm() {
  timer_.expires_after(tick_);
  timer_.async_wait(asio::bind_allocator(op_allocator<void>(timer_op_), [this](core::error_code ec) {
    if (!ec) {
      sweep();
    }
  }));
}

void idle_sweeper::sweep() {
  const auto now = clock::now();
  for (auto it = relays_.begin(); it != relays_.end();) {
    auto& r = static_cast<tcp_relay&>(*it++);  // check_idle() may end r, never another relay
    r.check_idle(now);
  }
  if (relays_.empty()) {
    armed_ = false;  // nothing to watch: no timer pending on an idle loop
    return;
  }
  arm();
}

tcp_relay::tcp_relay(tcp::socket& client, tcp::socket& target, const relay_options& options,
                     pipe_pool& pipes, buffer_pool& buffers, idle_sweeper& idle) noexcept
    : client_(client), target_(target), options_(options), pipes_(pipes), buffers_(buffers), idle_(idle) {
  dirs_[0].from = &client_;
  dirs_[0].to = &target_;
  dirs_[1].from = &target_;
  dirs_[1].to = &client_;
#ifndef __linux__
  options_.mode = relay_mode::copy;
#endif
}

tcp_relay::~tcp_relay() {
  release(dirs_[0]);
  release(dirs_[1]);
}

void tcp_relay::start(asio::any_completion_handler<relay_signature> handler) {
  // swap, not move-assignment: Boost 1.81's any_completion_handler::operator=
  // re-wraps the source instead of moving it (fixed in 1.82).
  handler_.swap(handler);
  auto slot = handler_.get_cancellation_slot();
  if (slot.is_connected()) {
    slot.assign([this](asio::cancellation_type) {
      stop(end_reason::cancelled, asio::error::operation_aborted);
    });
  }
  // splice/recv/send below need O_NONBLOCK on the descriptors. Asio has
  // usually set it already (for the handshake's reads and the connect), and
  // says so without a syscall; only ask for it when it has not.
  core::error_code ec;
  for (tcp::socket* s : {&client_, &target_}) {
    if (!ec && !s->native_non_blocking()) {
      s->native_non_blocking(true, ec);
    }
  }
  last_activity_ = clock::now();
  if (options_.idle_timeout.count() > 0) {
    idle_.watch(*this, options_.idle_timeout);
  }
  if (ec) {
    stop(end_reason::error, ec);
  }
  // Start by trying to move data rather than waiting for readiness: bytes
  // may already be queued (the reactor is edge-triggered, so a wait would
  // not see them). Posted, so the handler never runs inside async_run().
  for (auto& d : dirs_) {
    ++outstanding_;
    asio::post(client_.get_executor(), [this, &d] {
      --outstanding_;
      pump(d);
      op_done();
    });
  }
}

bool tcp_relay::splicing(const direction& d) const noexcept {
  return options_.mode == relay_mode::splice || (options_.mode == relay_mode::adaptive && d.bulk);
}

long tcp_relay::read_in(direction& d, core::error_code& ec, std::size_t& asked) {
  const int fd = d.from->native_handle();
  long n = -1;
  if (splicing(d)) {
    if (d.buf) {  // adaptive: the direction turned bulk after a copied read (all of it written)
      buffers_.release(std::move(d.buf));
    }
    if (!d.pipe) {
      d.pipe = pipes_.acquire(ec);
      if (ec) {
        return -1;
      }
    }
    asked = d.pipe.capacity;  // what the (empty) pipe can take
    n = ::splice(fd, nullptr, d.pipe.write_fd, nullptr, asked, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } else {
    if (!d.buf) {
      d.buf = buffers_.acquire();
    }
    asked = std::min(options_.chunk, buffers_.buffer_size());
    n = ::recv(fd, d.buf.get(), asked, 0);
    d.offset = 0;
  }
  if (n < 0) {
    ec = errno_code();
  }
  return n;
}

long tcp_relay::write_out(direction& d, core::error_code& ec) {
  const int fd = d.to->native_handle();
  long n = -1;
  if (d.buf) {  // the pending bytes were copied in
    n = ::send(fd, d.buf.get() + d.offset, d.pending, MSG_NOSIGNAL);
    if (n > 0) {
      d.offset += static_cast<std::size_t>(n);
    }
  } else {
    n = ::splice(d.pipe.read_fd, nullptr, fd, nullptr, d.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  }
  if (n < 0) {
    ec = errno_code();
  } else {
    d.pending -= static_cast<std::size_t>(n);
  }
  return n;
}

void tcp_relay::pump(direction& d) {
  if (stopping_ || d.done) {
    return;
  }
  // A read that returned less than it asked for has (almost surely) emptied
  // the socket: once its bytes are written, wait instead of reading again
  // only to get EAGAIN. The wait re-arms the descriptor (EPOLL_CTL_MOD),
  // which reports data that arrived in between, so nothing is missed.
  //
  // Not so for a splice: a pipe holds a number of page references (16 in a
  // 64 KiB pipe), one per fragment of the socket's buffers, and fragments
  // are often smaller than a page (1,448 B segments from a NIC; file pages
  // at an offset; segments split across pages). A pipe whose slots ran out
  // took less than it asked for from a socket that still holds data. So a
  // short splice of a page or more reads again (EAGAIN then ends it), and
  // data after it shows the pipe, not the socket, was the limit: the pipe
  // grows as a byte-full one does.
  bool drained = false;
  bool slots_maybe_full = false;  // the last read was a short splice of a page or more
  for (int i = 0; i < options_.burst; ++i) {
    core::error_code ec;
    if (d.pending > 0) {
      if (write_out(d, ec) < 0) {
        if (ec == asio::error::would_block) {
          wait(d, true);  // keep the pipe/buffer: bytes are in flight
        } else {
          stop(end_reason::error, ec);
        }
        return;
      }
      last_activity_ = clock::now();
      if (d.pending == 0 && drained) {
        release(d);
        wait(d, false);
        return;
      }
      continue;
    }
    std::size_t asked = 0;
    const long n = read_in(d, ec, asked);
    if (n > 0) {
      d.bytes += static_cast<std::uint64_t>(n);
      d.pending = static_cast<std::size_t>(n);
      const bool short_read = d.pending < asked;
      if (!short_read || slots_maybe_full) {
        filled(d);
      }
      slots_maybe_full = short_read && !d.buf && d.pending >= page_size();  // !d.buf: it spliced
      drained = short_read && !slots_maybe_full;
      continue;
    }
    if (n == 0) {
      finish_direction(d);
      return;
    }
    if (ec == asio::error::would_block) {
      release(d);  // nothing in flight: an idle direction holds nothing
      wait(d, false);
    } else {
      stop(end_reason::error, ec);
    }
    return;
  }
  // Burst used up: let other work on this loop run, then carry on.
  ++outstanding_;
  asio::post(client_.get_executor(), [this, &d] {
    --outstanding_;
    pump(d);
    op_done();
  });
}

void tcp_relay::wait(direction& d, bool for_write) {
  ++outstanding_;
  tcp::socket& s = for_write ? *d.to : *d.from;
  s.async_wait(for_write ? tcp::socket::wait_write : tcp::socket::wait_read,
               asio::bind_allocator(op_allocator<void>(d.op), [this, &d](core::error_code ec) {
                 --outstanding_;
                 if (ec) {
                   stop(end_reason::error, ec);  // no-op when already stopping
                 } else {
                   pump(d);
                 }
                 op_done();
               }));
}

void tcp_relay::filled(direction& d) noexcept {
  if (d.pipe) {
    pipes_.grow(d.pipe);  // larger splices from now on (no-op once grown)
  }
  if (d.bulk) {
    return;
  }
  d.bulk = true;
#ifdef TCP_NOTSENT_LOWAT
  if (options_.notsent_lowat > 0) {
    // Best effort: without it the kernel's default applies, as before.
    const int lowat = static_cast<int>(std::min<std::size_t>(options_.notsent_lowat, INT_MAX));
    ::setsockopt(d.to->native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
  }
#endif
}

void tcp_relay::finish_direction(direction& d) {
  release(d);
  d.done = true;
  core::error_code ignored;
  d.to->shutdown(tcp::socket::shutdown_send, ignored);  // propagate the half-close
}

void tcp_relay::stop(end_reason reason, core::error_code ec) {
  if (stopping_ || completed_) {
    return;
  }
  stopping_ = true;
  reason_ = reason;
  ec_ = ec;
  core::error_code ignored;
  client_.cancel(ignored);
  target_.cancel(ignored);
  release(dirs_[0]);
  release(dirs_[1]);
}

void tcp_relay::release(direction& d) noexcept {
  if (d.pipe) {
    pipes_.release(d.pipe, d.pending == 0);
    d.pipe = {};
  }
  if (d.buf) {
    buffers_.release(std::move(d.buf));
  }
  d.pending = 0;
}

void tcp_relay::check_idle(clock::time_point now) {
  if (!stopping_ && !(dirs_[0].done && dirs_[1].done) && now - last_activity_ >= options_.idle_timeout) {
    stop(end_reason::idle_timeout, {});
  }
}

void tcp_relay::op_done() {
  if (completed_ || outstanding_ > 0) {
    return;
  }
  completed_ = true;
  unlink();  // no longer watched for idleness
  auto slot = handler_.get_cancellation_slot();
  if (slot.is_connected()) {
    slot.clear();
  }
  relay_result r{dirs_[0].bytes, dirs_[1].bytes, stopping_ ? reason_ : end_reason::closed, ec_};
  // Posted: the caller may destroy this relay as soon as it resumes.
  asio::post(client_.get_executor(), asio::append(std::move(handler_), r));
}

}  // namespace cs::relay
