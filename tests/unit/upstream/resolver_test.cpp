#include "upstream/resolver.hpp"

#include "test_support.hpp"
#include "upstream/fake_dns.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace cs::test;
namespace asio = boost::asio;
namespace ip = cs::core::ip;
using cs::core::error_code;
using cs::core::socks_errc;
using cs::upstream::address_list;
using cs::upstream::resolver;
using cs::upstream::resolver_options;

std::vector<std::string> sorted(const address_list& l) {
  std::vector<std::string> out;
  for (const auto& a : l) {
    out.push_back(a.to_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct outcome {
  bool done = false;
  int calls = 0;
  error_code ec;
  address_list addresses;
};

class ResolverTest : public ::testing::Test {
 protected:
  ResolverTest() {
    dns.zone["dual.test"] = {{ip::make_address("192.0.2.1"), ip::make_address("2001:db8::1")}, 60};
    dns.zone["v4.test"] = {{ip::make_address("192.0.2.10"), ip::make_address("192.0.2.11")}, 60};
    dns.zone["ttl0.test"] = {{ip::make_address("192.0.2.20")}, 0};
    dns.zone["nodata.test"] = {{}, 60};
    dns.zone["servfail.test"] = {{}, 60, fake_dns::rcode_servfail};
    dns.zone["slow.test"] = {{}, 60, 0, true};
    dns.zone["co.test"] = {{ip::make_address("192.0.2.30")}, 60};
  }

  resolver_options options() const {
    resolver_options o;
    o.servers = {dns.endpoint()};
    o.query_timeout = 500ms;
    o.tries = 1;
    return o;
  }

  // Starts a lookup whose handler records into `out`.
  static auto recorder(outcome& out) {
    return [&out](error_code ec, address_list l) {
      ++out.calls;
      out.done = true;
      out.ec = ec;
      out.addresses = std::move(l);
    };
  }

  outcome resolve(resolver& r, const std::string& name) {
    outcome out;
    r.async_resolve(name, recorder(out));
    EXPECT_TRUE(run_until(io, [&] { return out.done; })) << name;
    return out;
  }

  asio::io_context io;
  fake_dns dns{io};
};

TEST_F(ResolverTest, ResolvesAAndAAAA) {
  resolver r(io.get_executor(), options());
  const auto out = resolve(r, "dual.test");
  EXPECT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(sorted(out.addresses), (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  EXPECT_EQ(dns.queries("dual.test", fake_dns::type_a), 1);
  EXPECT_EQ(dns.queries("dual.test", fake_dns::type_aaaa), 1);
  EXPECT_EQ(r.stats().lookups.value(), 1u);
  EXPECT_EQ(r.stats().failures.value(), 0u);
  EXPECT_EQ(r.stats().cache_hits.value(), 0u);
}

TEST_F(ResolverTest, HandlerNeverRunsInsideTheCall) {
  resolver r(io.get_executor(), options());
  outcome out;
  r.async_resolve("dual.test", recorder(out));
  EXPECT_FALSE(out.done);
  ASSERT_TRUE(run_until(io, [&] { return out.done; }));
  EXPECT_EQ(out.calls, 1);
}

TEST_F(ResolverTest, SecondLookupServedFromCache) {
  resolver r(io.get_executor(), options());
  EXPECT_FALSE(r.cached("v4.test").has_value()) << "nothing cached yet";
  EXPECT_EQ(r.stats().cache_hits.value(), 0u);
  const auto first = resolve(r, "v4.test");
  ASSERT_FALSE(first.ec);
  const int queries = dns.total_queries();

  const auto hit = r.cached("v4.test");
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->first);
  EXPECT_EQ(sorted(hit->second), (std::vector<std::string>{"192.0.2.10", "192.0.2.11"}));
  EXPECT_EQ(r.stats().cache_hits.value(), 1u);

  // Case and the trailing dot do not matter.
  ASSERT_TRUE(r.cached("V4.Test.").has_value());
  EXPECT_EQ(r.stats().cache_hits.value(), 2u);
  EXPECT_EQ(dns.total_queries(), queries) << "no new query for a cached name";
  EXPECT_FALSE(r.cached("other.test").has_value());
}

TEST_F(ResolverTest, ZeroTtlIsClampedToMinTtl) {
  resolver r(io.get_executor(), options());  // min_ttl 1 s
  ASSERT_FALSE(resolve(r, "ttl0.test").ec);
  EXPECT_TRUE(r.cached("ttl0.test").has_value());
}

TEST_F(ResolverTest, ZeroTtlWithZeroMinTtlIsNotCached) {
  auto o = options();
  o.min_ttl = 0s;
  resolver r(io.get_executor(), o);
  ASSERT_FALSE(resolve(r, "ttl0.test").ec);
  EXPECT_FALSE(r.cached("ttl0.test").has_value());
}

TEST_F(ResolverTest, NxdomainIsHostNotFoundAndNegativelyCached) {
  resolver r(io.get_executor(), options());
  const auto out = resolve(r, "nx.test");
  EXPECT_EQ(out.ec, socks_errc::host_not_found) << out.ec.message();
  EXPECT_TRUE(out.addresses.empty());
  EXPECT_EQ(r.stats().failures.value(), 1u);
  const auto hit = r.cached("nx.test");
  ASSERT_TRUE(hit.has_value()) << "negative answers are cached";
  EXPECT_EQ(hit->first, socks_errc::host_not_found);
  EXPECT_TRUE(hit->second.empty());
  EXPECT_EQ(r.stats().cache_hits.value(), 1u);
}

TEST_F(ResolverTest, NegativeCachingCanBeTurnedOff) {
  auto o = options();
  o.negative_ttl = 0s;
  resolver r(io.get_executor(), o);
  EXPECT_EQ(resolve(r, "nx.test").ec, socks_errc::host_not_found);
  EXPECT_FALSE(r.cached("nx.test").has_value());
}

TEST_F(ResolverTest, NoDataIsHostNotFound) {
  resolver r(io.get_executor(), options());
  EXPECT_EQ(resolve(r, "nodata.test").ec, socks_errc::host_not_found);
}

TEST_F(ResolverTest, ServfailIsDnsFailureAndNotCached) {
  resolver r(io.get_executor(), options());
  const auto out = resolve(r, "servfail.test");
  EXPECT_EQ(out.ec, socks_errc::dns_failure) << out.ec.message();
  EXPECT_FALSE(r.cached("servfail.test").has_value()) << "a server hiccup is not pinned";
  EXPECT_EQ(r.stats().failures.value(), 1u);
}

TEST_F(ResolverTest, TimeoutIsDnsFailure) {
  auto o = options();
  o.query_timeout = 200ms;
  resolver r(io.get_executor(), o);
  const auto start = std::chrono::steady_clock::now();
  const auto out = resolve(r, "slow.test");
  EXPECT_EQ(out.ec, socks_errc::dns_failure) << out.ec.message();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_FALSE(r.cached("slow.test").has_value());
}

TEST_F(ResolverTest, ConcurrentLookupsAreCoalesced) {
  resolver r(io.get_executor(), options());
  outcome a;
  outcome b;
  outcome c;
  r.async_resolve("co.test", recorder(a));
  r.async_resolve("CO.Test.", recorder(b));
  r.async_resolve("co.test", recorder(c));
  ASSERT_TRUE(run_until(io, [&] { return a.done && b.done && c.done; }));
  for (const auto* o : {&a, &b, &c}) {
    EXPECT_FALSE(o->ec) << o->ec.message();
    EXPECT_EQ(sorted(o->addresses), (std::vector<std::string>{"192.0.2.30"}));
    EXPECT_EQ(o->calls, 1);
  }
  EXPECT_EQ(r.stats().lookups.value(), 1u);
  EXPECT_EQ(r.stats().coalesced.value(), 2u);
  EXPECT_EQ(dns.queries("co.test", fake_dns::type_a), 1) << "one query on the wire";
}

TEST_F(ResolverTest, DifferentNamesAreNotCoalesced) {
  resolver r(io.get_executor(), options());
  outcome a;
  outcome b;
  r.async_resolve("co.test", recorder(a));
  r.async_resolve("v4.test", recorder(b));
  ASSERT_TRUE(run_until(io, [&] { return a.done && b.done; }));
  EXPECT_EQ(r.stats().lookups.value(), 2u);
  EXPECT_EQ(r.stats().coalesced.value(), 0u);
  EXPECT_EQ(sorted(b.addresses).size(), 2u);
}

TEST_F(ResolverTest, CancellationAbortsOneWaiterAndResolverStaysUsable) {
  auto o = options();
  o.query_timeout = 1500ms;
  resolver r(io.get_executor(), o);
  asio::cancellation_signal sig;
  outcome cancelled;
  outcome other;
  r.async_resolve("slow.test", asio::bind_cancellation_slot(sig.slot(), recorder(cancelled)));
  r.async_resolve("slow.test", recorder(other));  // coalesced, not cancelled
  ASSERT_TRUE(run_until(io, [&] { return dns.queries_for("slow.test") >= 2; }, 2s)) << "query in flight";
  EXPECT_FALSE(cancelled.done);

  const auto start = std::chrono::steady_clock::now();
  sig.emit(asio::cancellation_type::terminal);
  ASSERT_TRUE(run_until(io, [&] { return cancelled.done; }, 1s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms) << "cancellation must not wait for the timeout";
  EXPECT_EQ(cancelled.ec, asio::error::operation_aborted) << cancelled.ec.message();
  EXPECT_FALSE(other.done) << "the other waiter is unaffected";

  // The resolver still works while the abandoned query is pending.
  const auto fresh = resolve(r, "dual.test");
  EXPECT_FALSE(fresh.ec) << fresh.ec.message();
  EXPECT_EQ(fresh.addresses.size(), 2u);

  // The remaining waiter gets the real outcome (a timeout), exactly once;
  // the cancelled one is never called again.
  ASSERT_TRUE(run_until(io, [&] { return other.done; }, 5s));
  EXPECT_EQ(other.ec, socks_errc::dns_failure);
  io.restart();
  io.poll();
  EXPECT_EQ(cancelled.calls, 1);
  EXPECT_EQ(other.calls, 1);
}

TEST_F(ResolverTest, CancellingTheOnlyWaiterThenLookingUpAgain) {
  auto o = options();
  o.query_timeout = 300ms;
  resolver r(io.get_executor(), o);
  asio::cancellation_signal sig;
  outcome first;
  r.async_resolve("slow.test", asio::bind_cancellation_slot(sig.slot(), recorder(first)));
  ASSERT_TRUE(run_until(io, [&] { return dns.queries_for("slow.test") >= 2; }, 2s));
  sig.emit(asio::cancellation_type::terminal);
  ASSERT_TRUE(run_until(io, [&] { return first.done; }, 1s));
  EXPECT_EQ(first.ec, asio::error::operation_aborted);
  // Emitting again after completion is harmless.
  sig.emit(asio::cancellation_type::terminal);
  // A new lookup of the same name still completes (joins or restarts).
  const auto again = resolve(r, "slow.test");
  EXPECT_EQ(again.ec, socks_errc::dns_failure);
  EXPECT_EQ(first.calls, 1);
}

TEST_F(ResolverTest, DestroyingTheResolverAbortsPendingLookups) {
  outcome pending;
  {
    resolver r(io.get_executor(), options());
    r.async_resolve("slow.test", recorder(pending));
    ASSERT_TRUE(run_until(io, [&] { return dns.queries_for("slow.test") >= 2; }, 2s));
  }
  ASSERT_TRUE(run_until(io, [&] { return pending.done; }, 2s));
  EXPECT_EQ(pending.ec, asio::error::operation_aborted) << pending.ec.message();
  // Drain whatever the destroyed resolver left queued.
  io.restart();
  io.run_for(100ms);
  EXPECT_EQ(pending.calls, 1);
}

TEST_F(ResolverTest, CacheCapacityIsBounded) {
  auto o = options();
  o.cache_capacity = 2;
  resolver r(io.get_executor(), o);
  for (const char* n : {"v4.test", "dual.test", "co.test"}) {
    ASSERT_FALSE(resolve(r, n).ec) << n;
  }
  int hits = 0;
  for (const char* n : {"v4.test", "dual.test", "co.test"}) {
    hits += r.cached(n).has_value() ? 1 : 0;
  }
  EXPECT_EQ(hits, 2) << "at most cache_capacity entries";
}

TEST_F(ResolverTest, CacheCanBeDisabled) {
  auto o = options();
  o.cache_capacity = 0;
  resolver r(io.get_executor(), o);
  ASSERT_FALSE(resolve(r, "v4.test").ec);
  EXPECT_FALSE(r.cached("v4.test").has_value());
}

TEST_F(ResolverTest, OddNamesFailCleanly) {
  // Names a SOCKS5 client can send (1..255 bytes, no NUL) that are not valid
  // DNS names must complete with an error, not crash or hang.
  resolver r(io.get_executor(), options());
  for (const std::string& name : {std::string("."), std::string("a..b"), std::string(".."), std::string(64, 'l') + ".test",
                                  std::string(255, 'x'), std::string("sp ace.test"), std::string("\xff\xfe.test")}) {
    const auto out = resolve(r, name);
    EXPECT_TRUE(out.ec == socks_errc::host_not_found || out.ec == socks_errc::dns_failure)
        << '"' << name << "\": " << out.ec.message();
    EXPECT_TRUE(out.addresses.empty());
  }
}

TEST(ResolverConstruction, ExplicitServerListIsAccepted) {
  asio::io_context io;
  resolver_options o;
  o.servers = {ip::udp::endpoint(ip::make_address("127.0.0.1"), 53)};
  EXPECT_NO_THROW(resolver(io.get_executor(), o));
}

}  // namespace
