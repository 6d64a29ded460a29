// routing/pool: the circuit breaker of a member (closed -> open after N
// failures -> half-open single trial -> closed on success, back-off doubling
// up to the cap), the strategies' candidate ordering, the member registry,
// and parse_pool_source (proxybroker2 JSON and URL lines).
#include "routing/pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using cs::routing::breaker_settings;
using cs::routing::breaker_state;
using cs::routing::hash_key;
using cs::routing::member_state;
using cs::routing::pick_context;
using cs::routing::pool;
using cs::routing::steady;
using cs::routing::strategy;
using cs::upstream::proxy_url;
namespace ip = cs::core::ip;

proxy_url url(std::string_view text) {
  proxy_url u;
  EXPECT_TRUE(cs::upstream::parse_proxy_url(text, u)) << text;
  return u;
}

// Fresh member states (not from the process-wide registry), one per port.
std::shared_ptr<member_state> member(int port) {
  return std::make_shared<member_state>(url("socks5://127.0.0.1:" + std::to_string(port)));
}

const breaker_settings B{3, 1000ms, 8000ms};

// ------------------------------------------------------------ circuit breaker

TEST(Breaker, ClosedUntilNConsecutiveFailures) {
  auto m = member(1);
  const auto t0 = steady::now();
  EXPECT_EQ(m->state(), breaker_state::closed);
  EXPECT_TRUE(m->admits(t0));
  m->on_failure(t0, B);
  m->on_failure(t0, B);
  EXPECT_EQ(m->state(), breaker_state::closed);
  EXPECT_TRUE(m->admits(t0));
  EXPECT_EQ(m->failures(), 2u);
  m->on_failure(t0, B);
  EXPECT_EQ(m->state(), breaker_state::open);
  EXPECT_FALSE(m->admits(t0));
  EXPECT_FALSE(m->healthy_or_due(t0));
  EXPECT_EQ(m->open_until(), t0 + 1000ms);
}

TEST(Breaker, SuccessResetsTheConsecutiveCount) {
  auto m = member(2);
  const auto t0 = steady::now();
  m->on_failure(t0, B);
  m->on_failure(t0, B);
  m->on_success(1ms);
  m->on_failure(t0, B);
  m->on_failure(t0, B);
  EXPECT_EQ(m->state(), breaker_state::closed);
  EXPECT_EQ(m->failures(), 4u);  // the counter counts them all
}

TEST(Breaker, HalfOpenAdmitsExactlyOneTrial) {
  auto m = member(3);
  const auto t0 = steady::now();
  for (int i = 0; i < 3; ++i) {
    m->on_failure(t0, B);
  }
  const auto due = t0 + 1000ms;
  EXPECT_FALSE(m->admits(due - 1ns));
  EXPECT_TRUE(m->healthy_or_due(due));
  EXPECT_TRUE(m->admits(due));  // the trial
  EXPECT_EQ(m->state(), breaker_state::half_open);
  EXPECT_FALSE(m->admits(due));  // nobody else while it runs
  EXPECT_FALSE(m->admits(due + 10s));
  EXPECT_FALSE(m->healthy_or_due(due));
}

TEST(Breaker, TrialSuccessCloses) {
  auto m = member(4);
  const auto t0 = steady::now();
  for (int i = 0; i < 3; ++i) {
    m->on_failure(t0, B);
  }
  ASSERT_TRUE(m->admits(t0 + 1s));
  m->on_success(2ms);
  EXPECT_EQ(m->state(), breaker_state::closed);
  EXPECT_TRUE(m->admits(t0 + 1s));
  EXPECT_TRUE(m->admits(t0 + 1s));  // closed: everyone
  // And the back-off starts from the base again next time.
  const auto t1 = t0 + 1h;
  for (int i = 0; i < 3; ++i) {
    m->on_failure(t1, B);
  }
  EXPECT_EQ(m->open_until(), t1 + 1000ms);
}

TEST(Breaker, TrialFailureReopensForTwiceAsLongUpToTheCap) {
  auto m = member(5);
  auto t = steady::now();
  for (int i = 0; i < 3; ++i) {
    m->on_failure(t, B);
  }
  std::vector<std::chrono::milliseconds> backoffs{std::chrono::duration_cast<std::chrono::milliseconds>(m->open_until() - t)};
  for (int round = 0; round < 5; ++round) {
    t = m->open_until();
    ASSERT_TRUE(m->admits(t)) << round;
    ASSERT_EQ(m->state(), breaker_state::half_open);
    m->on_failure(t, B);  // one failure in half-open re-opens at once
    ASSERT_EQ(m->state(), breaker_state::open);
    backoffs.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(m->open_until() - t));
  }
  const std::vector<std::chrono::milliseconds> want{1000ms, 2000ms, 4000ms, 8000ms, 8000ms, 8000ms};
  EXPECT_EQ(backoffs, want);
}

TEST(Breaker, ProbeFailuresWhileOpenKeepDoubling) {
  // Active probes call on_failure while the member is open (not half-open):
  // each is a new ejection, longer than the last.
  auto m = member(6);
  const auto t0 = steady::now();
  for (int i = 0; i < 3; ++i) {
    m->on_failure(t0, B);
  }
  m->on_failure(t0 + 100ms, B);
  EXPECT_EQ(m->state(), breaker_state::open);
  EXPECT_EQ(m->open_until(), t0 + 100ms + 2000ms);
  // A passing probe (on_success) closes it, whatever the state.
  m->on_success(1ms);
  EXPECT_EQ(m->state(), breaker_state::closed);
  EXPECT_TRUE(m->admits(t0 + 100ms));
}

TEST(Breaker, OneFailureToEject) {
  auto m = member(7);
  const auto t0 = steady::now();
  m->on_failure(t0, breaker_settings{1, 50ms, 1s});
  EXPECT_EQ(m->state(), breaker_state::open);
  // 0 is treated as 1 (never "never eject").
  auto z = member(8);
  z->on_failure(t0, breaker_settings{0, 50ms, 1s});
  EXPECT_EQ(z->state(), breaker_state::open);
}

TEST(Breaker, DrainedMembersAdmitNothing) {
  auto m = member(9);
  const auto t0 = steady::now();
  m->set_drained(true);
  EXPECT_TRUE(m->drained());
  EXPECT_FALSE(m->admits(t0));
  EXPECT_FALSE(m->healthy_or_due(t0));
  EXPECT_EQ(m->state(), breaker_state::closed);  // draining is not a breaker state
  m->set_drained(false);
  EXPECT_TRUE(m->admits(t0));
}

TEST(Breaker, LatencyIsAnEwmaWithAlphaOneQuarter) {
  auto m = member(10);
  EXPECT_EQ(m->latency_us(), -1);
  m->on_success(1000us);
  EXPECT_EQ(m->latency_us(), 1000);
  m->on_success(5000us);
  EXPECT_EQ(m->latency_us(), 2000);  // 1000 + (5000 - 1000) / 4
  m->on_success(2000us);
  EXPECT_EQ(m->latency_us(), 2000);
  std::uint64_t observed = 0;
  for (std::size_t i = 0; i <= cs::obs::histogram::bounds.size(); ++i) {
    observed += m->latency().bucket(i);
  }
  EXPECT_EQ(observed, 3u);
  EXPECT_EQ(m->latency().sum_us(), 8000u);
}

TEST(Breaker, SessionAccounting) {
  auto m = member(11);
  m->session_started();
  m->session_started();
  m->session_ended();
  EXPECT_EQ(m->active(), 1);
  EXPECT_EQ(m->sessions(), 2u);
}

TEST(Breaker, StateNames) {
  EXPECT_EQ(cs::routing::to_string(breaker_state::closed), "closed");
  EXPECT_EQ(cs::routing::to_string(breaker_state::half_open), "half_open");
  EXPECT_EQ(cs::routing::to_string(breaker_state::open), "open");
}

// ------------------------------------------------------------ ids and the registry

TEST(Members, IdsAreStableUrlSafeAndNeverShowThePassword) {
  const member_state a(url("socks5://alice:secret@h.example:1080"));
  const member_state same(url("socks5://alice:secret@h.example:1080"));
  const member_state other_user(url("socks5://bob:secret@h.example:1080"));
  EXPECT_EQ(a.id(), same.id());
  EXPECT_NE(a.id(), other_user.id());
  ASSERT_EQ(a.id().size(), 13u);
  EXPECT_EQ(a.id()[0], 'u');
  EXPECT_TRUE(std::all_of(a.id().begin() + 1, a.id().end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); }));
  EXPECT_EQ(a.name(), "socks5://alice:***@h.example:1080");
  EXPECT_EQ(a.id().find("secret"), std::string::npos);
}

TEST(Members, RegistryKeepsStateAcrossLookups) {
  auto& reg = cs::routing::global_members();
  const auto a = reg.get(url("socks5://registry-test.example:1"));
  const auto b = reg.get(url("socks5h://registry-test.example:1"));  // same proxy
  const auto c = reg.get(url("socks5://other:pw@registry-test.example:1"));
  const auto d = reg.get(url("socks4://registry-test.example:1"));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  a->set_drained(true);
  EXPECT_TRUE(reg.get(url("socks5://registry-test.example:1"))->drained());
  a->set_drained(false);
}

// ------------------------------------------------------------ strategies

struct fixture {
  std::vector<std::shared_ptr<member_state>> states;
  std::vector<pool::member> members;

  explicit fixture(int n, int base, std::vector<unsigned> weights = {}) {
    for (int i = 0; i < n; ++i) {
      states.push_back(member(base + i));
      members.push_back({states.back(), weights.empty() ? 1u : weights[static_cast<std::size_t>(i)]});
    }
  }
  pool make(strategy s, unsigned max_tries = 10, hash_key k = hash_key::client_ip) const {
    return pool(members, s, k, max_tries, B);
  }
  int index(const std::shared_ptr<member_state>& m) const {
    return static_cast<int>(std::find(states.begin(), states.end(), m) - states.begin());
  }
  std::vector<int> order(const pool& p, const pick_context& ctx = {}) const {
    std::vector<int> out;
    for (const auto& m : p.candidates(ctx)) {
      out.push_back(index(m));
    }
    return out;
  }
};

TEST(Strategy, RoundRobinRotates) {
  const fixture f(3, 100);
  const auto p = f.make(strategy::round_robin);
  EXPECT_EQ(f.order(p), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(f.order(p), (std::vector<int>{1, 2, 0}));
  EXPECT_EQ(f.order(p), (std::vector<int>{2, 0, 1}));
  EXPECT_EQ(f.order(p), (std::vector<int>{0, 1, 2}));
  std::map<int, int> first;
  for (int i = 0; i < 999; ++i) {
    ++first[f.order(p)[0]];
  }
  EXPECT_EQ(first, (std::map<int, int>{{0, 333}, {1, 333}, {2, 333}}));
}

TEST(Strategy, CandidatesAreBoundedByMaxTries) {
  const fixture f(5, 110);
  EXPECT_EQ(f.order(f.make(strategy::round_robin, 2)).size(), 2u);
  EXPECT_EQ(f.order(f.make(strategy::random, 3)).size(), 3u);
  EXPECT_EQ(f.order(f.make(strategy::hash, 1)).size(), 1u);
  EXPECT_EQ(f.order(f.make(strategy::round_robin, 0)).size(), 1u);  // at least one try
}

TEST(Strategy, OnlyEligibleMembers) {
  const fixture f(4, 120);
  const auto t0 = steady::now();
  f.states[1]->set_drained(true);
  for (int i = 0; i < 3; ++i) {
    f.states[2]->on_failure(t0, B);  // open for 1 s
  }
  f.states[3]->on_failure(t0 - 10s, B);
  f.states[3]->on_failure(t0 - 10s, B);
  f.states[3]->on_failure(t0 - 10s, B);  // open, but due: its half-open trial is available
  const auto p = f.make(strategy::round_robin);
  std::set<int> seen;
  for (int i = 0; i < 4; ++i) {
    const auto o = f.order(p);
    EXPECT_EQ(o.size(), 2u);
    seen.insert(o.begin(), o.end());
  }
  EXPECT_EQ(seen, (std::set<int>{0, 3}));
  // Ordering does not spend the half-open trial: the dialler claims it.
  EXPECT_EQ(f.states[3]->state(), breaker_state::open);
  EXPECT_TRUE(f.states[3]->admits(t0));
  EXPECT_EQ(f.order(p), (std::vector<int>{0}));  // the trial is taken: only member 0 is left
}

TEST(Strategy, NothingEligibleGivesNoCandidates) {
  const fixture f(2, 130);
  f.states[0]->set_drained(true);
  f.states[1]->set_drained(true);
  for (auto s : {strategy::round_robin, strategy::random, strategy::weighted, strategy::least_latency,
                 strategy::least_connections, strategy::hash}) {
    EXPECT_TRUE(f.make(s).candidates({}).empty());
  }
  const pool empty({}, strategy::round_robin, hash_key::client_ip, 3, B);
  EXPECT_TRUE(empty.candidates({}).empty());
}

TEST(Strategy, RandomIsAPermutationSpreadEvenly) {
  const fixture f(3, 140);
  const auto p = f.make(strategy::random);
  std::map<int, int> first;
  std::set<std::vector<int>> orders;
  for (int i = 0; i < 3000; ++i) {
    auto o = f.order(p);
    orders.insert(o);
    ++first[o[0]];
    std::sort(o.begin(), o.end());
    ASSERT_EQ(o, (std::vector<int>{0, 1, 2}));
  }
  EXPECT_EQ(orders.size(), 6u);  // all permutations occur
  for (const auto& [i, n] : first) {
    EXPECT_NEAR(n, 1000, 150) << i;  // sd ~26
  }
}

TEST(Strategy, WeightedFirstChoiceFollowsTheWeights) {
  const fixture f(3, 150, {1, 2, 7});
  const auto p = f.make(strategy::weighted);
  std::map<int, int> first;
  for (int i = 0; i < 10000; ++i) {
    const auto o = f.order(p);
    ASSERT_EQ(o.size(), 3u);
    ++first[o[0]];
  }
  EXPECT_NEAR(first[0], 1000, 200);
  EXPECT_NEAR(first[1], 2000, 250);
  EXPECT_NEAR(first[2], 7000, 300);
}

TEST(Strategy, WeightedNeverPicksAZeroShareTwice) {
  const fixture f(2, 160, {1, 1000});
  const auto p = f.make(strategy::weighted);
  for (int i = 0; i < 100; ++i) {
    auto o = f.order(p);
    std::sort(o.begin(), o.end());
    ASSERT_EQ(o, (std::vector<int>{0, 1}));  // the rest follow by remaining weight: no duplicates
  }
}

TEST(Strategy, LeastLatencyUnmeasuredFirstThenFastest) {
  const fixture f(4, 170);
  f.states[0]->on_success(9000us);
  f.states[1]->on_success(1000us);
  // 2 unmeasured
  f.states[3]->on_success(4000us);
  const auto p = f.make(strategy::least_latency);
  EXPECT_EQ(f.order(p), (std::vector<int>{2, 1, 3, 0}));
  EXPECT_EQ(f.order(p), (std::vector<int>{2, 1, 3, 0}));  // deterministic
  f.states[2]->on_success(20000us);
  EXPECT_EQ(f.order(p), (std::vector<int>{1, 3, 0, 2}));
}

TEST(Strategy, LeastConnectionsFewestActiveFirstTiesRotate) {
  const fixture f(3, 180);
  f.states[0]->session_started();
  f.states[0]->session_started();
  f.states[2]->session_started();
  const auto p = f.make(strategy::least_connections);
  EXPECT_EQ(f.order(p), (std::vector<int>{1, 2, 0}));
  f.states[0]->session_ended();
  f.states[0]->session_ended();
  f.states[2]->session_ended();
  std::map<int, int> first;
  for (int i = 0; i < 300; ++i) {
    ++first[f.order(p)[0]];
  }
  EXPECT_EQ(first, (std::map<int, int>{{0, 100}, {1, 100}, {2, 100}}));
}

pick_context ctx(std::string_view client, std::string_view user = "", std::string_view target = "") {
  return {ip::make_address(std::string(client)), user, target};
}

TEST(Strategy, HashIsStickyPerKey) {
  const fixture f(5, 190);
  const auto by_ip = f.make(strategy::hash, 10, hash_key::client_ip);
  std::set<int> owners;
  for (int i = 0; i < 50; ++i) {
    const auto c = ctx("10.0.0." + std::to_string(i));
    const auto o = f.order(by_ip, c);
    ASSERT_EQ(o.size(), 5u);
    EXPECT_EQ(f.order(by_ip, c), o);  // same key, same order, every time
    owners.insert(o[0]);
  }
  EXPECT_GE(owners.size(), 4u);  // 50 keys over 5 members

  // The key is what hash_key names, and only that.
  const auto by_user = f.make(strategy::hash, 10, hash_key::user);
  EXPECT_EQ(f.order(by_user, ctx("10.0.0.1", "alice")), f.order(by_user, ctx("10.9.9.9", "alice", "x:1")));
  const auto by_target = f.make(strategy::hash, 10, hash_key::target);
  EXPECT_EQ(f.order(by_target, ctx("10.0.0.1", "a", "api.test:443")),
            f.order(by_target, ctx("10.0.0.2", "b", "api.test:443")));
  std::set<int> target_owners;
  for (int i = 0; i < 40; ++i) {
    target_owners.insert(f.order(by_target, ctx("10.0.0.1", "", "t" + std::to_string(i) + ".test:443"))[0]);
  }
  EXPECT_GE(target_owners.size(), 3u);
}

TEST(Strategy, HashMovesOnlyTheKeysOfALostMember) {
  const fixture f(4, 200);
  const auto p = f.make(strategy::hash, 10, hash_key::target);
  std::map<std::string, int> owner;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i) + ":1";
    owner[key] = f.order(p, ctx("127.0.0.1", "", key))[0];
  }
  f.states[2]->set_drained(true);
  int moved = 0;
  for (const auto& [key, was] : owner) {
    const auto now = f.order(p, ctx("127.0.0.1", "", key));
    ASSERT_EQ(now.size(), 3u);
    if (was == 2) {
      ++moved;
      EXPECT_NE(now[0], 2);
    } else {
      EXPECT_EQ(now[0], was) << key;
    }
  }
  EXPECT_GT(moved, 0);
  f.states[2]->set_drained(false);
  for (const auto& [key, was] : owner) {
    EXPECT_EQ(f.order(p, ctx("127.0.0.1", "", key))[0], was);
  }
}

TEST(Strategy, Names) {
  strategy s = strategy::random;
  for (const auto& [text, want] : {std::pair{"round_robin", strategy::round_robin}, {"random", strategy::random},
                                   {"weighted", strategy::weighted}, {"least_latency", strategy::least_latency},
                                   {"least_connections", strategy::least_connections}, {"hash", strategy::hash}}) {
    EXPECT_TRUE(cs::routing::parse_strategy(text, s)) << text;
    EXPECT_EQ(s, want);
  }
  EXPECT_FALSE(cs::routing::parse_strategy("roundrobin", s));
  EXPECT_FALSE(cs::routing::parse_strategy("", s));
  hash_key k = hash_key::user;
  EXPECT_TRUE(cs::routing::parse_hash_key("client_ip", k));
  EXPECT_EQ(k, hash_key::client_ip);
  EXPECT_TRUE(cs::routing::parse_hash_key("user", k));
  EXPECT_EQ(k, hash_key::user);
  EXPECT_TRUE(cs::routing::parse_hash_key("target", k));
  EXPECT_EQ(k, hash_key::target);
  EXPECT_FALSE(cs::routing::parse_hash_key("ip", k));
}

// ------------------------------------------------------------ parse_pool_source

std::vector<std::string> urls_of(std::string_view text, std::vector<std::string>& errors) {
  std::vector<std::string> out;
  for (const auto& m : cs::routing::parse_pool_source(text, errors)) {
    EXPECT_EQ(m.weight, 1u);
    out.push_back(m.url);
  }
  return out;
}

TEST(PoolSource, ProxyBroker2Json) {
  // The shape of `proxybroker find --format json` output.
  const char* json = R"([
    {"host": "192.0.2.1", "port": 1080, "geo": {"country": {"code": "US", "name": "United States"},
     "region": {"code": "Unknown", "name": "Unknown"}, "city": "Unknown"},
     "types": [{"type": "HTTP", "level": "High"}, {"type": "SOCKS5", "level": ""}, {"type": "SOCKS4", "level": ""}],
     "avg_resp_time": 0.52, "error_rate": 0.0},
    {"host": "192.0.2.2", "port": 1081, "types": [{"type": "SOCKS4", "level": ""}, {"type": "HTTPS", "level": "High"}]},
    {"host": "192.0.2.3", "port": 3128, "types": [{"type": "HTTPS", "level": "Anonymous"}]},
    {"host": "192.0.2.4", "port": 8080, "types": [{"type": "CONNECT:80", "level": ""}]},
    {"host": "192.0.2.5", "port": 80, "types": [{"type": "HTTP", "level": "Transparent"}]},
    {"host": "192.0.2.6", "port": 25, "types": [{"type": "CONNECT:25", "level": ""}, {"type": "HTTP", "level": ""}]},
    {"host": "2001:db8::1", "port": "1080", "types": [{"type": "SOCKS5"}]},
    {"host": "proxy.example", "port": 1080, "types": [{"type": "SOCKS5"}]}
  ])";
  std::vector<std::string> errors;
  EXPECT_EQ(urls_of(json, errors),
            (std::vector<std::string>{"socks5://192.0.2.1:1080", "socks4://192.0.2.2:1081", "http://192.0.2.3:3128",
                                      "http://192.0.2.4:8080", "http://192.0.2.6:25", "socks5://[2001:db8::1]:1080",
                                      "socks5://proxy.example:1080"}));
  EXPECT_TRUE(errors.empty()) << errors.front();  // a plain-HTTP-only proxy is skipped, not an error
}

TEST(PoolSource, JsonEntriesThatCannotBeUsed) {
  std::vector<std::string> errors;
  const auto got = urls_of(R"([
    {"port": 1080, "types": [{"type": "SOCKS5"}]},
    {"host": "192.0.2.1", "types": [{"type": "SOCKS5"}]},
    {"host": 12345, "port": 1080, "types": [{"type": "SOCKS5"}]},
    "socks5://192.0.2.9:1080",
    {"host": "192.0.2.1", "port": 70000, "types": [{"type": "SOCKS5"}]},
    {"host": "192.0.2.1", "port": -1, "types": [{"type": "SOCKS5"}]},
    {"host": "192.0.2.1", "port": 1080},
    {"host": "192.0.2.1", "port": 1080, "types": "SOCKS5"},
    {"host": "192.0.2.1", "port": 1080, "types": [{"type": 5}, {"kind": "SOCKS5"}, "SOCKS5"]},
    {"host": "192.0.2.7", "port": 1080, "types": [{"type": "SOCKS5"}]}
  ])", errors);
  EXPECT_EQ(got, (std::vector<std::string>{"socks5://192.0.2.7:1080"}));
  std::vector<std::string> want_prefixes{"[0]:", "[1]:", "[2]:", "[3]:", "[4]:", "[5]:"};
  ASSERT_EQ(errors.size(), want_prefixes.size()) << ::testing::PrintToString(errors);
  for (std::size_t i = 0; i < errors.size(); ++i) {
    EXPECT_TRUE(errors[i].starts_with(want_prefixes[i])) << errors[i];
  }
}

TEST(PoolSource, InvalidJson) {
  for (const char* bad : {"[", "[{\"host\": \"a\",}]", "  [1, 2", "[\"unterminated]"}) {
    std::vector<std::string> errors;
    EXPECT_TRUE(urls_of(bad, errors).empty()) << bad;
    ASSERT_EQ(errors.size(), 1u) << bad;
    EXPECT_NE(errors[0].find("JSON"), std::string::npos);
  }
  std::vector<std::string> errors;
  EXPECT_TRUE(urls_of("[]", errors).empty());
  EXPECT_TRUE(errors.empty());
}

TEST(PoolSource, UrlLines) {
  std::vector<std::string> errors;
  const auto got = urls_of(
      "# exit nodes\r\n"
      "socks5://user:pw@192.0.2.1:1080\r\n"
      "\r\n"
      "   socks4a://proxy.example:1080   \n"
      "\t# indented comment\n"
      "http://[2001:db8::1]:3128\n"
      "192.0.2.2:1080\n"
      "socks5://last.example:1",  // no final newline
      errors);
  EXPECT_EQ(got, (std::vector<std::string>{"socks5://user:pw@192.0.2.1:1080", "socks4a://proxy.example:1080",
                                           "http://[2001:db8::1]:3128", "192.0.2.2:1080", "socks5://last.example:1"}));
  EXPECT_TRUE(errors.empty());
}

TEST(PoolSource, BadLinesAreReportedWithTheirNumbers) {
  std::vector<std::string> errors;
  const auto got = urls_of("socks5://ok.example:1\n"
                           "direct://\n"
                           "ftp://x.example:21\n"
                           "\n"
                           "socks5://no-port.example\n"
                           "socks5://u:" + std::string(300, 'p') + "@h:1\n"
                           "socks5://ok2.example:2\n",
                           errors);
  EXPECT_EQ(got, (std::vector<std::string>{"socks5://ok.example:1", "socks5://ok2.example:2"}));
  ASSERT_EQ(errors.size(), 4u) << ::testing::PrintToString(errors);
  EXPECT_TRUE(errors[0].starts_with("2: ")) << errors[0];
  EXPECT_NE(errors[0].find("proxy URL"), std::string::npos);
  EXPECT_TRUE(errors[1].starts_with("3: ")) << errors[1];
  EXPECT_TRUE(errors[2].starts_with("5: ")) << errors[2];
  EXPECT_TRUE(errors[3].starts_with("6: ")) << errors[3];
  EXPECT_NE(errors[3].find("255"), std::string::npos);
}

TEST(PoolSource, EmptyAndBlank) {
  std::vector<std::string> errors;
  EXPECT_TRUE(urls_of("", errors).empty());
  EXPECT_TRUE(urls_of("\n\n  \n# only comments\n", errors).empty());
  EXPECT_TRUE(errors.empty());
}

}  // namespace
