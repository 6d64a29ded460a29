// policy/limits: session admission (global, per IP, per user), the per-IP
// connection-rate bucket, and failed-authentication lockouts (per IP and per
// username, trusted IPs exempt from the username lockout). Time-dependent
// checks use tiny lockouts (tens of milliseconds) and bounded polling; the
// assertions use bounds that hold on a loaded machine.

#include "policy/limits.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using namespace cs::policy;
using namespace std::chrono_literals;
namespace ip = cs::core::ip;
using clock_type = std::chrono::steady_clock;

ip::address A(const char* text) { return ip::make_address(text); }

limit_settings lockout_settings(std::uint32_t after, std::chrono::milliseconds base,
                                std::chrono::milliseconds max = 10s) {
  limit_settings s;
  s.auth_failures_before_lockout = after;
  s.auth_lockout_base = base;
  s.auth_lockout_max = max;
  return s;
}

// Polls (1 ms steps) until auth_allowed() says none; returns when, or
// clock_type::time_point::max() after `bound`.
clock_type::time_point wait_unlocked(limits& l, const ip::address& a, std::string_view user, const limit_settings& s,
                                     std::chrono::milliseconds bound = 5s) {
  const auto deadline = clock_type::now() + bound;
  while (clock_type::now() < deadline) {
    if (l.auth_allowed(a, user, s) == refusal::none) {
      return clock_type::now();
    }
    std::this_thread::sleep_for(1ms);
  }
  return clock_type::time_point::max();
}

// ---- concurrency ---------------------------------------------------------------------

TEST(Limits, UnlimitedByDefault) {
  limits l;
  const limit_settings s;
  std::vector<session_lease> leases;
  for (int i = 0; i < 1000; ++i) {
    refusal why = refusal::global_sessions;
    leases.push_back(l.admit(A("127.0.0.2"), s, why));
    ASSERT_TRUE(leases.back()) << i;
    EXPECT_EQ(why, refusal::none);
  }
  EXPECT_EQ(l.active_sessions(), 1000);
  EXPECT_EQ(l.tracked_ips(), 0u) << "no per-IP limit: no per-IP state";
  leases.clear();
  EXPECT_EQ(l.active_sessions(), 0);
}

TEST(Limits, GlobalSessions) {
  limits l;
  limit_settings s;
  s.max_sessions = 3;
  refusal why{};
  auto a = l.admit(A("127.0.0.1"), s, why);
  auto b = l.admit(A("127.0.0.2"), s, why);
  auto c = l.admit(A("::1"), s, why);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(l.active_sessions(), 3);
  auto d = l.admit(A("127.0.0.3"), s, why);
  EXPECT_FALSE(d);
  EXPECT_EQ(why, refusal::global_sessions);
  EXPECT_EQ(l.active_sessions(), 3) << "a refusal is not counted";
  b = session_lease{};  // release one
  EXPECT_EQ(l.active_sessions(), 2);
  auto e = l.admit(A("127.0.0.3"), s, why);
  EXPECT_TRUE(e);
  EXPECT_EQ(why, refusal::none);
  EXPECT_EQ(to_string(refusal::global_sessions), "max_sessions");
}

TEST(Limits, PerIpSessions) {
  limits l;
  limit_settings s;
  s.max_sessions_per_ip = 2;
  refusal why{};
  auto a1 = l.admit(A("127.0.0.2"), s, why);
  auto a2 = l.admit(A("::ffff:127.0.0.2"), s, why);  // the same client IP
  ASSERT_TRUE(a1 && a2);
  auto a3 = l.admit(A("127.0.0.2"), s, why);
  EXPECT_FALSE(a3);
  EXPECT_EQ(why, refusal::ip_sessions);
  EXPECT_EQ(l.active_sessions(), 2) << "the global count of a per-IP refusal is given back";
  // Other clients are not affected by 127.0.0.2's sessions.
  auto b1 = l.admit(A("127.0.0.1"), s, why);
  auto b2 = l.admit(A("127.0.0.1"), s, why);
  EXPECT_TRUE(b1 && b2);
  auto c1 = l.admit(A("::1"), s, why);
  EXPECT_TRUE(c1);
  a1 = session_lease{};
  auto a4 = l.admit(A("127.0.0.2"), s, why);
  EXPECT_TRUE(a4) << "a released session frees its slot";
  EXPECT_EQ(to_string(refusal::ip_sessions), "max_sessions_per_ip");
}

TEST(Limits, LeasesMoveAndReleaseOnce) {
  limits l;
  limit_settings s;
  s.max_sessions = 2;
  s.max_sessions_per_ip = 2;
  refusal why{};
  session_lease outer;
  {
    auto a = l.admit(A("127.0.0.2"), s, why);
    session_lease moved(std::move(a));
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_TRUE(moved);
    outer = std::move(moved);
    EXPECT_EQ(l.active_sessions(), 1);
  }
  EXPECT_EQ(l.active_sessions(), 1) << "moved-from leases release nothing";
  auto b = l.admit(A("127.0.0.2"), s, why);
  ASSERT_TRUE(b);
  outer = std::move(b);  // the old lease in `outer` is released, b's is kept
  EXPECT_EQ(l.active_sessions(), 1);
  auto c = l.admit(A("127.0.0.2"), s, why);
  EXPECT_TRUE(c) << "per-IP count went back down to 1 when the lease was replaced";
  outer = session_lease{};
  c = session_lease{};
  EXPECT_EQ(l.active_sessions(), 0);
}

TEST(Limits, PerUserSessions) {
  limits l;
  limit_settings s;
  s.max_sessions_per_user = 2;
  refusal why{};
  auto a1 = l.admit_user("alice", s, why);
  auto a2 = l.admit_user("alice", s, why);
  ASSERT_TRUE(a1 && a2);
  auto a3 = l.admit_user("alice", s, why);
  EXPECT_FALSE(a3);
  EXPECT_EQ(why, refusal::user_sessions);
  auto b = l.admit_user("bob", s, why);
  EXPECT_TRUE(b) << "bob has his own count";
  auto ax = l.admit_user("aliceX", s, why);
  EXPECT_TRUE(ax) << "no prefix sharing";
  EXPECT_EQ(l.active_sessions(), 0) << "user leases are not connection leases";
  a2 = session_lease{};
  auto a4 = l.admit_user("alice", s, why);
  EXPECT_TRUE(a4);
  EXPECT_EQ(to_string(refusal::user_sessions), "max_sessions_per_user");
}

TEST(Limits, ConcurrentAdmitNeverExceedsTheLimit) {
  limits l;
  limit_settings s;
  s.max_sessions = 8;
  s.max_sessions_per_ip = 4;
  std::atomic<int> held{0};
  std::atomic<int> peak{0};
  std::atomic<bool> over{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const auto client = A(t % 2 == 0 ? "127.0.0.1" : "127.0.0.2");
      for (int i = 0; i < 5000; ++i) {
        refusal why{};
        auto lease = l.admit(client, s, why);
        if (lease) {
          const int now = ++held;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          if (l.active_sessions() > 8) {
            over = true;
          }
          --held;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_FALSE(over);
  EXPECT_LE(peak.load(), 8);
  EXPECT_EQ(l.active_sessions(), 0);
}

// ---- connection rate ------------------------------------------------------------------

TEST(Limits, RateBucketBurstThenRefuse) {
  limits l;
  limit_settings s;
  s.connection_rate_per_ip = 0.01;  // one token per 100 s: no refill during the test
  s.connection_burst_per_ip = 3;
  refusal why{};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(l.admit(A("127.0.0.2"), s, why)) << i;  // released at once: rate, not concurrency
  }
  EXPECT_FALSE(l.admit(A("127.0.0.2"), s, why));
  EXPECT_EQ(why, refusal::ip_rate);
  EXPECT_EQ(l.active_sessions(), 0);
  // Another client has its own bucket.
  EXPECT_TRUE(l.admit(A("127.0.0.1"), s, why));
  EXPECT_EQ(to_string(refusal::ip_rate), "connection_rate");
}

TEST(Limits, RateDefaultBurstIsTwiceTheRate) {
  limits l;
  limit_settings s;
  s.connection_rate_per_ip = 0.001;  // burst: max(rate, 1) * 2 = 2
  refusal why{};
  EXPECT_TRUE(l.admit(A("127.0.0.2"), s, why));
  EXPECT_TRUE(l.admit(A("127.0.0.2"), s, why));
  EXPECT_FALSE(l.admit(A("127.0.0.2"), s, why));
  EXPECT_EQ(why, refusal::ip_rate);

  limits l2;
  limit_settings s2;
  s2.connection_rate_per_ip = 5;  // burst 10; refill 5/s cannot add 2 tokens in the ~ms this takes... bounded below
  int admitted = 0;
  const auto t0 = clock_type::now();
  for (int i = 0; i < 30; ++i) {
    admitted += l2.admit(A("127.0.0.3"), s2, why) ? 1 : 0;
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
  EXPECT_GE(admitted, 10);
  EXPECT_LE(admitted, 10 + static_cast<int>(elapsed * 5) + 1);
}

TEST(Limits, RateBucketRefills) {
  limits l;
  limit_settings s;
  s.connection_rate_per_ip = 20;  // one token per 50 ms
  s.connection_burst_per_ip = 1;
  refusal why{};
  const auto t0 = clock_type::now();
  ASSERT_TRUE(l.admit(A("127.0.0.2"), s, why));
  const auto refused = l.admit(A("127.0.0.2"), s, why);
  if (clock_type::now() - t0 < 45ms) {
    EXPECT_FALSE(refused) << "a token after less than 50 ms";
  }
  clock_type::time_point ok_at = clock_type::time_point::max();
  for (int i = 0; i < 2000 && ok_at == clock_type::time_point::max(); ++i) {
    if (l.admit(A("127.0.0.2"), s, why)) {
      ok_at = clock_type::now();
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  ASSERT_NE(ok_at, clock_type::time_point::max()) << "the bucket never refilled";
  EXPECT_GE(ok_at - t0, 45ms) << "refilled faster than the rate";
}

TEST(Limits, RateAndConcurrencyTogether) {
  limits l;
  limit_settings s;
  s.connection_rate_per_ip = 0.01;
  s.connection_burst_per_ip = 5;
  s.max_sessions_per_ip = 1;
  refusal why{};
  auto a = l.admit(A("127.0.0.2"), s, why);
  ASSERT_TRUE(a);
  EXPECT_FALSE(l.admit(A("127.0.0.2"), s, why));
  EXPECT_EQ(why, refusal::ip_sessions);
}

// ---- authentication lockouts ----------------------------------------------------------

TEST(Lockout, NotBeforeTheThreshold) {
  limits l;
  const auto s = lockout_settings(3, 10s);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::none);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::ip_locked);
  EXPECT_EQ(l.auth_allowed(A("::ffff:127.0.0.2"), "bob", s), refusal::ip_locked) << "the IP, whatever the name";
  EXPECT_EQ(to_string(refusal::ip_locked), "auth_lockout_ip");
  EXPECT_EQ(to_string(refusal::user_locked), "auth_lockout_user");
}

TEST(Lockout, DisabledWithZero) {
  limits l;
  const auto s = lockout_settings(0, 10s);
  for (int i = 0; i < 50; ++i) {
    l.auth_failed(A("127.0.0.2"), "alice", s);
  }
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::none);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.3"), "alice", s), refusal::none);
}

TEST(Lockout, BruteForceFromOneIpDoesNotLockOtherIps) {
  limits l;
  const auto s = lockout_settings(3, 10s);
  // 127.0.0.1 has logged in as alice before the attack.
  l.auth_succeeded(A("127.0.0.1"), "alice");
  for (int i = 0; i < 20; ++i) {
    l.auth_failed(A("127.0.0.2"), "alice", s);
  }
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::ip_locked);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.1"), "alice", s), refusal::none) << "trusted IP: not held back";
  EXPECT_EQ(l.auth_allowed(A("::ffff:127.0.0.1"), "alice", s), refusal::none);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.1"), "bob", s), refusal::none) << "another user";
  EXPECT_EQ(l.auth_allowed(A("127.0.0.3"), "bob", s), refusal::none);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.3"), "alice", s), refusal::user_locked)
      << "an IP that never logged in as alice waits out the username lockout";
  EXPECT_EQ(l.auth_allowed(A("127.0.0.3"), "aliceX", s), refusal::none) << "no prefix sharing";
}

TEST(Lockout, SpreadAcrossIpsLocksTheUsernameOnly) {
  limits l;
  const auto s = lockout_settings(3, 10s);
  l.auth_succeeded(A("127.0.0.1"), "alice");
  for (const char* attacker : {"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"}) {
    l.auth_failed(A(attacker), "alice", s);
  }
  for (const char* attacker : {"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"}) {
    EXPECT_EQ(l.auth_allowed(A(attacker), "bob", s), refusal::none) << attacker << ": one failure is no IP lockout";
    EXPECT_EQ(l.auth_allowed(A(attacker), "alice", s), refusal::user_locked) << attacker;
  }
  EXPECT_EQ(l.auth_allowed(A("127.0.0.1"), "alice", s), refusal::none);
}

TEST(Lockout, OneIpManyUsernamesLocksTheIpOnly) {
  limits l;
  const auto s = lockout_settings(3, 10s);
  for (const char* user : {"u1", "u2", "u3", "u4"}) {
    l.auth_failed(A("127.0.0.2"), user, s);
  }
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "u1", s), refusal::ip_locked);
  for (const char* user : {"u1", "u2", "u3", "u4"}) {
    EXPECT_EQ(l.auth_allowed(A("127.0.0.1"), user, s), refusal::none) << user;
  }
}

TEST(Lockout, SuccessResetsTheIpCount) {
  limits l;
  const auto s = lockout_settings(3, 10s);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  l.auth_failed(A("127.0.0.2"), "bob", s);
  l.auth_succeeded(A("127.0.0.2"), "carol");
  l.auth_failed(A("127.0.0.2"), "dave", s);
  l.auth_failed(A("127.0.0.2"), "erin", s);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "frank", s), refusal::none) << "2 failures since the success";
  l.auth_failed(A("127.0.0.2"), "frank", s);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "frank", s), refusal::ip_locked);
}

TEST(Lockout, ExpiresAfterTheBaseDuration) {
  limits l;
  const auto s = lockout_settings(2, 60ms);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  const auto before = clock_type::now();
  l.auth_failed(A("127.0.0.2"), "alice", s);
  const auto after = clock_type::now();
  const auto unlocked = wait_unlocked(l, A("127.0.0.2"), "alice", s);
  ASSERT_NE(unlocked, clock_type::time_point::max()) << "still locked after 5 s";
  EXPECT_GE(unlocked - before, 60ms) << "unlocked early";
  EXPECT_LE(unlocked - after, 60ms + 1s) << "locked much longer than 60 ms";
}

TEST(Lockout, DoublesPerFurtherFailureUpToTheMaximum) {
  limits l;
  const auto s = lockout_settings(1, 20ms, 80ms);
  const std::chrono::milliseconds expected[] = {20ms, 40ms, 80ms, 80ms, 80ms};
  for (const auto d : expected) {
    const auto before = clock_type::now();
    l.auth_failed(A("127.0.0.2"), "alice", s);
    const auto after = clock_type::now();
    EXPECT_NE(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::none);
    const auto unlocked = wait_unlocked(l, A("127.0.0.2"), "alice", s);
    ASSERT_NE(unlocked, clock_type::time_point::max());
    EXPECT_GE(unlocked - before, d) << "lockout shorter than " << d.count() << " ms";
    EXPECT_LE(unlocked - after, d + 1s);
  }
}

TEST(Lockout, LargeFailureCountsDoNotOverflow) {
  limits l;
  const auto s = lockout_settings(1, 1ms, 50ms);
  for (int i = 0; i < 200; ++i) {
    l.auth_failed(A("127.0.0.2"), "alice", s);
  }
  const auto after = clock_type::now();
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::ip_locked);
  const auto unlocked = wait_unlocked(l, A("127.0.0.2"), "alice", s);
  ASSERT_NE(unlocked, clock_type::time_point::max()) << "lockout past the maximum (overflow?)";
  EXPECT_LE(unlocked - after, 50ms + 1s);
}

TEST(Lockout, OldFailuresAreForgotten) {
  limits l;
  auto s = lockout_settings(3, 10s);
  s.auth_failure_window = 30ms;
  l.auth_failed(A("127.0.0.2"), "alice", s);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  std::this_thread::sleep_for(40ms);  // let the window pass (not synchronisation)
  l.auth_failed(A("127.0.0.2"), "alice", s);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::none) << "the first two are outside the window";
  EXPECT_EQ(l.auth_allowed(A("127.0.0.3"), "alice", s), refusal::none);
}

TEST(Lockout, UsernameLockoutExpiresToo) {
  limits l;
  const auto s = lockout_settings(2, 30ms);
  l.auth_failed(A("127.0.0.10"), "alice", s);
  l.auth_failed(A("127.0.0.11"), "alice", s);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.12"), "alice", s), refusal::user_locked);
  EXPECT_NE(wait_unlocked(l, A("127.0.0.12"), "alice", s), clock_type::time_point::max());
}

TEST(Lockout, TrustIsPerUser) {
  limits l;
  const auto s = lockout_settings(2, 10s);
  l.auth_succeeded(A("127.0.0.1"), "alice");
  l.auth_failed(A("127.0.0.10"), "bob", s);
  l.auth_failed(A("127.0.0.11"), "bob", s);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.1"), "bob", s), refusal::user_locked)
      << "logging in as alice does not make 127.0.0.1 trusted for bob";
}

// Guesses sent in parallel all reach the check before the first of them
// fails: each one let through counts as a failure until it ends.
TEST(Lockout, ChecksStillRunningCountAsFailures) {
  limits l;
  const auto s = lockout_settings(3, 10s);
  refusal why{};
  std::vector<auth_attempt> running;
  for (int i = 0; i < 3; ++i) {
    running.push_back(l.begin_auth(A("127.0.0.2"), "alice", s, why));
    ASSERT_TRUE(running.back()) << i;
  }
  EXPECT_FALSE(l.begin_auth(A("127.0.0.2"), "alice", s, why));
  EXPECT_EQ(why, refusal::ip_locked);
  EXPECT_FALSE(l.begin_auth(A("127.0.0.3"), "alice", s, why)) << "three checks of alice's password are running";
  EXPECT_EQ(why, refusal::user_locked);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.3"), "bob", s), refusal::none) << "another IP, another name";
  running.clear();  // withdrawn (no verdict): nothing counted
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::none);
  for (int i = 0; i < 3; ++i) {
    running.push_back(l.begin_auth(A("127.0.0.2"), "alice", s, why));
  }
  for (auto& a : running) {
    a.failed(s);
  }
  running.clear();
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::ip_locked) << "three failures: locked";
  EXPECT_EQ(l.auth_allowed(A("127.0.0.4"), "alice", s), refusal::user_locked);
}

TEST(Lockout, TrustedIpsAreNotHeldBackByRunningChecks) {
  limits l;
  const auto s = lockout_settings(2, 10s);
  refusal why{};
  l.begin_auth(A("127.0.0.1"), "alice", s, why).succeeded();
  auto a1 = l.begin_auth(A("127.0.0.2"), "alice", s, why);
  auto a2 = l.begin_auth(A("127.0.0.3"), "alice", s, why);
  ASSERT_TRUE(a1 && a2);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.4"), "alice", s), refusal::user_locked);
  EXPECT_EQ(l.auth_allowed(A("127.0.0.1"), "alice", s), refusal::none) << "the owner's address";
}

TEST(Lockout, AfterALockoutEndsOneTryAtATime) {
  limits l;
  const auto s = lockout_settings(2, 20ms, 20ms);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  l.auth_failed(A("127.0.0.2"), "alice", s);
  ASSERT_NE(wait_unlocked(l, A("127.0.0.2"), "alice", s), clock_type::time_point::max());
  refusal why{};
  auto first = l.begin_auth(A("127.0.0.2"), "alice", s, why);
  ASSERT_TRUE(first);
  EXPECT_FALSE(l.begin_auth(A("127.0.0.2"), "alice", s, why)) << "a second try while the first runs";
  first.succeeded();
  EXPECT_EQ(l.auth_allowed(A("127.0.0.2"), "alice", s), refusal::none);
}

// Filling a stripe from other addresses must not make room by forgetting a
// lockout (that would lift it).
TEST(Lockout, SurvivesFullStripes) {
  limits l;
  auto s = lockout_settings(1, 10s);
  s.max_sessions_per_ip = 10;
  l.auth_failed(A("10.9.8.7"), "alice", s);
  ASSERT_EQ(l.auth_allowed(A("10.9.8.7"), "bob", s), refusal::ip_locked);
  refusal why{};
  std::vector<session_lease> held;  // every stripe over its soft cap with entries that hold a session
  const std::uint32_t n = 64 * limits::max_entries_per_stripe + 4096;
  held.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    held.push_back(l.admit(ip::address_v4(0x0B000000u + i), s, why));
    ASSERT_TRUE(held.back());
  }
  EXPECT_EQ(l.auth_allowed(A("10.9.8.7"), "bob", s), refusal::ip_locked);
}

TEST(Limits, StateIsBounded) {
  limits l;
  limit_settings s;
  s.max_sessions_per_ip = 10;
  refusal why{};
  for (std::uint32_t i = 0; i < 300000; ++i) {
    auto lease = l.admit(ip::address_v4(0x0B000000u + i), s, why);  // 11.0.0.0 + i, released at once
    ASSERT_TRUE(lease);
  }
  EXPECT_LE(l.tracked_ips(), 64 * limits::max_entries_per_stripe);
}

}  // namespace
