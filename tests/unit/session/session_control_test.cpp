// session_control: a session's phase deadline and cancellation, outliving
// its coroutine.

#include "session/session.hpp"

#include "net_support.hpp"
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <gtest/gtest.h>

#include <array>
#include <thread>

namespace {

using namespace cs::test;
using cs::session::session_control;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

class SessionControlTest : public ::testing::Test {
 protected:
  session_control& add() {
    auto it = sessions.emplace(sessions.end(), io.get_executor());
    it->place(sessions, it);
    return *it;
  }

  // Runs `body` bound to `ctl`'s slot, as the worker spawns sessions; false
  // (and a failure) when it has not finished within 10 s.
  template <typename Body>
  bool run_session(session_control& ctl, Body body) {
    bool finished = false;
    if (io.stopped()) {
      io.restart();  // an earlier session ran it out of work
    }
    asio::co_spawn(io, std::move(body),
                   asio::bind_cancellation_slot(ctl.slot(), [&](std::exception_ptr e) {
                     finished = true;
                     EXPECT_FALSE(e) << "the session coroutine threw";
                   }));
    const auto deadline = clock_type::now() + std::chrono::seconds(10);
    while (!finished && clock_type::now() < deadline) {
      io.run_one_until(deadline);
    }
    EXPECT_TRUE(finished) << "the session did not finish within 10 s";
    return finished;
  }

  // A read that only a cancellation can end: the peer never sends.
  static asio::awaitable<cs::core::error_code> read_nothing(tcp::socket& s) {
    std::array<char, 16> b{};
    auto [ec, n] = co_await s.async_read_some(asio::buffer(b), nothrow);
    co_return ec;
  }

  asio::io_context io;
  session_control::list sessions;
};

TEST_F(SessionControlTest, DeadlineCancelsTheAwaitedOperation) {
  auto [a, b] = socket_pair(io);
  auto& ctl = add();
  cs::core::error_code ec;
  cs::core::error_code after;
  bool late = false;
  const auto t0 = clock_type::now();
  ASSERT_TRUE(run_session(ctl, [&]() -> asio::awaitable<void> {
    co_await asio::this_coro::throw_if_cancelled(false);
    ctl.expires_after(milliseconds(50));
    ec = co_await read_nothing(a);
    late = ctl.end_phase();
    // What follows a timeout (the reply saying so) still runs.
    const std::array<char, 2> reply{5, 6};
    std::tie(after, std::ignore) = co_await asio::async_write(a, asio::buffer(reply), nothrow);
  }()));
  EXPECT_EQ(ec, asio::error::operation_aborted) << ec.message();
  EXPECT_TRUE(late);
  EXPECT_GE(clock_type::now() - t0, milliseconds(50)) << "cancelled before its deadline";
  EXPECT_FALSE(after) << "the write after the timeout failed: " << after.message();
  std::array<char, 2> got{};
  EXPECT_EQ(asio::read(b, asio::buffer(got)), 2u);
  EXPECT_EQ(got[1], 6);
}

TEST_F(SessionControlTest, ExpiryWhileNothingCancellableIsPendingStillCancelsWhatFollows) {
  // Like a password hash on the verification pool: the awaited work ignores
  // cancellation and outlasts the deadline. The read that follows must not
  // run without a deadline.
  auto [a, b] = socket_pair(io);
  asio::thread_pool pool(1);
  auto& ctl = add();
  cs::core::error_code ec;
  ASSERT_TRUE(run_session(ctl, [&]() -> asio::awaitable<void> {
    co_await asio::this_coro::throw_if_cancelled(false);
    ctl.expires_after(milliseconds(20));
    co_await asio::co_spawn(pool, []() -> asio::awaitable<void> {
      std::this_thread::sleep_for(milliseconds(100));  // stands for slow, uninterruptible work
      co_return;
    }, asio::use_awaitable);
    EXPECT_TRUE(ctl.expired());
    ec = co_await read_nothing(a);
  }()));
  EXPECT_EQ(ec, asio::error::operation_aborted) << ec.message();
  pool.join();
}

TEST_F(SessionControlTest, AnEndedOrReplacedDeadlineNoLongerFires) {
  const std::pair<const char*, void (*)(session_control&)> cases[] = {
      {"ended", [](session_control& c) {
         c.expires_after(milliseconds(10));
         c.disarm();
       }},
      {"replaced", [](session_control& c) {
         c.expires_after(milliseconds(10));
         c.expires_after(std::chrono::hours(1));
       }},
  };
  for (const auto& [name, arm] : cases) {
    auto& ctl = add();
    cs::core::error_code ec;
    ASSERT_TRUE(run_session(ctl, [&]() -> asio::awaitable<void> {
      co_await asio::this_coro::throw_if_cancelled(false);
      arm(ctl);
      asio::steady_timer t(io, milliseconds(60));
      std::tie(ec) = co_await t.async_wait(nothrow);
    }()));
    EXPECT_FALSE(ec) << name << ": the old deadline cancelled the wait: " << ec.message();
    EXPECT_FALSE(ctl.expired()) << name;
    ctl.release();
  }
}

TEST_F(SessionControlTest, ReleasedRecordLeavesOnceItsTimerWaitHasRun) {
  auto& armed = add();
  armed.expires_after(std::chrono::hours(1));
  armed.release();
  ASSERT_EQ(sessions.size(), 1u) << "freed while its timer wait's handler still refers to it";
  armed.cancel();  // after release: nothing to cancel, nothing happens
  io.poll();
  EXPECT_TRUE(sessions.empty()) << "the cancelled wait did not free the record";

  auto& idle = add();
  idle.release();
  EXPECT_TRUE(sessions.empty()) << "no wait pending: freed at once";
}

}  // namespace
