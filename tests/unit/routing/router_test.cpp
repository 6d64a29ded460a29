// routing::router: rule compilation and matching (host patterns, host CIDR,
// ports, client CIDR, users and groups, destination CIDR and country that
// need the address), first-match order, the default route, rewrites
// (remote:), hops, egress, port forwards, and the errors a bad rule gives.
#include "routing/router.hpp"

#include "policy/policy_support.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using cs::auth::user;
using cs::core::target_address;
using cs::routing::forwarding_rule;
using cs::routing::member_spec;
using cs::routing::pool_settings;
using cs::routing::port_forward_settings;
using cs::routing::route;
using cs::routing::route_request;
using cs::routing::router;
using cs::upstream::family_preference;
namespace ip = cs::core::ip;
using upstream_list = std::vector<std::pair<std::string, std::string>>;

forwarding_rule rule(std::string match, std::vector<std::string> up) {
  forwarding_rule r;
  r.match = std::move(match);
  r.upstream = std::move(up);
  return r;
}

struct build {
  std::vector<forwarding_rule> rules;
  upstream_list upstreams;
  pool_settings pool;
  std::vector<member_spec> members;
  cs::upstream::connect_options egress;
  std::shared_ptr<const cs::policy::geoip> geo;
  std::vector<port_forward_settings> forwards;

  router make() const { return router(rules, upstreams, pool, members, egress, geo, forwards); }
};

router make(std::vector<forwarding_rule> rules, upstream_list ups = {}) {
  build b;
  b.rules = std::move(rules);
  b.upstreams = std::move(ups);
  return b.make();
}

target_address target(std::string_view text) {
  target_address t;
  EXPECT_TRUE(cs::core::parse_target(text, t)) << text;
  return t;
}

// A request as the session builds it: a domain target's host normalised,
// an IP target's address filled in.
struct request {
  target_address t;
  std::string host;
  route_request rq;

  explicit request(std::string_view target_text, std::string_view client = "127.0.0.1", const user* u = nullptr)
      : t(target(target_text)) {
    rq.client = ip::make_address(std::string(client));
    rq.user = u;
    rq.target = &t;
    if (const auto* d = t.domain()) {
      host = cs::policy::normalise_host(std::string_view(d->data(), d->size()));
      rq.host = host;
    } else {
      rq.address = *t.ip_address();
    }
  }
  request(const request&) = delete;
};

// The route chosen for a request, or nullptr when the router needs the address.
const route* pick(const router& r, std::string_view target_text, std::string_view client = "127.0.0.1",
                  const user* u = nullptr, std::optional<std::string> resolved = std::nullopt) {
  request q(target_text, client, u);
  if (resolved) {
    q.rq.address = ip::make_address(*resolved);
  }
  return r.select(q.rq).r;
}

std::string name_of(const route* r) { return r == nullptr ? "<need address>" : r->name; }

const std::string U1 = "socks5://127.0.0.1:1081";
const std::string U2 = "socks5://127.0.0.1:1082";
const std::string U3 = "socks5://127.0.0.1:1083";

// ------------------------------------------------------------ defaults

TEST(Router, DefaultRouterIsDirect) {
  const router r;
  EXPECT_EQ(r.default_route().k, route::kind::direct);
  EXPECT_EQ(r.default_route().name, "direct");
  EXPECT_EQ(r.get_pool(), nullptr);
  EXPECT_EQ(pick(r, "example.com:443"), &r.default_route());
  EXPECT_EQ(pick(r, "192.0.2.1:80"), &r.default_route());
}

TEST(Router, DefaultRouteIsThePoolWhenEnabled) {
  build b;
  b.pool.enabled = true;
  b.members = {{U1, 1}, {U2, 1}};
  const auto r = b.make();
  EXPECT_EQ(r.default_route().k, route::kind::pool);
  EXPECT_EQ(r.default_route().name, "pool");
  ASSERT_NE(r.get_pool(), nullptr);
  EXPECT_EQ(r.get_pool()->members().size(), 2u);
  EXPECT_EQ(pick(r, "unmatched.example:1"), &r.default_route());
}

TEST(Router, PoolMembersWithoutEnabledLeaveTheDefaultDirect) {
  build b;
  b.members = {{U1, 1}};
  b.rules = {rule("pooled.test:*", {"pool"})};
  const auto r = b.make();
  EXPECT_EQ(r.default_route().k, route::kind::direct);
  ASSERT_NE(r.get_pool(), nullptr);
  EXPECT_EQ(pick(r, "pooled.test:80")->k, route::kind::pool);
  EXPECT_EQ(pick(r, "other.test:80")->k, route::kind::direct);
}

TEST(Router, EnabledPoolWithNoMembersStillRoutesToThePool) {
  build b;
  b.pool.enabled = true;  // members come from a source file that is empty right now
  const auto r = b.make();
  EXPECT_EQ(r.default_route().k, route::kind::pool);
  ASSERT_NE(r.get_pool(), nullptr);
  EXPECT_TRUE(r.get_pool()->members().empty());
}

// ------------------------------------------------------------ host and port patterns

TEST(RouterMatch, SubdomainPattern) {
  const auto r = make({rule("*.amazonaws.com:*", {U1})});
  for (const char* hit : {"s3.amazonaws.com:443", "a.b.c.amazonaws.com:1", "S3.AmazonAWS.com:443",
                          "ec2.amazonaws.com.:80"}) {
    EXPECT_EQ(name_of(pick(r, hit)), U1) << hit;
  }
  for (const char* miss : {"amazonaws.com:443", "evilamazonaws.com:443", "amazonaws.com.evil:443",
                           "s3-amazonaws.com:443", "52.0.0.1:443"}) {
    EXPECT_EQ(name_of(pick(r, miss)), "direct") << miss;
  }
}

TEST(RouterMatch, DomainAndSubdomainsAndExact) {
  const auto r = make({rule(".corp.test:*", {U1}), rule("exact.test:*", {U2})});
  EXPECT_EQ(name_of(pick(r, "corp.test:1")), U1);
  EXPECT_EQ(name_of(pick(r, "a.corp.test:1")), U1);
  EXPECT_EQ(name_of(pick(r, "xcorp.test:1")), "direct");
  EXPECT_EQ(name_of(pick(r, "exact.test:1")), U2);
  EXPECT_EQ(name_of(pick(r, "a.exact.test:1")), "direct");
}

TEST(RouterMatch, Ports) {
  const auto r = make({rule("*:443", {U1}), rule("*.test:8000-8999", {U2}), rule("h.test", {U3})});
  EXPECT_EQ(name_of(pick(r, "any.example:443")), U1);
  EXPECT_EQ(name_of(pick(r, "192.0.2.1:443")), U1);
  EXPECT_EQ(name_of(pick(r, "[2001:db8::1]:443")), U1);
  EXPECT_EQ(name_of(pick(r, "a.test:8000")), U2);
  EXPECT_EQ(name_of(pick(r, "a.test:8999")), U2);
  EXPECT_EQ(name_of(pick(r, "a.test:9000")), "direct");
  EXPECT_EQ(name_of(pick(r, "a.test:7999")), "direct");
  EXPECT_EQ(name_of(pick(r, "h.test:1")), U3);  // no port in the pattern: any port
  EXPECT_EQ(name_of(pick(r, "h.test:65535")), U3);
}

TEST(RouterMatch, HostCidr) {
  const auto r = make({rule("10.0.0.0/8:*", {U1}), rule("[2001:db8::/32]:443", {U2})});
  EXPECT_EQ(name_of(pick(r, "10.1.2.3:80")), U1);
  EXPECT_EQ(name_of(pick(r, "11.0.0.1:80")), "direct");
  EXPECT_EQ(name_of(pick(r, "[2001:db8::5]:443")), U2);
  EXPECT_EQ(name_of(pick(r, "[2001:db8::5]:80")), "direct");
  EXPECT_EQ(name_of(pick(r, "[2001:db9::5]:443")), "direct");
  // A host CIDR matches IP targets only; names are for dst:.
  EXPECT_EQ(name_of(pick(r, "ten.test:80", "127.0.0.1", nullptr, "10.0.0.1")), "direct");
}

TEST(RouterMatch, MatchAnything) {
  const auto r = make({rule("*:*", {U1})});
  EXPECT_EQ(name_of(pick(r, "a.test:1")), U1);
  EXPECT_EQ(name_of(pick(r, "[::1]:1")), U1);
}

TEST(RouterMatch, FirstMatchWins) {
  const auto r = make({rule("deep.a.test:*", {U2}), rule("*.a.test:*", {U1}), rule("*:*", {U3})});
  EXPECT_EQ(name_of(pick(r, "deep.a.test:1")), U2);
  EXPECT_EQ(name_of(pick(r, "x.a.test:1")), U1);
  EXPECT_EQ(name_of(pick(r, "other:1")), U3);
  const auto& routes = r.routes();
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].rule, 0u);
  EXPECT_EQ(routes[2].rule, 2u);
  EXPECT_EQ(r.default_route().rule, SIZE_MAX);
}

// ------------------------------------------------------------ client, user

TEST(RouterMatch, ClientCidr) {
  auto fr = rule("", {U1});
  fr.src = {"127.0.0.2/32", "2001:db8::/64"};
  const auto r = make({fr});
  EXPECT_EQ(name_of(pick(r, "a.test:1", "127.0.0.2")), U1);
  EXPECT_EQ(name_of(pick(r, "a.test:1", "127.0.0.1")), "direct");
  EXPECT_EQ(name_of(pick(r, "a.test:1", "2001:db8::9")), U1);
  EXPECT_EQ(name_of(pick(r, "a.test:1", "2001:db8:1::9")), "direct");
}

TEST(RouterMatch, UsersAndGroups) {
  auto by_name = rule("", {U1});
  by_name.users = {"alice"};
  auto by_group = rule("", {U2});
  by_group.users = {"@ops"};
  auto anyone = rule("*.auth.test:*", {U3});
  anyone.users = {"*"};
  const auto r = make({by_name, by_group, anyone});
  const user alice{"alice", {}};
  const user bob{"bob", {"dev", "ops"}};
  const user carol{"carol", {"dev"}};
  EXPECT_EQ(name_of(pick(r, "a.test:1", "127.0.0.1", &alice)), U1);
  EXPECT_EQ(name_of(pick(r, "a.test:1", "127.0.0.1", &bob)), U2);
  EXPECT_EQ(name_of(pick(r, "a.test:1", "127.0.0.1", &carol)), "direct");
  EXPECT_EQ(name_of(pick(r, "x.auth.test:1", "127.0.0.1", &carol)), U3);
  // No user (no authentication): user rules never match, not even "*".
  EXPECT_EQ(name_of(pick(r, "x.auth.test:1")), "direct");
  // "@alice" is a group, not the user alice.
  auto g = rule("", {U1});
  g.users = {"@alice"};
  EXPECT_EQ(name_of(pick(make({g}), "a.test:1", "127.0.0.1", &alice)), "direct");
}

TEST(RouterMatch, AllConditionsMustHold) {
  auto fr = rule("*.test:443", {U1});
  fr.src = {"127.0.0.0/8"};
  fr.users = {"alice"};
  const auto r = make({fr});
  const user alice{"alice", {}};
  EXPECT_EQ(name_of(pick(r, "a.test:443", "127.0.0.1", &alice)), U1);
  EXPECT_EQ(name_of(pick(r, "a.test:80", "127.0.0.1", &alice)), "direct");
  EXPECT_EQ(name_of(pick(r, "a.test:443", "10.0.0.1", &alice)), "direct");
  EXPECT_EQ(name_of(pick(r, "a.test:443", "127.0.0.1", nullptr)), "direct");
  EXPECT_EQ(name_of(pick(r, "a.other:443", "127.0.0.1", &alice)), "direct");
}

// ------------------------------------------------------------ address-based rules

TEST(RouterMatch, DestinationCidrNeedsTheAddressOfANamedTarget) {
  auto fr = rule("", {U1});
  fr.dst = {"10.0.0.0/8"};
  const auto r = make({fr});
  // A name: the router asks for its address...
  EXPECT_EQ(pick(r, "internal.test:80"), nullptr);
  // ...then decides on it.
  EXPECT_EQ(name_of(pick(r, "internal.test:80", "127.0.0.1", nullptr, "10.1.1.1")), U1);
  EXPECT_EQ(name_of(pick(r, "internal.test:80", "127.0.0.1", nullptr, "192.0.2.1")), "direct");
  // An IP target has its address already: no question.
  EXPECT_EQ(name_of(pick(r, "10.9.9.9:80")), U1);
  EXPECT_EQ(name_of(pick(r, "192.0.2.9:80")), "direct");
}

TEST(RouterMatch, OtherConditionsAreCheckedBeforeAskingForTheAddress) {
  auto fr = rule("*.x.test:443", {U1});
  fr.dst = {"10.0.0.0/8"};
  const auto r = make({fr});
  EXPECT_EQ(name_of(pick(r, "a.y.test:443")), "direct");  // the name does not match: no lookup
  EXPECT_EQ(name_of(pick(r, "a.x.test:80")), "direct");   // nor the port
  EXPECT_EQ(pick(r, "a.x.test:443"), nullptr);
}

TEST(RouterMatch, AnEarlierAddressRuleIsResolvedBeforeALaterDefiniteMatch) {
  // First match wins in order: rule 0 might match once the address is
  // known, so rule 1 must wait for it.
  auto dst = rule("", {U1});
  dst.dst = {"10.0.0.0/8"};
  const auto r = make({dst, rule("*:*", {U2})});
  EXPECT_EQ(pick(r, "a.test:1"), nullptr);
  EXPECT_EQ(name_of(pick(r, "a.test:1", "127.0.0.1", nullptr, "10.0.0.1")), U1);
  EXPECT_EQ(name_of(pick(r, "a.test:1", "127.0.0.1", nullptr, "8.8.8.8")), U2);
  // The other way round, the definite match comes first: no lookup.
  const auto r2 = make({rule("*:*", {U2}), dst});
  EXPECT_EQ(name_of(pick(r2, "a.test:1")), U2);
}

TEST(RouterMatch, Countries) {
  build b;
  b.geo = std::make_shared<const cs::policy::geoip>(cs::test::policy::geoip_country_db());
  auto fr = rule("", {U1});
  fr.countries = {"se", "GB"};
  b.rules = {fr};
  const auto r = b.make();
  EXPECT_EQ(name_of(pick(r, "89.160.20.113:443")), U1);   // SE in the test database
  EXPECT_EQ(name_of(pick(r, "2.125.160.217:443")), U1);   // GB
  EXPECT_EQ(name_of(pick(r, "50.114.0.1:443")), "direct");  // US
  EXPECT_EQ(name_of(pick(r, "127.0.0.1:443")), "direct");  // no answer: no match
  EXPECT_EQ(pick(r, "name.test:443"), nullptr);
  EXPECT_EQ(name_of(pick(r, "name.test:443", "127.0.0.1", nullptr, "89.160.20.113")), U1);
}

// ------------------------------------------------------------ route kinds

TEST(RouterRoutes, Kinds) {
  forwarding_rule redirect;
  redirect.match = "redir.test:*";
  redirect.redirect = "127.0.0.1:8080";
  const auto r = make({rule("d.test:*", {"direct"}), rule("b.test:*", {"block"}), rule("n.test:*", {"dc"}),
                       rule("c.test:*", {"dc", U2}), redirect, rule("u.test:*", {U3}),
                       rule("dd.test:*", {"direct://"})},
                      {{"dc", "socks5://user:secret@dc.example:1080"}});
  const auto& rs = r.routes();
  ASSERT_EQ(rs.size(), 7u);
  EXPECT_EQ(rs[0].k, route::kind::direct);
  EXPECT_EQ(rs[0].name, "direct");
  EXPECT_EQ(rs[1].k, route::kind::block);
  EXPECT_EQ(rs[2].k, route::kind::chain);
  ASSERT_EQ(rs[2].hops.size(), 1u);
  EXPECT_EQ(rs[2].hops[0].username, "user");
  EXPECT_EQ(rs[2].name, "socks5://user:***@dc.example:1080");  // never the password
  EXPECT_EQ(rs[3].k, route::kind::chain);
  ASSERT_EQ(rs[3].hops.size(), 2u);
  EXPECT_EQ(rs[3].name, "socks5://user:***@dc.example:1080>" + U2);
  EXPECT_EQ(rs[4].k, route::kind::redirect);
  EXPECT_EQ(cs::core::to_string(rs[4].redirect), "127.0.0.1:8080");
  EXPECT_NE(rs[4].name.find("redirect 127.0.0.1:8080"), std::string::npos);
  EXPECT_EQ(rs[5].k, route::kind::chain);
  EXPECT_EQ(rs[5].name, U3);
  EXPECT_EQ(rs[6].k, route::kind::direct);
  for (const auto& rt : rs) {
    EXPECT_EQ(rt.name.find("secret"), std::string::npos) << rt.name;
  }
}

TEST(RouterRoutes, PoolRoutesNeedAPool) {
  EXPECT_THROW(make({rule("*:*", {"pool"})}), std::invalid_argument);
  EXPECT_THROW(make({rule("*:*", {"pool:main"})}), std::invalid_argument);
  build b;
  b.members = {{U1, 1}};
  b.rules = {rule("a:*", {"pool"}), rule("b:*", {"pool:main"})};
  const auto r = b.make();
  EXPECT_EQ(r.routes()[0].k, route::kind::pool);
  EXPECT_EQ(r.routes()[1].k, route::kind::pool);
}

TEST(RouterRoutes, Egress) {
  build b;
  b.egress.family = family_preference::prefer_v4;
  auto v4 = rule("v4.test:*", {"direct"});
  v4.bind = "127.0.0.5";
  auto v6 = rule("v6.test:*", {"direct"});
  v6.bind = "::1";
  auto pref = rule("p.test:*", {"direct"});
  pref.prefer = "only_ipv6";
  auto both = rule("both.test:*", {"direct"});
  both.bind = "127.0.0.5";
  both.prefer = "ipv6";  // prefer after bind: the last word
  b.rules = {v4, v6, pref, both, rule("plain.test:*", {"direct"})};
  const auto r = b.make();
  const auto& rs = r.routes();
  EXPECT_EQ(rs[0].egress.bind_v4, ip::make_address_v4("127.0.0.5"));
  EXPECT_EQ(rs[0].egress.family, family_preference::only_v4);
  EXPECT_EQ(rs[1].egress.bind_v6, ip::make_address_v6("::1"));
  EXPECT_EQ(rs[1].egress.family, family_preference::only_v6);
  EXPECT_EQ(rs[2].egress.family, family_preference::only_v6);
  EXPECT_FALSE(rs[2].egress.bind_v4);
  EXPECT_EQ(rs[3].egress.family, family_preference::prefer_v6);
  EXPECT_EQ(rs[4].egress.family, family_preference::prefer_v4);  // the default egress
  EXPECT_EQ(r.default_route().egress.family, family_preference::prefer_v4);
  for (const auto& [text, want] : {std::pair{"ipv4", family_preference::prefer_v4},
                                   {"ipv6", family_preference::prefer_v6},
                                   {"only_ipv4", family_preference::only_v4},
                                   {"only_ipv6", family_preference::only_v6}}) {
    auto fr = rule("*:*", {"direct"});
    fr.prefer = text;
    EXPECT_EQ(make({fr}).routes()[0].egress.family, want) << text;
  }
}

// ------------------------------------------------------------ errors

void expect_rule_error(forwarding_rule fr, const std::string& where, upstream_list ups = {}) {
  try {
    make({rule("ok.test:*", {"direct"}), std::move(fr)}, std::move(ups));
    ADD_FAILURE() << "accepted; expected an error naming " << where;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
  }
}

TEST(RouterErrors, NameTheRuleAndField) {
  expect_rule_error(rule("a b:*", {"direct"}), "forwarding[1].match");
  expect_rule_error(rule(":80", {"direct"}), "forwarding[1].match");
  expect_rule_error(rule("*.x:http", {"direct"}), "forwarding[1].match");
  expect_rule_error(rule("*.x:70000", {"direct"}), "forwarding[1].match");
  expect_rule_error(rule("x.*.test:*", {"direct"}), "forwarding[1].match");
  expect_rule_error(rule("*:*", {"nosuchname"}), "forwarding[1].upstream");
  expect_rule_error(rule("*:*", {"ftp://h:21"}), "forwarding[1].upstream");
  expect_rule_error(rule("*:*", {U1, "direct://"}), "forwarding[1].upstream[1]");
  auto src = rule("*:*", {"direct"});
  src.src = {"300.0.0.0/8"};
  expect_rule_error(src, "forwarding[1].src");
  auto dst = rule("*:*", {"direct"});
  dst.dst = {"10.0.0.0/33"};
  expect_rule_error(dst, "forwarding[1].dst");
  auto cc = rule("*:*", {"direct"});
  cc.countries = {"USA"};
  expect_rule_error(cc, "forwarding[1].countries");
  auto nogeo = rule("*:*", {"direct"});
  nogeo.countries = {"US"};
  expect_rule_error(nogeo, "geoip");
  auto redir = rule("*:*", {});
  redir.redirect = "127.0.0.1";
  expect_rule_error(redir, "forwarding[1].redirect");
  redir.redirect = "127.0.0.1:0";
  expect_rule_error(redir, "forwarding[1].redirect");
  auto remote = rule("*.a:*", {U1});
  remote.remote = "*.*.b:*";
  expect_rule_error(remote, "forwarding[1].remote");
  remote.remote = "*.b:80-90";
  expect_rule_error(remote, "forwarding[1].remote");
  remote.remote = ":80";
  expect_rule_error(remote, "forwarding[1].remote");
  auto bind = rule("*:*", {"direct"});
  bind.bind = "eth0";
  expect_rule_error(bind, "forwarding[1].bind");
  auto prefer = rule("*:*", {"direct"});
  prefer.prefer = "ipv5";
  expect_rule_error(prefer, "forwarding[1].prefer");
}

TEST(RouterErrors, BadPoolMember) {
  build b;
  b.pool.enabled = true;
  b.members = {{"bogus://x:1", 1}};
  EXPECT_THROW(b.make(), std::invalid_argument);
}

// ------------------------------------------------------------ resolve_hops

TEST(RouterHops, ResolveHops) {
  const upstream_list ups = {{"dc", "socks5://u:p@dc.example:1080"}, {"web", "http://proxy.example:3128"}};
  auto hops = router::resolve_hops({"dc", "web", "socks4a://h:1", "bare.example:1080"}, ups, "w");
  ASSERT_EQ(hops.size(), 4u);
  EXPECT_EQ(hops[0].password, "p");
  EXPECT_EQ(hops[1].scheme, cs::upstream::proxy_scheme::http);
  EXPECT_EQ(hops[2].scheme, cs::upstream::proxy_scheme::socks4a);
  EXPECT_EQ(hops[3].scheme, cs::upstream::proxy_scheme::socks5);
  EXPECT_TRUE(router::resolve_hops({"direct"}, ups, "w").empty());
  EXPECT_TRUE(router::resolve_hops({"direct://"}, ups, "w").empty());
  // A name in `upstreams` that says direct:// is direct too.
  EXPECT_TRUE(router::resolve_hops({"none"}, {{"none", "direct://"}}, "w").empty());
}

TEST(RouterHops, Errors) {
  auto message = [](std::vector<std::string> spec, upstream_list ups = {}) {
    try {
      router::resolve_hops(spec, ups, "where");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  EXPECT_NE(message({"nosuch"}).find("where: 'nosuch' is neither a name in 'upstreams' nor an upstream URL"),
            std::string::npos);
  EXPECT_NE(message({"socks5://h:1", "direct://"}).find("where[1]: direct:// cannot be a hop"), std::string::npos);
  EXPECT_NE(message({"socks5://h:1", "direct"}).find("where[1]"), std::string::npos);
  EXPECT_NE(message({"socks5://h:1", "x:y:z"}).find("where[1]"), std::string::npos);
  EXPECT_NE(message({"socks5://u:" + std::string(300, 'p') + "@h:1"}).find("255"), std::string::npos);
}

// ------------------------------------------------------------ rewrites

route with_remote(std::string host, std::optional<std::uint16_t> port) {
  route r;
  r.remote = cs::routing::rewrite{std::move(host), port};
  return r;
}

std::string rewrite(const route& r, std::string_view requested, std::string_view captured) {
  const auto t = router::rewritten(r, target(requested), captured);
  return t ? cs::core::to_string(*t) : "(none)";
}

TEST(RouterRewrite, NoRemoteKeepsTheTarget) {
  route r;
  EXPECT_EQ(rewrite(r, "a.test:443", "a"), "a.test:443");
  EXPECT_EQ(rewrite(r, "[::1]:1", ""), "[::1]:1");
}

TEST(RouterRewrite, StarAndPort) {
  EXPECT_EQ(rewrite(with_remote("*.amazonaws.com", std::nullopt), "s3.amazonaws.com:443", "s3"),
            "s3.amazonaws.com:443");
  EXPECT_EQ(rewrite(with_remote("*.internal.example", 8443), "api.public.test:443", "api"),
            "api.internal.example:8443");
  EXPECT_EQ(rewrite(with_remote("*.new.test", std::nullopt), "a.b.old.test:80", "a.b"), "a.b.new.test:80");
  EXPECT_EQ(rewrite(with_remote("fixed.test", std::nullopt), "x.test:80", "x"), "fixed.test:80");
  EXPECT_EQ(rewrite(with_remote("prefix-*", 1), "q.test:80", "q"), "prefix-q:1");
  // Nothing for '*': the "*." goes.
  EXPECT_EQ(rewrite(with_remote("*.new.test", std::nullopt), "old.test:80", ""), "new.test:80");
  EXPECT_EQ(rewrite(with_remote("x*", std::nullopt), "old.test:80", ""), "x:80");
}

TEST(RouterRewrite, AddressLiterals) {
  const auto v4 = router::rewritten(with_remote("192.0.2.7", std::nullopt), target("a.test:80"), "a");
  ASSERT_TRUE(v4);
  ASSERT_NE(v4->ip_address(), nullptr);
  EXPECT_EQ(cs::core::to_string(*v4), "192.0.2.7:80");
  const auto v6 = router::rewritten(with_remote("2001:db8::7", 443), target("a.test:80"), "a");
  ASSERT_TRUE(v6);
  ASSERT_NE(v6->ip_address(), nullptr);
  EXPECT_TRUE(v6->ip_address()->is_v6());
  EXPECT_EQ(cs::core::to_string(*v6), "[2001:db8::7]:443");
}

TEST(RouterRewrite, ANameThatDoesNotFitIsNoTarget) {
  const std::string suffix = std::string(200, 's') + ".test";
  EXPECT_EQ(rewrite(with_remote("*." + suffix, std::nullopt), "a.old.test:80", std::string(60, 'a')), "(none)");
  // Exactly 255 bytes still fits.
  const std::string captured(255 - 1 - suffix.size(), 'c');
  EXPECT_EQ(rewrite(with_remote("*." + suffix, std::nullopt), "x.old.test:80", captured), captured + "." + suffix + ":80");
}

TEST(RouterRewrite, CaptureFromTheMatchingRule) {
  auto sub = rule("*.amazonaws.com:*", {U1});
  sub.remote = "*.amazonaws.com:*";
  auto apex = rule(".corp.test:*", {U1});
  apex.remote = "*.internal:*";
  auto exact = rule("exact.test:*", {U1});
  exact.remote = "*.x:*";
  const auto r = make({sub, apex, exact});
  const auto& rs = r.routes();
  EXPECT_EQ(r.capture(rs[0], "s3.us-east-1.amazonaws.com"), "s3.us-east-1");
  EXPECT_EQ(r.capture(rs[1], "a.corp.test"), "a");
  EXPECT_EQ(r.capture(rs[1], "corp.test"), "");
  EXPECT_EQ(r.capture(rs[2], "exact.test"), "exact.test");
  EXPECT_EQ(r.capture(r.default_route(), "any.test"), "any.test");
  // The seed's rule sends the same name on.
  EXPECT_EQ(rewrite(rs[0], "s3.us-east-1.amazonaws.com:443", r.capture(rs[0], "s3.us-east-1.amazonaws.com")),
            "s3.us-east-1.amazonaws.com:443");
  EXPECT_EQ(rewrite(rs[1], "corp.test:22", r.capture(rs[1], "corp.test")), "internal:22");
  ASSERT_TRUE(rs[0].remote);
  EXPECT_FALSE(rs[0].remote->port);  // "*" keeps the requested port
}

// ------------------------------------------------------------ port forwards

TEST(RouterForwards, Compile) {
  build b;
  b.members = {{U1, 1}};
  b.upstreams = {{"dcs", "socks5://dcs.example:1080"}};
  port_forward_settings direct_pf{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 8887), "example.com:80", {}};
  port_forward_settings via_name{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 8888), "10.0.0.1:22", {"dcs"}};
  port_forward_settings chain{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 8889), "[::1]:80", {"dcs", U2}};
  port_forward_settings pooled{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 8890), "h:1", {"pool"}};
  b.forwards = {direct_pf, via_name, chain, pooled};
  const auto r = b.make();
  const auto& f = r.forwards();
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].r.k, route::kind::direct);
  EXPECT_EQ(f[0].r.name, "direct");
  EXPECT_EQ(cs::core::to_string(f[0].target), "example.com:80");
  EXPECT_EQ(f[1].r.k, route::kind::chain);
  EXPECT_EQ(f[1].r.name, "socks5://dcs.example:1080");
  EXPECT_EQ(f[2].r.hops.size(), 2u);
  EXPECT_EQ(f[3].r.k, route::kind::pool);
  // Port forwards are not forwarding rules: routes() does not list them.
  EXPECT_TRUE(r.routes().empty());
}

TEST(RouterForwards, Errors) {
  build b;
  b.forwards = {{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 1), "no-port", {}}};
  EXPECT_THROW(b.make(), std::invalid_argument);
  b.forwards = {{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 1), "h:0", {}}};
  EXPECT_THROW(b.make(), std::invalid_argument);
  b.forwards = {{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 1), "h:1", {"pool"}}};
  EXPECT_THROW(b.make(), std::invalid_argument);  // no pool
  b.forwards = {{ip::tcp::endpoint(ip::make_address("127.0.0.1"), 1), "h:1", {"unknown-name"}}};
  try {
    b.make();
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("port_forward[0].via"), std::string::npos) << e.what();
  }
}

}  // namespace
