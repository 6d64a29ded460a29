// Rule lookup (src/routing): router::select() over N forwarding rules with
// domain patterns, in the three forms operators write: "*.svcI.corp.example:*"
// through a named upstream, "apiI.example.net:443" direct, and
// ".cdnI.example.org:80-8080" blocked. First match wins, so the figures
// range from a hit on the first rule to a miss that walks all N.

#include "micro_support.hpp"

#include "policy/acl.hpp"
#include "routing/router.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace core = cs::core;
using cs::routing::forwarding_rule;
using cs::routing::route_request;
using cs::routing::router;

forwarding_rule forwarding(unsigned i) {
  forwarding_rule r;
  switch (i % 3) {
    case 0:
      r.match = "*.svc" + std::to_string(i) + ".corp.example:*";
      r.upstream = {"corp"};
      break;
    case 1:
      r.match = "api" + std::to_string(i) + ".example.net:443";
      r.upstream = {"direct"};
      break;
    default:
      r.match = ".cdn" + std::to_string(i) + ".example.org:80-8080";
      r.upstream = {"block"};
      break;
  }
  return r;
}

const router& router_with(unsigned n) {
  static std::map<unsigned, std::unique_ptr<router>> cache;
  auto& slot = cache[n];
  if (!slot) {
    std::vector<forwarding_rule> rules;
    for (unsigned i = 0; i < n; ++i) {
      rules.push_back(forwarding(i));
    }
    const std::vector<std::pair<std::string, std::string>> upstreams{
        {"corp", "socks5://proxy.corp.example:1080"}};
    slot = std::make_unique<router>(rules, upstreams, cs::routing::pool_settings{},
                                    std::vector<cs::routing::member_spec>{}, cs::upstream::connect_options{},
                                    nullptr);
  }
  return *slot;
}

// A request as the session builds it: a domain target's name normalised, an
// IP target's address filled in.
struct request {
  core::target_address target;
  std::string host;
  route_request rq;

  explicit request(const std::string& text) {
    if (!core::parse_target(text, target)) {
      throw std::invalid_argument("bad bench target " + text);
    }
    rq.client = core::ip::make_address("192.0.2.10");
    rq.target = &target;
    if (const auto* d = target.domain()) {
      host = cs::policy::normalise_host(std::string_view(d->data(), d->size()));
      rq.host = host;
    } else {
      rq.address = *target.ip_address();
    }
  }
  request(const request&) = delete;
};

// Times select() for `target_text`; `expected_rule` is the index of the rule
// that must match (SIZE_MAX: the default route).
void route_case(benchmark::State& state, const std::string& target_text, std::size_t expected_rule) {
  const auto& r = router_with(static_cast<unsigned>(state.range(0)));
  const request q(target_text);
  if (const auto d = r.select(q.rq); d.need_address() || d.r->rule != expected_rule) {
    state.SkipWithError("unexpected route for the benchmark target");
    return;
  }
  for (auto _ : state) {
    auto d = r.select(q.rq);
    benchmark::DoNotOptimize(d);
  }
  cs::bench::count_items(state);
}

void rule_counts(benchmark::internal::Benchmark* b) { b->ArgName("rules")->Arg(10)->Arg(100)->Arg(1000); }

[[maybe_unused]] const bool registered = [] {
  benchmark::RegisterBenchmark("route/domain_first_rule", [](benchmark::State& s) {
    route_case(s, "video.svc0.corp.example:443", 0);
  })->Apply(rule_counts);
  // N is a multiple of 3 plus 1 (10, 100, 1000), so the last rule is a *.svc pattern.
  benchmark::RegisterBenchmark("route/domain_last_rule", [](benchmark::State& s) {
    const auto last = static_cast<std::size_t>(s.range(0)) - 1;
    route_case(s, "video.svc" + std::to_string(last) + ".corp.example:443", last);
  })->Apply(rule_counts);
  benchmark::RegisterBenchmark("route/domain_no_match", [](benchmark::State& s) {
    route_case(s, "www.example.com:443", SIZE_MAX);
  })->Apply(rule_counts);
  benchmark::RegisterBenchmark("route/ipv4_no_match", [](benchmark::State& s) {
    route_case(s, "93.184.216.34:443", SIZE_MAX);
  })->Apply(rule_counts);
  return true;
}();

}  // namespace
