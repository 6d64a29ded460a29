#include "upstream/connect.hpp"
#include "upstream/direct.hpp"

#include "net_support.hpp"
#include "test_support.hpp"
#include "upstream/fake_dns.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <optional>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace cs::test;
namespace ip = cs::core::ip;
using cs::core::error_code;
using cs::core::socks_errc;
using cs::upstream::connect_options;
using cs::upstream::dial_result;
using cs::upstream::family_preference;
using cs::upstream::resolver;
using cs::upstream::resolver_options;
using clock_type = std::chrono::steady_clock;

struct connect_outcome {
  bool done = false;
  int calls = 0;
  error_code ec;
  std::optional<tcp::socket> socket;
  tcp::endpoint remote;
};

auto recorder(connect_outcome& out) {
  return [&out](error_code ec, tcp::socket s, tcp::endpoint ep) {
    ++out.calls;
    out.done = true;
    out.ec = ec;
    out.socket.emplace(std::move(s));
    out.remote = ep;
  };
}

// A listener whose accept queue is full: further connects hang in SYN_SENT
// (the kernel drops their SYNs), which is how an unresponsive host looks.
struct hanging_listener {
  explicit hanging_listener(asio::io_context& io) : acceptor(io) {
    acceptor.open(tcp::v4());
    acceptor.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    acceptor.listen(0);
    for (int i = 0; i < 8; ++i) {
      tcp::socket s(io);
      s.open(tcp::v4());
      s.non_blocking(true);
      // Raw connect(2): asio's synchronous connect() waits for completion
      // even on a non-blocking socket.
      const auto ep = acceptor.local_endpoint();
      (void)::connect(s.native_handle(), ep.data(), static_cast<socklen_t>(ep.size()));
      pollfd p{s.native_handle(), POLLOUT, 0};
      const bool connected = ::poll(&p, 1, 200) == 1;
      fillers.push_back(std::move(s));
      if (!connected) {
        hangs = true;
        return;
      }
    }
  }
  tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }
  tcp::acceptor acceptor;
  std::vector<tcp::socket> fillers;
  bool hangs = false;
};

bool has_pending_connection(tcp::acceptor& acc) {
  acc.non_blocking(true);
  error_code ec;
  tcp::socket s = acc.accept(ec);
  return !ec;
}

class ConnectAnyTest : public ::testing::Test {
 protected:
  connect_outcome connect(std::vector<tcp::endpoint> candidates, const connect_options& o = {},
                          std::chrono::milliseconds bound = 5s) {
    connect_outcome out;
    cs::upstream::async_connect_any(io.get_executor(), std::move(candidates), o, recorder(out));
    EXPECT_TRUE(run_until(io, [&] { return out.done; }, bound));
    return out;
  }
  asio::io_context io;
};

TEST_F(ConnectAnyTest, ConnectsToListeningPort) {
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const auto out = connect({acc.local_endpoint()});
  ASSERT_FALSE(out.ec) << out.ec.message();
  ASSERT_TRUE(out.socket && out.socket->is_open());
  EXPECT_EQ(out.remote, acc.local_endpoint());
  EXPECT_EQ(out.socket->remote_endpoint(), acc.local_endpoint());
  tcp::no_delay nd;
  out.socket->get_option(nd);
  EXPECT_TRUE(nd.value()) << "the winner has TCP_NODELAY";
  EXPECT_TRUE(has_pending_connection(acc));
  EXPECT_EQ(out.calls, 1);
}

TEST_F(ConnectAnyTest, RefusedPort) {
  const auto out = connect({closed_port(io)});
  EXPECT_EQ(out.ec, asio::error::connection_refused) << out.ec.message();
  EXPECT_EQ(cs::core::to_reply_code(out.ec), cs::core::reply_code::connection_refused);
  ASSERT_TRUE(out.socket);
  EXPECT_FALSE(out.socket->is_open());
}

TEST_F(ConnectAnyTest, EmptyCandidateListIsHostUnreachable) {
  const auto out = connect({});
  EXPECT_EQ(out.ec, asio::error::host_unreachable);
}

TEST_F(ConnectAnyTest, RefusedV6ThenV4WorksWithoutWaitingForTheDelay) {
  tcp::acceptor v4(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const auto v6_closed = closed_port(io, asio::ip::address_v6::loopback());
  connect_options o;
  o.attempt_delay = 10s;  // a refusal must start the next attempt at once
  const auto start = clock_type::now();
  const auto out = connect({v6_closed, v4.local_endpoint()}, o);
  ASSERT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.remote, v4.local_endpoint());
  EXPECT_LT(clock_type::now() - start, 2s);
}

TEST_F(ConnectAnyTest, AllRefusedReportsRefused) {
  connect_options o;
  o.attempt_delay = 10s;
  const auto out = connect({closed_port(io, asio::ip::address_v6::loopback()), closed_port(io), closed_port(io)}, o);
  EXPECT_EQ(out.ec, asio::error::connection_refused) << out.ec.message();
  EXPECT_EQ(out.calls, 1);
}

TEST_F(ConnectAnyTest, UnresponsiveFirstCandidateFallsBackAfterAttemptDelay) {
  hanging_listener hang(io);
  if (!hang.hangs) {
    GTEST_SKIP() << "could not make a connect hang on this kernel";
  }
  tcp::acceptor good(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  connect_options o;
  o.attempt_delay = 150ms;
  const auto start = clock_type::now();
  const auto out = connect({hang.endpoint(), good.local_endpoint()}, o);
  const auto took = clock_type::now() - start;
  ASSERT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.remote, good.local_endpoint());
  EXPECT_GE(took, 140ms) << "the second attempt starts after attempt_delay";
  EXPECT_LT(took, 3s);
}

TEST_F(ConnectAnyTest, CancellationAbandonsAllAttempts) {
  hanging_listener hang(io);
  if (!hang.hangs) {
    GTEST_SKIP() << "could not make a connect hang on this kernel";
  }
  asio::cancellation_signal sig;
  connect_outcome out;
  connect_options o;
  o.attempt_delay = 50ms;
  cs::upstream::async_connect_any(io.get_executor(), {hang.endpoint(), hang.endpoint()}, o,
                                  asio::bind_cancellation_slot(sig.slot(), recorder(out)));
  // Let both attempts start (the second after 50 ms).
  asio::steady_timer t(io, 120ms);
  bool fired = false;
  t.async_wait([&](error_code) {
    fired = true;
    sig.emit(asio::cancellation_type::terminal);
  });
  ASSERT_TRUE(run_until(io, [&] { return out.done; }, 3s));
  EXPECT_TRUE(fired);
  EXPECT_EQ(out.ec, asio::error::operation_aborted) << out.ec.message();
  // Nothing else arrives later.
  io.restart();
  io.run_for(100ms);
  EXPECT_EQ(out.calls, 1);
}

TEST_F(ConnectAnyTest, BindsTheEgressAddress) {
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  connect_options o;
  o.bind_v4 = asio::ip::make_address_v4("127.0.0.2");
  const auto out = connect({acc.local_endpoint()}, o);
  ASSERT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.socket->local_endpoint().address(), asio::ip::make_address("127.0.0.2"));
  tcp::socket peer = acc.accept();
  EXPECT_EQ(peer.remote_endpoint().address(), asio::ip::make_address("127.0.0.2"));
}

TEST_F(ConnectAnyTest, UnbindableEgressAddressFails) {
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  connect_options o;
  o.bind_v4 = asio::ip::make_address_v4("192.0.2.123");  // TEST-NET-1: not local
  const auto out = connect({acc.local_endpoint()}, o);
  EXPECT_EQ(out.ec, error_code(EADDRNOTAVAIL, boost::system::system_category())) << out.ec.message();
  EXPECT_FALSE(has_pending_connection(acc));
}

// ------------------------------------------------------------------ dial_direct

class DialDirectTest : public ::testing::Test {
 protected:
  DialDirectTest() {
    dns.zone["svc.test"] = {{ip::make_address("127.0.0.1")}, 60};
    dns.zone["mapped.test"] = {{ip::make_address("::ffff:127.0.0.1")}, 60};
    dns.zone["both.test"] = {{ip::make_address("127.0.0.1"), ip::make_address("::1")}, 60};
    dns.zone["slow.test"] = {{}, 60, 0, true};
    resolver_options o;
    o.servers = {dns.endpoint()};
    o.query_timeout = 2s;
    o.tries = 1;
    res.emplace(io.get_executor(), o);
  }

  dial_result dial(const cs::core::target_address& target, const cs::upstream::address_check& check = {},
                   const connect_options& o = {}) {
    std::optional<dial_result> out;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { out.emplace(co_await cs::upstream::dial_direct(target, *res, o, check)); },
        [](std::exception_ptr e) { EXPECT_FALSE(e); });
    EXPECT_TRUE(run_until(io, [&] { return out.has_value(); }));
    if (!out) {
      return dial_result{asio::error::timed_out, tcp::socket(io), {}, false};
    }
    return std::move(*out);
  }

  static cs::core::target_address ip_target(const tcp::endpoint& ep) { return {ep.address(), ep.port()}; }
  static cs::core::target_address name_target(std::string_view n, std::uint16_t port) {
    return {cs::core::domain_name(n.data(), n.size()), port};
  }

  asio::io_context io;
  fake_dns dns{io};
  std::optional<resolver> res;
  tcp::acceptor listener{io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
};

TEST_F(DialDirectTest, IpLiteralNeedsNoDns) {
  const auto r = dial(ip_target(listener.local_endpoint()));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_FALSE(r.resolved);
  EXPECT_EQ(r.remote, listener.local_endpoint());
  EXPECT_TRUE(r.socket.is_open());
  EXPECT_EQ(dns.total_queries(), 0);
}

TEST_F(DialDirectTest, IpLiteralSentAsDomainNeedsNoDns) {
  const auto r = dial(name_target("127.0.0.1", listener.local_endpoint().port()));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_FALSE(r.resolved);
  EXPECT_EQ(dns.total_queries(), 0);
}

TEST_F(DialDirectTest, NameResolvesConnectsAndIsCached) {
  const auto port = listener.local_endpoint().port();
  auto r = dial(name_target("svc.test", port));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_TRUE(r.resolved);
  EXPECT_EQ(r.remote, listener.local_endpoint());
  const int queries = dns.total_queries();
  EXPECT_GE(queries, 1);
  EXPECT_EQ(res->stats().cache_hits.value(), 0u);

  r = dial(name_target("SVC.test", port));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_TRUE(r.resolved);
  EXPECT_EQ(res->stats().cache_hits.value(), 1u) << "second dial served from the cache";
  EXPECT_EQ(dns.total_queries(), queries);
}

TEST_F(DialDirectTest, UnknownNameIsHostNotFound) {
  const auto r = dial(name_target("nope.test", 80));
  EXPECT_EQ(r.ec, socks_errc::host_not_found) << r.ec.message();
  EXPECT_TRUE(r.resolved);
  EXPECT_EQ(cs::core::to_reply_code(r.ec), cs::core::reply_code::host_unreachable);
  // And again from the negative cache.
  const auto again = dial(name_target("nope.test", 80));
  EXPECT_EQ(again.ec, socks_errc::host_not_found);
  EXPECT_EQ(res->stats().cache_hits.value(), 1u);
}

TEST_F(DialDirectTest, RefusedPort) {
  const auto r = dial(ip_target(closed_port(io)));
  EXPECT_EQ(r.ec, asio::error::connection_refused) << r.ec.message();
}

TEST_F(DialDirectTest, CheckRefusingEverythingGivesItsErrorAndDialsNothing) {
  std::vector<ip::address> checked;
  const cs::upstream::address_check deny = [&](const ip::address& a) -> error_code {
    checked.push_back(a);
    return socks_errc::not_allowed;
  };
  auto r = dial(ip_target(listener.local_endpoint()), deny);
  EXPECT_EQ(r.ec, socks_errc::not_allowed) << r.ec.message();
  EXPECT_EQ(cs::core::to_reply_code(r.ec), cs::core::reply_code::not_allowed);
  r = dial(name_target("both.test", listener.local_endpoint().port()), deny);
  EXPECT_EQ(r.ec, socks_errc::not_allowed);
  EXPECT_EQ(checked.size(), 3u) << "every resolved address is checked";
  EXPECT_FALSE(has_pending_connection(listener)) << "nothing was dialled";
}

TEST_F(DialDirectTest, CheckSeesUnmappedAddresses) {
  std::vector<ip::address> checked;
  const cs::upstream::address_check record = [&](const ip::address& a) -> error_code {
    checked.push_back(a);
    return {};
  };
  const auto r = dial(name_target("mapped.test", listener.local_endpoint().port()), record);
  ASSERT_FALSE(r.ec) << r.ec.message();
  ASSERT_EQ(checked.size(), 1u);
  EXPECT_TRUE(checked[0].is_v4()) << checked[0].to_string();
  EXPECT_EQ(checked[0], ip::make_address("127.0.0.1"));
  EXPECT_TRUE(r.remote.address().is_v4());
}

TEST_F(DialDirectTest, CheckFiltersIndividualAddresses) {
  // both.test has 127.0.0.1 and ::1; listen only on ::1 (same port).
  tcp::acceptor v6(io, tcp::endpoint(asio::ip::address_v6::loopback(), 0));
  const auto port = v6.local_endpoint().port();
  const cs::upstream::address_check no_v6 = [](const ip::address& a) -> error_code {
    return a.is_v6() ? error_code(socks_errc::not_allowed) : error_code{};
  };
  const cs::upstream::address_check no_v4 = [](const ip::address& a) -> error_code {
    return a.is_v4() ? error_code(socks_errc::not_allowed) : error_code{};
  };
  auto r = dial(name_target("both.test", port), no_v4);
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.remote, v6.local_endpoint());
  ASSERT_TRUE(has_pending_connection(v6));

  r = dial(name_target("both.test", port), no_v6);
  // Only 127.0.0.1:port is dialled, where nothing listens (almost surely).
  EXPECT_EQ(r.ec, asio::error::connection_refused) << r.ec.message();
  EXPECT_FALSE(has_pending_connection(v6)) << "::1 must not have been dialled";
}

TEST_F(DialDirectTest, FamilyPreferenceLeavingNothingIsAddressFamilyError) {
  connect_options o;
  o.family = family_preference::only_v6;
  const auto r = dial(ip_target(listener.local_endpoint()), {}, o);
  EXPECT_EQ(r.ec, asio::error::address_family_not_supported) << r.ec.message();
  EXPECT_EQ(cs::core::to_reply_code(r.ec), cs::core::reply_code::address_type_not_supported);
}

TEST_F(DialDirectTest, CancellationDuringResolution) {
  asio::cancellation_signal sig;
  bool done = false;
  error_code got;
  const auto target = name_target("slow.test", 80);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        const auto r = co_await cs::upstream::dial_direct(target, *res, {}, {});
        got = r.ec;
      },
      asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
        done = true;
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const boost::system::system_error& se) {
            got = se.code();
          } catch (...) {
            ADD_FAILURE() << "unexpected exception";
          }
        }
      }));
  ASSERT_TRUE(run_until(io, [&] { return dns.queries_for("slow.test") >= 1; }, 2s));
  const auto start = clock_type::now();
  sig.emit(asio::cancellation_type::terminal);
  ASSERT_TRUE(run_until(io, [&] { return done; }, 1500ms));
  EXPECT_LT(clock_type::now() - start, 1s) << "cancellation must not wait for the DNS timeout";
  EXPECT_EQ(got, asio::error::operation_aborted) << got.message();
}

}  // namespace
