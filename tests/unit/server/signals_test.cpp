// server::signal_stream: signals read from a signalfd on the loop. Each test
// runs in its own process (gtest_discover_tests), so blocking and raising
// SIGHUP/SIGTERM/SIGINT here affects nothing else.
#include "server/signals.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <pthread.h>

#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using cs::server::signal_stream;
using cs::test::run_until;

bool blocked_here(int signo) {
  sigset_t current;
  pthread_sigmask(SIG_BLOCK, nullptr, &current);
  return sigismember(&current, signo) == 1;
}

bool pending_here(int signo) {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, signo) == 1;
}

TEST(SignalStreamTest, SignalRaisedBeforeTheWaitIsNotLost) {
  asio::io_context io;
  signal_stream signals(io, {SIGINT, SIGTERM, SIGHUP});
  ASSERT_EQ(raise(SIGTERM), 0);  // blocked: stays pending instead of ending the process
  int got = 0;
  cs::core::error_code got_ec = asio::error::would_block;
  signals.async_wait([&](cs::core::error_code ec, int signo) {
    got_ec = ec;
    got = signo;
  });
  ASSERT_TRUE(run_until(io, [&] { return got != 0; }));
  EXPECT_FALSE(got_ec);
  EXPECT_EQ(got, SIGTERM);
}

TEST(SignalStreamTest, SignalWhileWaitingWakesTheLoopAndEachSignalIsDeliveredOnce) {
  asio::io_context io;
  signal_stream signals(io, {SIGINT, SIGTERM, SIGHUP});
  std::vector<int> got;
  std::function<void()> wait = [&] {
    signals.async_wait([&](cs::core::error_code ec, int signo) {
      if (!ec) {
        got.push_back(signo);
        wait();
      }
    });
  };
  wait();
  asio::steady_timer later(io);
  later.expires_after(std::chrono::milliseconds(20));
  later.async_wait([](cs::core::error_code) {
    raise(SIGHUP);
    raise(SIGINT);
  });
  ASSERT_TRUE(run_until(io, [&] { return got.size() >= 2; }));
  // Standard signals are not queued: each pending one is read once, lowest number first.
  EXPECT_EQ(got, (std::vector<int>{SIGHUP, SIGINT}));
  EXPECT_FALSE(pending_here(SIGHUP));
  EXPECT_FALSE(pending_here(SIGINT));
}

TEST(SignalStreamTest, CancelEndsTheWaitWithOperationAborted) {
  asio::io_context io;
  signal_stream signals(io, {SIGHUP});
  cs::core::error_code got_ec;
  bool called = false;
  signals.async_wait([&](cs::core::error_code ec, int) {
    called = true;
    got_ec = ec;
  });
  signals.cancel();
  ASSERT_TRUE(run_until(io, [&] { return called; }));
  EXPECT_EQ(got_ec, asio::error::operation_aborted);
}

TEST(SignalStreamTest, ThreadsStartedAfterwardsInheritTheBlockedMask) {
  asio::io_context io;
  signal_stream signals(io, {SIGINT, SIGTERM, SIGHUP});
  bool int_blocked = false;
  bool term_blocked = false;
  std::thread t([&] {
    int_blocked = blocked_here(SIGINT);
    term_blocked = blocked_here(SIGTERM);
  });
  t.join();
  EXPECT_TRUE(int_blocked);
  EXPECT_TRUE(term_blocked);
}

TEST(SignalStreamTest, DestructorDiscardsPendingSignalsAndRestoresTheMask) {
  ASSERT_FALSE(blocked_here(SIGHUP));
  {
    asio::io_context io;
    signal_stream signals(io, {SIGHUP});
    EXPECT_TRUE(blocked_here(SIGHUP));
    ASSERT_EQ(raise(SIGHUP), 0);
    EXPECT_TRUE(pending_here(SIGHUP));
  }
  // Still running: the pending SIGHUP was read, not delivered with its
  // default action (which ends the process) when the mask was restored.
  EXPECT_FALSE(pending_here(SIGHUP));
  EXPECT_FALSE(blocked_here(SIGHUP));
}

}  // namespace
