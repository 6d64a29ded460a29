// Access control (src/policy): acl::evaluate() with the built-in blocks plus
// N user rules, and ip_set::contains().
//
// The user rules mix what operators write (see bench/README.md): IPv4 and
// IPv6 CIDRs, exact names, *.suffix and .domain patterns, port lists and
// ranges, a source restriction. None matches the benchmark's targets, so an
// evaluation walks every rule before the default (allow) and the built-in
// blocks decide: the worst case for a request that is let through.

#include "micro_support.hpp"

#include "policy/acl.hpp"
#include "policy/ip_set.hpp"
#include "policy/rule_spec.hpp"

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace core = cs::core;
using namespace cs::policy;

std::string format(const char* fmt, unsigned a, unsigned b = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

/// User rule i of a list: six kinds in turn.
std::pair<std::string, action> user_rule(unsigned i) {
  switch (i % 6) {
    case 0: return {format("dst=%u.%u.0.0/16", 20 + (i / 256) % 50, i % 256), action::block};
    case 1: return {format("host%u.ads.example.net", i), action::block};
    case 2: return {format("*.tracker%u.example.org:1000-2000", i), action::block};
    case 3: return {format("dst=2001:db8:%x::/48 port=443,8443", i), action::allow};
    case 4: return {format("dst=2001:db8:ffff:%x::/64 port=22", i), action::block};
    default:
      return {format("dst=.intranet%u.corp.example,198.51.%u.0/24 port=80,443 src=198.51.100.0/24", i, i % 256),
              action::allow};
  }
}

/// The default built-in blocks plus `n` user rules; built once per n.
const acl& acl_with(unsigned n) {
  static std::map<unsigned, std::unique_ptr<acl>> cache;
  auto& slot = cache[n];
  if (!slot) {
    acl_settings s;
    for (unsigned i = 0; i < n; ++i) {
      const auto [spec, act] = user_rule(i);
      rule r;
      if (const auto err = parse_rule_spec(spec, act, r); !err.empty()) {
        throw std::invalid_argument("bench rule '" + spec + "': " + err);
      }
      s.rules.push_back(std::move(r));
    }
    slot = std::make_unique<acl>(std::move(s));
  }
  return *slot;
}

request_view view(const char* address, std::string_view domain = {}) {
  request_view v;
  v.client = core::ip::make_address("192.0.2.10");
  v.domain = domain;
  if (address != nullptr) {
    v.address = core::ip::make_address(address);
  }
  v.port = 443;
  return v;
}

// Times evaluate(v); first checks that it decides `expected` (by the rule or
// block `expected_by`, when given), so a change of policy cannot silently
// turn the benchmark into another one.
void acl_case(benchmark::State& state, const request_view& v, decision::verdict expected,
              std::optional<std::string_view> expected_by) {
  const auto& a = acl_with(static_cast<unsigned>(state.range(0)));
  if (const auto d = a.evaluate(v); d.v != expected || (expected_by && d.by != *expected_by)) {
    state.SkipWithError("unexpected ACL decision for the benchmark target");
    return;
  }
  for (auto _ : state) {
    auto d = a.evaluate(v);
    benchmark::DoNotOptimize(d);
  }
  cs::bench::count_items(state);
}

// ------------------------------------------------------------------- ip_set

core::ip::address v4(std::uint32_t bits) { return core::ip::address_v4(bits); }

core::ip::address v6(std::uint64_t hi, std::uint64_t lo) {
  core::ip::address_v6::bytes_type b{};
  for (int i = 0; i < 8; ++i) {
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(hi >> (56 - 8 * i));
    b[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
  }
  return core::ip::address_v6(b);
}

// `n` random prefixes (IPv4 /12../28, or global-unicast IPv6 /24../64) and
// 1024 addresses to look up: half inside one of them, half anywhere.
struct set_fixture {
  ip_set set;
  std::vector<core::ip::address> probes;
};

set_fixture make_set(bool ipv6, unsigned n) {
  std::mt19937_64 rng(0xC1E7E7 + n + (ipv6 ? 1 : 0));
  set_fixture f;
  std::vector<cidr> prefixes;
  for (unsigned i = 0; i < n; ++i) {
    if (ipv6) {
      const auto len = static_cast<unsigned>(24 + rng() % 41);  // 24..64: the top half only
      std::uint64_t hi = (rng() & ~(std::uint64_t{7} << 61)) | (std::uint64_t{1} << 61);  // 2000::/3
      hi &= ~std::uint64_t{0} << (64 - len);
      prefixes.push_back({v6(hi, 0), static_cast<std::uint8_t>(len)});
    } else {
      const auto len = static_cast<unsigned>(12 + rng() % 17);  // 12..28
      const auto net = static_cast<std::uint32_t>(rng()) & (~std::uint32_t{0} << (32 - len));
      prefixes.push_back({v4(net), static_cast<std::uint8_t>(len)});
    }
  }
  for (const auto& c : prefixes) {
    f.set.add(c);
  }
  f.set.finalize();
  for (unsigned i = 0; i < 1024; ++i) {
    const auto r = rng();
    if (i % 2 == 0) {  // inside a prefix of the set
      const auto& c = prefixes[rng() % prefixes.size()];
      if (ipv6) {
        const auto net = c.network.to_v6().to_bytes();
        std::uint64_t hi = 0;
        for (int k = 0; k < 8; ++k) {
          hi = (hi << 8) | net[static_cast<std::size_t>(k)];
        }
        const auto host_bits = 64u - c.prefix;
        hi |= host_bits == 0 ? 0 : (r >> c.prefix);
        f.probes.push_back(v6(hi, rng()));
      } else {
        const auto host_mask = c.prefix == 32 ? 0u : (~std::uint32_t{0} >> c.prefix);
        f.probes.push_back(v4(c.network.to_v4().to_uint() | (static_cast<std::uint32_t>(r) & host_mask)));
      }
    } else {
      f.probes.push_back(ipv6 ? v6((r & ~(std::uint64_t{7} << 61)) | (std::uint64_t{1} << 61), rng())
                              : v4(static_cast<std::uint32_t>(r)));
    }
  }
  return f;
}

void ip_set_case(benchmark::State& state, bool ipv6) {
  const auto f = make_set(ipv6, static_cast<unsigned>(state.range(0)));
  std::size_t i = 0, hits = 0;
  for (auto _ : state) {
    const bool hit = f.set.contains(f.probes[i++ & 1023]);
    hits += hit ? 1 : 0;
    benchmark::DoNotOptimize(hit);
  }
  benchmark::DoNotOptimize(hits);
  cs::bench::count_items(state);
}

// ------------------------------------------------------------ registration

using verdict = decision::verdict;

void rule_counts(benchmark::internal::Benchmark* b) { b->ArgName("rules")->Arg(0)->Arg(10)->Arg(100)->Arg(1000); }

[[maybe_unused]] const bool registered = [] {
  benchmark::RegisterBenchmark("acl/allowed_ipv4", [](benchmark::State& s) {
    acl_case(s, view("93.184.216.34"), verdict::allow, "default");
  })->Apply(rule_counts);
  benchmark::RegisterBenchmark("acl/blocked_private_ipv4", [](benchmark::State& s) {
    acl_case(s, view("10.20.30.40"), verdict::block, "builtin:private");
  })->Apply(rule_counts);
  benchmark::RegisterBenchmark("acl/allowed_ipv6", [](benchmark::State& s) {
    acl_case(s, view("2606:2800:220:1:248:1893:25c8:1946"), verdict::allow, "default");
  })->Apply(rule_counts);
  // First pass for a domain target, before DNS: stops at the first rule that
  // needs the address (here rule 0, a CIDR), so it does not grow with N.
  benchmark::RegisterBenchmark("acl/domain_before_dns", [](benchmark::State& s) {
    acl_case(s, view(nullptr, "www.example.com"), verdict::need_address, std::nullopt);
  })->Apply(rule_counts);
  // Second pass: the name and one resolved address, through every rule.
  benchmark::RegisterBenchmark("acl/domain_resolved", [](benchmark::State& s) {
    acl_case(s, view("93.184.216.34", "www.example.com"), verdict::allow, "default");
  })->Apply(rule_counts);

  for (const bool ipv6 : {false, true}) {
    benchmark::RegisterBenchmark(ipv6 ? "ip_set/contains_ipv6" : "ip_set/contains_ipv4",
                                 [ipv6](benchmark::State& s) { ip_set_case(s, ipv6); })
        ->ArgName("prefixes")
        ->Arg(10)
        ->Arg(1000)
        ->Arg(100000);
  }
  return true;
}();

}  // namespace
