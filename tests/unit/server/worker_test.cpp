// server::worker with real sockets: established tunnels live on the worker's
// tunnel_set once their session coroutine has ended; cancel_sessions() and
// the worker's destructor must end them (and free them) without the loop
// touching freed memory. The sanitizer builds run these too.
#include "config/settings.hpp"
#include "net_support.hpp"
#include "policy/rule_spec.hpp"
#include "server/worker.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <time.h>

#include <atomic>
#include <functional>
#include <chrono>
#include <future>
#include <memory>

namespace {

namespace asio = boost::asio;
using namespace cs::test;
using tcp = asio::ip::tcp;
using bytevec = std::vector<std::uint8_t>;

std::shared_ptr<const cs::config::snapshot> loopback_snapshot(std::chrono::microseconds busy_poll) {
  cs::config::settings s;
  s.busy_poll = busy_poll;
  cs::policy::rule r;
  const auto err = cs::policy::parse_rule_spec("127.0.0.0/8", cs::policy::action::allow, r);
  EXPECT_TRUE(err.empty()) << err;
  s.acl.rules.push_back(std::move(r));
  s.admin.enabled = false;
  return cs::config::compile(s, 1);
}

// Each test with the loop sleeping as soon as it is idle, and polling first.
class WorkerTest : public ::testing::TestWithParam<std::chrono::microseconds> {
 protected:
  void SetUp() override {
    w = std::make_unique<cs::server::worker>(0, loopback_snapshot(GetParam()), shared, [this] {
      if (!drained.exchange(true)) {
        drained_signal.set_value();  // from the worker's thread
      }
    });
    proxy = w->listen(cs::config::listener_settings{tcp::endpoint(asio::ip::address_v4::loopback(), 0)}, 16);
    w->start();
    target_acceptor.open(tcp::v4());
    target_acceptor.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    target_acceptor.listen();
  }

  // SOCKS5 CONNECT through the worker to the target acceptor; returns the
  // target's side of the tunnel after one byte each way proved it open.
  asio::awaitable<void> open_tunnel() {
    // Named buffers: GCC 12 miscompiles braced vectors inside co_await
    // expressions ("array used as initializer").
    const auto port = target_acceptor.local_endpoint().port();
    const bytevec greeting = b({5, 1, 0});
    const bytevec no_auth = b({5, 0});
    const bytevec request = b({5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff});
    const bytevec one_up(1, 'u');
    const bytevec one_down(1, 'd');
    co_await client.async_connect(proxy, asio::use_awaitable);
    auto ec = co_await write_all(client, greeting);
    CO_ASSERT(!ec);
    const auto method = co_await read_exactly(client, 2);
    CO_ASSERT(method == no_auth);
    ec = co_await write_all(client, request);
    CO_ASSERT(!ec);
    target = co_await target_acceptor.async_accept(asio::use_awaitable);
    const auto reply = co_await read_exactly(client, 10);
    CO_ASSERT(reply.size() == 10 && reply[1] == 0);
    ec = co_await write_all(client, one_up);
    CO_ASSERT(!ec);
    const auto up = co_await read_exactly(target, 1);
    CO_ASSERT(up == one_up);
    ec = co_await write_all(target, one_down);
    CO_ASSERT(!ec);
    const auto down = co_await read_exactly(client, 1);
    CO_ASSERT(down == one_down);
  }

  // Both ends see the proxy close the tunnel.
  asio::awaitable<void> expect_closed() {
    auto [ec1, rest1] = co_await read_to_eof(client);
    EXPECT_TRUE(rest1.empty());
    auto [ec2, rest2] = co_await read_to_eof(target);
    EXPECT_TRUE(rest2.empty());
    (void)ec1;
    (void)ec2;
  }

  asio::io_context io;
  cs::session::shared_services shared;
  std::atomic<bool> drained{false};
  std::promise<void> drained_signal;
  std::unique_ptr<cs::server::worker> w;
  tcp::endpoint proxy;
  tcp::acceptor target_acceptor{io};
  tcp::socket client{io};
  tcp::socket target{io};
};

// The accept loop skips the per-socket setsockopt only because the kernel
// copies the listener's TCP_NODELAY to every accepted socket; a kernel that
// did not would leave sessions with Nagle's algorithm on. Checked here.
// A session whose last operation completed just before a forced shutdown
// misses that cancellation; if it then becomes a tunnel, joining the set
// cancels it, or the drain would wait for its idle timeout.
TEST(TunnelSet, TunnelsAddedAfterCancelAllAreCancelled) {
  struct fake final : cs::session::tunnel_link {
    int cancels = 0;
    void cancel() noexcept override { ++cancels; }
  };
  cs::session::tunnel_set set(nullptr);
  fake before;
  fake after;
  set.add(before);
  EXPECT_EQ(before.cancels, 0);
  set.cancel_all();
  EXPECT_EQ(before.cancels, 1);
  set.add(after);
  EXPECT_EQ(after.cancels, 1);
  EXPECT_EQ(before.cancels, 1);
}

TEST(ListenerNoDelay, AcceptedSocketsInheritItFromTheListener) {
  asio::io_context io;
  for (const auto& addr : {asio::ip::address(asio::ip::address_v4::loopback()),
                           asio::ip::address(asio::ip::address_v6::loopback())}) {
    SCOPED_TRACE(addr.to_string());
    tcp::acceptor acc(io);
    acc.open(tcp::endpoint(addr, 0).protocol());
    acc.bind(tcp::endpoint(addr, 0));
    ASSERT_TRUE(cs::server::nodelay_inherited_from(acc));
    acc.listen();
    tcp::socket client(io);
    client.connect(acc.local_endpoint());
    tcp::socket accepted = acc.accept();
    tcp::no_delay nd;
    accepted.get_option(nd);
    EXPECT_TRUE(nd.value()) << "the accepted socket did not inherit TCP_NODELAY";
    client.get_option(nd);
    EXPECT_FALSE(nd.value()) << "control: a socket nobody set it on";
  }
}

TEST_P(WorkerTest, CancelSessionsEndsOpenTunnelsAndDrains) {
  ASSERT_TRUE(run_bounded(io, open_tunnel()));
  EXPECT_EQ(w->active_sessions(), 1u) << "a handed-over tunnel still counts as a session";
  w->drain();
  w->cancel_sessions();
  ASSERT_TRUE(run_bounded(io, expect_closed()));
  ASSERT_EQ(drained_signal.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "on_drained after the last tunnel ended";
  EXPECT_EQ(w->active_sessions(), 0u);
}

TEST_P(WorkerTest, DestroyingTheWorkerEndsOpenTunnels) {
  // Not the server's path (it drains first), but a loop that stops with
  // tunnels open must still free them, on its own thread's io_context.
  ASSERT_TRUE(run_bounded(io, open_tunnel()));
  EXPECT_EQ(w->active_sessions(), 1u);
  w.reset();
  ASSERT_TRUE(run_bounded(io, expect_closed()));
}

INSTANTIATE_TEST_SUITE_P(BusyPoll, WorkerTest, ::testing::Values(std::chrono::microseconds(0), std::chrono::microseconds(200)),
                         [](const auto& p) { return p.param.count() ? "polling" : "sleeping"; });

// ------------------------------------------------------------ run_loop

using std::chrono::microseconds;
using std::chrono::milliseconds;

milliseconds thread_cpu_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::duration_cast<milliseconds>(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

// run_loop on its own thread; the future is ready when it returns.
std::future<void> start_loop(asio::io_context& io, microseconds window) {
  return std::async(std::launch::async, [&io, window] { cs::server::run_loop(io, window); });
}

class RunLoop : public ::testing::TestWithParam<microseconds> {};

TEST_P(RunLoop, RunsHandlersAndTimersThenReturnsWhenOutOfWork) {
  asio::io_context io{1};
  int handlers = 0;
  bool fired = false;
  asio::steady_timer timer(io, milliseconds(20));
  timer.async_wait([&](boost::system::error_code ec) { fired = !ec; });
  std::function<void()> chain = [&] {
    if (++handlers < 1000) {
      asio::post(io, chain);  // each one queued by the last: many turns of the loop
    }
  };
  asio::post(io, chain);
  auto done = start_loop(io, GetParam());
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "no return once out of work";
  EXPECT_EQ(handlers, 1000);
  EXPECT_TRUE(fired);
  EXPECT_TRUE(io.stopped());
}

TEST_P(RunLoop, StopFromAnotherThreadEndsIt) {
  asio::io_context io{1};
  auto guard = asio::make_work_guard(io);  // never out of work: only stop() ends it
  std::promise<void> ran;
  asio::post(io, [&] { ran.set_value(); });
  auto done = start_loop(io, GetParam());
  ASSERT_EQ(ran.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  io.stop();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "stop() did not end the loop";
}

// A polling loop sleeps once nothing has happened for a whole window: the
// thread's CPU time over a quiet 300 ms (until a timer) is about the window,
// not the 300 ms a loop that never sleeps would burn.
TEST_P(RunLoop, SleepsOnceQuietForAWindow) {
  const microseconds window = GetParam();
  asio::io_context io{1};
  milliseconds before{}, after{};
  asio::steady_timer timer(io, milliseconds(300));
  asio::post(io, [&] { before = thread_cpu_time(); });
  timer.async_wait([&](boost::system::error_code) { after = thread_cpu_time(); });
  auto done = start_loop(io, window);
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const auto used = after - before;
  EXPECT_LT(used, milliseconds(50)) << "the loop kept polling through a quiet 300 ms";
  if (window >= milliseconds(10)) {
    // And it does poll: a whole window on the CPU, of which even a
    // crowded machine gives it a tenth.
    EXPECT_GE(used, milliseconds(1)) << "a 10ms window, but the loop slept at once";
  }
}

INSTANTIATE_TEST_SUITE_P(Window, RunLoop,
                         ::testing::Values(microseconds(0), microseconds(50), microseconds(10'000)),
                         [](const auto& p) { return std::to_string(p.param.count()) + "us"; });

}  // namespace
