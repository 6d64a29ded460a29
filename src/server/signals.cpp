#include "server/signals.hpp"

#include <boost/asio/post.hpp>

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace asio = boost::asio;

namespace cs::server {

namespace {

int open_signalfd(const sigset_t& set) {
  const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "signalfd");
  }
  return fd;
}

sigset_t block(std::initializer_list<int> signals, sigset_t& previous) {
  sigset_t set;
  sigemptyset(&set);
  for (const int s : signals) {
    sigaddset(&set, s);
  }
  if (const int rc = ::pthread_sigmask(SIG_BLOCK, &set, &previous); rc != 0) {
    throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  }
  return set;
}

}  // namespace

signal_stream::signal_stream(asio::io_context& ctx, std::initializer_list<int> signals)
    : set_(block(signals, previous_)), stream_(ctx) {
  try {
    stream_.assign(open_signalfd(set_));
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    throw;
  }
}

signal_stream::~signal_stream() {
  // Unblocking a signal that is still pending would deliver it with its
  // default action (for these: ending the process) as we return.
  while (stream_.is_open() && take() != 0) {
  }
  core::error_code ignored;
  stream_.close(ignored);
  ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

int signal_stream::take() {
  signalfd_siginfo info{};
  for (;;) {
    const ssize_t n = ::read(stream_.native_handle(), &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) {
      return static_cast<int>(info.ssi_signo);
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return 0;  // EAGAIN: nothing pending (a signalfd never returns a partial record)
  }
}

void signal_stream::async_wait(std::function<void(core::error_code, int)> handler) {
  if (const int signo = take(); signo != 0) {
    asio::post(stream_.get_executor(), [h = std::move(handler), signo] { h({}, signo); });
    return;
  }
  stream_.async_wait(asio::posix::stream_descriptor::wait_read,
                     [this, h = std::move(handler)](core::error_code ec) mutable {
                       if (ec) {
                         h(ec, 0);
                         return;
                       }
                       async_wait(std::move(h));
                     });
}

void signal_stream::cancel() {
  stream_.cancel();
}

}  // namespace cs::server
