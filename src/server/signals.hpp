#pragma once
// Process signals (SIGINT, SIGTERM, SIGHUP) read from a signalfd on the
// control thread's loop, instead of through an asynchronous handler.
//
// The constructor blocks the signals in the calling thread, so it must run
// before any other thread starts: threads inherit the mask, no thread ever
// takes the signal asynchronously, and the kernel leaves it pending for the
// signalfd. Nothing runs in signal context, no system call in a worker is
// interrupted, and a signal sent before the loop runs (during start-up) is
// not lost: it waits in the descriptor. (Asynchronous handlers are also
// where ThreadSanitizer defers delivery, which lost a SIGINT in testing.)
//
// Standard signals do not queue: the same signal sent twice before the loop
// reads it counts once (a second SIGTERM to force the drain must come after
// the first was read, which on an idle control loop is within microseconds).
//
// The destructor discards signals still pending and restores the mask.

#include "core/error.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <csignal>
#include <functional>
#include <initializer_list>

namespace cs::server {

class signal_stream {
 public:
  signal_stream(boost::asio::io_context& ctx, std::initializer_list<int> signals);
  ~signal_stream();
  signal_stream(const signal_stream&) = delete;
  signal_stream& operator=(const signal_stream&) = delete;

  /// Calls `handler(ec, signo)` once, with the next signal (or with
  /// operation_aborted after cancel()).
  void async_wait(std::function<void(core::error_code, int)> handler);
  void cancel();

 private:
  /// The next pending signal, or 0 if none is pending.
  int take();

  sigset_t set_{};
  sigset_t previous_{};
  boost::asio::posix::stream_descriptor stream_;
};

}  // namespace cs::server
