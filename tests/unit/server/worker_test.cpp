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

#include <atomic>
#include <chrono>
#include <future>
#include <memory>

namespace {

namespace asio = boost::asio;
using namespace cs::test;
using tcp = asio::ip::tcp;
using bytevec = std::vector<std::uint8_t>;

std::shared_ptr<const cs::config::snapshot> loopback_snapshot() {
  cs::config::settings s;
  cs::policy::rule r;
  const auto err = cs::policy::parse_rule_spec("127.0.0.0/8", cs::policy::action::allow, r);
  EXPECT_TRUE(err.empty()) << err;
  s.acl.rules.push_back(std::move(r));
  s.admin.enabled = false;
  return cs::config::compile(s, 1);
}

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    w = std::make_unique<cs::server::worker>(0, loopback_snapshot(), shared, [this] {
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

TEST_F(WorkerTest, CancelSessionsEndsOpenTunnelsAndDrains) {
  ASSERT_TRUE(run_bounded(io, open_tunnel()));
  EXPECT_EQ(w->active_sessions(), 1u) << "a handed-over tunnel still counts as a session";
  w->drain();
  w->cancel_sessions();
  ASSERT_TRUE(run_bounded(io, expect_closed()));
  ASSERT_EQ(drained_signal.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "on_drained after the last tunnel ended";
  EXPECT_EQ(w->active_sessions(), 0u);
}

TEST_F(WorkerTest, DestroyingTheWorkerEndsOpenTunnels) {
  // Not the server's path (it drains first), but a loop that stops with
  // tunnels open must still free them, on its own thread's io_context.
  ASSERT_TRUE(run_bounded(io, open_tunnel()));
  EXPECT_EQ(w->active_sessions(), 1u);
  w.reset();
  ASSERT_TRUE(run_bounded(io, expect_closed()));
}

}  // namespace
