#include "routing/router.hpp"

#include "policy/rule_spec.hpp"

#include <algorithm>
#include <stdexcept>

namespace cs::routing {

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::invalid_argument(where + ": " + what);
}

// Splits "HOST:PORT" / "[v6]:PORT" / "HOST" (no port) at the port colon.
std::pair<std::string_view, std::string_view> split_pattern(std::string_view text) {
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return {text, {}};
    }
    const auto rest = text.substr(close + 1);
    return {text.substr(1, close - 1), rest.starts_with(':') ? rest.substr(1) : std::string_view{}};
  }
  if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    return {text.substr(0, colon), text.substr(colon + 1)};
  }
  return {text, {}};
}

std::optional<upstream::family_preference> parse_prefer(std::string_view t) {
  if (t == "ipv6") {
    return upstream::family_preference::prefer_v6;
  }
  if (t == "ipv4") {
    return upstream::family_preference::prefer_v4;
  }
  if (t == "only_ipv4") {
    return upstream::family_preference::only_v4;
  }
  if (t == "only_ipv6") {
    return upstream::family_preference::only_v6;
  }
  return std::nullopt;
}

}  // namespace

std::vector<upstream::proxy_url> router::resolve_hops(const std::vector<std::string>& spec,
                                                      const std::vector<std::pair<std::string, std::string>>& upstreams,
                                                      const std::string& where) {
  std::vector<upstream::proxy_url> hops;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    const auto& s = spec[i];
    const std::string at = where + (spec.size() > 1 ? "[" + std::to_string(i) + "]" : "");
    if (s == "direct" && spec.size() == 1) {
      return {};
    }
    std::string text = s;
    for (const auto& [name, url] : upstreams) {
      if (name == s) {
        text = url;
        break;
      }
    }
    upstream::proxy_url u;
    std::string err;
    if (!upstream::parse_proxy_url(text, u, &err)) {
      fail(at, "'" + s + "' is neither a name in 'upstreams' nor an upstream URL (" + err + ")");
    }
    if (u.scheme == upstream::proxy_scheme::direct) {
      if (spec.size() == 1) {
        return {};
      }
      fail(at, "direct:// cannot be a hop of a chain");
    }
    hops.push_back(std::move(u));
  }
  return hops;
}

router::router() { default_.name = "direct"; }

router::router(const std::vector<forwarding_rule>& rules,
               const std::vector<std::pair<std::string, std::string>>& upstreams, const pool_settings& pool_cfg,
               std::vector<member_spec> pool_members, upstream::connect_options default_egress,
               std::shared_ptr<const policy::geoip> geo, const std::vector<port_forward_settings>& forwards)
    : geo_(std::move(geo)) {
  // The pool, if it has members.
  if (pool_cfg.enabled || !pool_members.empty()) {
    std::vector<pool::member> members;
    for (const auto& m : pool_members) {
      upstream::proxy_url u;
      std::string err;
      if (!upstream::parse_proxy_url(m.url, u, &err)) {
        fail("proxy_pool", "member '" + m.url + "': " + err);
      }
      members.push_back({global_members().get(u), m.weight});
    }
    strategy st = strategy::round_robin;
    hash_key hk = hash_key::client_ip;
    parse_strategy(pool_cfg.strategy, st);
    parse_hash_key(pool_cfg.hash_key, hk);
    pool_ = std::make_unique<pool>(std::move(members), st, hk, pool_cfg.max_tries,
                                   breaker_settings{pool_cfg.failures_to_eject, pool_cfg.eject_base, pool_cfg.eject_max});
  }
  default_.egress = default_egress;
  if (pool_cfg.enabled) {
    default_.k = route::kind::pool;
    default_.name = "pool";
  } else {
    default_.name = "direct";
  }

  for (std::size_t i = 0; i < rules.size(); ++i) {
    const auto& fr = rules[i];
    const std::string where = "forwarding[" + std::to_string(i) + "]";
    matcher m;
    route r;
    r.rule = i;
    r.name = where;
    r.egress = default_egress;
    if (!fr.match.empty()) {
      const auto [host, port] = split_pattern(fr.match);
      if (host.empty()) {
        fail(where + ".match", "expected HOST_PATTERN:PORT_PATTERN");
      }
      if (host != "*") {
        std::string err;
        policy::cidr c;
        if (policy::parse_cidr(host, c, nullptr)) {
          m.host_cidr = c;
        } else {
          policy::domain_pattern p;
          if (!policy::parse_domain_pattern(host, p, &err)) {
            fail(where + ".match", "'" + std::string(host) + "': " + err);
          }
          m.host = p;
        }
      }
      if (!port.empty() && port != "*") {
        policy::port_range pr;
        if (!policy::parse_port_range(port, pr)) {
          fail(where + ".match", "bad port pattern '" + std::string(port) + "' (PORT, LOW-HIGH or *)");
        }
        m.ports.push_back(pr);
      }
    }
    for (const auto& t : fr.src) {
      policy::cidr c;
      std::string err;
      if (!policy::parse_cidr(t, c, &err)) {
        fail(where + ".src", "'" + t + "': " + err);
      }
      m.src.add(c);
      m.has_src = true;
    }
    m.src.finalize();
    for (const auto& t : fr.dst) {
      policy::cidr c;
      std::string err;
      if (!policy::parse_cidr(t, c, &err)) {
        fail(where + ".dst", "'" + t + "': " + err);
      }
      m.dst.add(c);
      m.has_dst = true;
    }
    m.dst.finalize();
    m.users = fr.users;
    for (const auto& t : fr.countries) {
      std::string cc;
      if (!policy::parse_country(t, cc)) {
        fail(where + ".countries", "'" + t + "': expected a two-letter ISO code");
      }
      m.countries.push_back(cc);
    }
    if (!m.countries.empty() && !geo_) {
      fail(where + ".countries", "needs geoip.database");
    }

    if (!fr.redirect.empty()) {
      r.k = route::kind::redirect;
      if (!core::parse_target(fr.redirect, r.redirect) || r.redirect.port == 0) {
        fail(where + ".redirect", "expected HOST:PORT");
      }
      r.name = where + " redirect " + core::to_string(r.redirect);
    } else if (fr.upstream.size() == 1 && fr.upstream[0] == "block") {
      r.k = route::kind::block;
    } else if (fr.upstream.size() == 1 && (fr.upstream[0] == "pool" || fr.upstream[0].starts_with("pool:"))) {
      if (!pool_) {
        fail(where + ".upstream", "'pool' needs proxy_pool members or a source");
      }
      r.k = route::kind::pool;
      r.name = "pool";
    } else {
      r.hops = resolve_hops(fr.upstream, upstreams, where + ".upstream");
      if (r.hops.empty()) {
        r.k = route::kind::direct;
        r.name = "direct";
      } else {
        r.k = route::kind::chain;
        r.name.clear();
        for (const auto& h : r.hops) {
          r.name += (r.name.empty() ? "" : ">") + h.redacted();
        }
      }
    }
    if (!fr.remote.empty()) {
      const auto [host, port] = split_pattern(fr.remote);
      rewrite rw;
      rw.host = std::string(host);
      if (!port.empty() && port != "*") {
        policy::port_range pr;
        if (!policy::parse_port_range(port, pr) || pr.lo != pr.hi) {
          fail(where + ".remote", "the port must be a number or *");
        }
        rw.port = pr.lo;
      }
      if (rw.host.empty() || std::count(rw.host.begin(), rw.host.end(), '*') > 1) {
        fail(where + ".remote", "expected HOST:PORT with at most one '*' in HOST");
      }
      r.remote = rw;
    }
    if (!fr.bind.empty()) {
      boost::system::error_code ec;
      const auto a = core::ip::make_address(fr.bind, ec);
      if (ec) {
        fail(where + ".bind", "expected an IP address");
      }
      if (a.is_v4()) {
        r.egress.bind_v4 = a.to_v4();
        r.egress.family = upstream::family_preference::only_v4;
      } else {
        r.egress.bind_v6 = a.to_v6();
        r.egress.family = upstream::family_preference::only_v6;
      }
    }
    if (!fr.prefer.empty()) {
      const auto p = parse_prefer(fr.prefer);
      if (!p) {
        fail(where + ".prefer", "expected ipv6, ipv4, only_ipv4 or only_ipv6");
      }
      r.egress.family = *p;
    }
    matchers_.push_back(std::move(m));
    routes_.push_back(std::move(r));
  }

  for (std::size_t i = 0; i < forwards.size(); ++i) {
    const auto& pf = forwards[i];
    const std::string where = "port_forward[" + std::to_string(i) + "]";
    forward f;
    if (!core::parse_target(pf.target, f.target) || f.target.port == 0) {
      fail(where + ".target", "expected HOST:PORT");
    }
    f.r.rule = SIZE_MAX;
    f.r.egress = default_egress;
    if (pf.via.size() == 1 && (pf.via[0] == "pool" || pf.via[0].starts_with("pool:"))) {
      if (!pool_) {
        fail(where + ".via", "'pool' needs proxy_pool members or a source");
      }
      f.r.k = route::kind::pool;
      f.r.name = "pool";
    } else {
      f.r.hops = resolve_hops(pf.via.empty() ? std::vector<std::string>{"direct"} : pf.via, upstreams, where + ".via");
      f.r.k = f.r.hops.empty() ? route::kind::direct : route::kind::chain;
      for (const auto& h : f.r.hops) {
        f.r.name += (f.r.name.empty() ? "" : ">") + h.redacted();
      }
      if (f.r.hops.empty()) {
        f.r.name = "direct";
      }
    }
    forwards_.push_back(std::move(f));
  }
}

router::tri router::matches(const matcher& m, const route_request& req) const {
  const auto& t = *req.target;
  if (!m.ports.empty() && std::none_of(m.ports.begin(), m.ports.end(),
                                       [&](const policy::port_range& p) { return p.contains(t.port); })) {
    return tri::no;
  }
  if (m.has_src && !m.src.contains(req.client)) {
    return tri::no;
  }
  if (!m.users.empty()) {
    if (req.user == nullptr) {
      return tri::no;
    }
    const bool hit = std::any_of(m.users.begin(), m.users.end(), [&](const std::string& u) {
      if (u == "*" || u == req.user->name) {
        return true;
      }
      return u.starts_with('@') &&
             std::find(req.user->groups.begin(), req.user->groups.end(), u.substr(1)) != req.user->groups.end();
    });
    if (!hit) {
      return tri::no;
    }
  }
  if (m.host && (req.host.empty() || !m.host->matches(req.host))) {
    return tri::no;
  }
  if (m.host_cidr && (!t.ip_address() || !m.host_cidr->contains(*t.ip_address()))) {
    return tri::no;
  }
  tri result = tri::yes;
  if (m.has_dst) {
    if (!req.address) {
      result = tri::maybe;
    } else if (!m.dst.contains(*req.address)) {
      return tri::no;
    }
  }
  if (!m.countries.empty()) {
    if (!req.address) {
      result = tri::maybe;
    } else {
      const auto cc = geo_ ? geo_->country(*req.address) : std::nullopt;
      if (!cc || std::none_of(m.countries.begin(), m.countries.end(), [&](const std::string& c) {
            return c[0] == (*cc)[0] && c[1] == (*cc)[1];
          })) {
        return tri::no;
      }
    }
  }
  return result;
}

route_decision router::select(const route_request& req) const {
  for (std::size_t i = 0; i < matchers_.size(); ++i) {
    switch (matches(matchers_[i], req)) {
      case tri::no: continue;
      case tri::maybe: return {nullptr};
      case tri::yes: return {&routes_[i]};
    }
  }
  return {&default_};
}

std::string_view router::capture(const route& r, std::string_view host) const {
  if (r.rule >= matchers_.size()) {
    return host;
  }
  const auto& m = matchers_[r.rule];
  if (m.host && (m.host->k == policy::domain_pattern::kind::subdomains ||
                 m.host->k == policy::domain_pattern::kind::domain_and_subdomains)) {
    if (host.size() > m.host->name.size() + 1) {
      return host.substr(0, host.size() - m.host->name.size() - 1);
    }
    return {};
  }
  return host;
}

std::optional<core::target_address> router::rewritten(const route& r, const core::target_address& requested,
                                       std::string_view captured) {
  if (!r.remote) {
    return requested;
  }
  core::target_address out = requested;
  std::string host = r.remote->host;
  if (const auto star = host.find('*'); star != std::string::npos) {
    if (captured.empty()) {
      // Nothing to put in place of '*' (e.g. "*.x" matched "x" itself):
      // drop the "*." prefix.
      host.erase(star, host.size() > star + 1 && host[star + 1] == '.' ? 2 : 1);
    } else {
      host.replace(star, 1, captured);
    }
  }
  boost::system::error_code ec;
  const auto literal = core::ip::make_address(host, ec);
  if (!ec) {
    out.host = literal;
  } else if (!host.empty() && host.size() <= core::domain_name::static_capacity) {
    out.host = core::domain_name(host);
  } else {
    return std::nullopt;  // never fall back to the un-rewritten name
  }
  if (r.remote->port) {
    out.port = *r.remote->port;
  }
  return out;
}

}  // namespace cs::routing
