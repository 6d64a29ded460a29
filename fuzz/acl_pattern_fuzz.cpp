// ACL pattern parsing and matching in policy/: parse_cidr,
// parse_domain_pattern, parse_destination, parse_port_range, parse_country,
// parse_command over the whole input; then, one item per line, a compiled
// ip_set and domain_pattern::matches against simple oracles.
//
// Invariants:
//  - a parsed CIDR prints and re-parses to itself (host bits clear, IPv4-
//    mapped prefixes stored as IPv4) and comes from NUL-free text (the
//    address parser reads a C string: a NUL would hide what follows);
//  - a parsed domain pattern prints and re-parses to itself and is the text
//    lower-cased without its "*." / "." prefix and trailing dot;
//  - parse_destination accepts exactly what parse_cidr (IP-looking text) or
//    parse_domain_pattern (anything else) accepts, plus "*";
//  - port ranges, countries and commands agree with their one-line grammar;
//  - ip_set::contains(a) == any CIDR contains a, for probes at and around
//    every range's ends (and IPv4-mapped forms), whatever the insertion
//    order;
//  - domain_pattern::matches agrees with the documented meaning of exact,
//    "*.", "." and "*".
#include "fuzz_common.hpp"
#include "policy/acl.hpp"
#include "policy/ip_set.hpp"
#include "policy/rule_spec.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace pol = cs::policy;
namespace core = cs::core;
namespace ip = core::ip;

namespace {

__extension__ using u128 = unsigned __int128;

u128 to_u128(const ip::address_v6& a) {
  u128 v = 0;
  for (const auto b : a.to_bytes()) {
    v = (v << 8) | b;
  }
  return v;
}

ip::address_v6 from_u128(u128 v) {
  ip::address_v6::bytes_type b{};
  for (int i = 15; i >= 0; --i) {
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v & 0xFF);
    v >>= 8;
  }
  return ip::address_v6(b);
}

bool all_of(std::string_view s, bool (*pred)(char)) { return std::all_of(s.begin(), s.end(), pred); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

void check_cidr(std::string_view text, const pol::cidr& c) {
  FUZZ_CHECK(text.find('\0') == std::string_view::npos);
  FUZZ_CHECK(c.prefix <= (c.network.is_v4() ? 32 : 128));
  FUZZ_CHECK(!(c.network.is_v6() && c.network.to_v6().is_v4_mapped()));
  pol::cidr back;
  FUZZ_CHECK(pol::parse_cidr(c.to_string(), back));
  FUZZ_CHECK(back == c);
  if (text.find('/') == std::string_view::npos) {
    FUZZ_CHECK(c.prefix == (c.network.is_v4() ? 32 : 128));
  }
}

void check_pattern(std::string_view text, const pol::domain_pattern& p) {
  using kind = pol::domain_pattern::kind;
  pol::domain_pattern back;
  FUZZ_CHECK(pol::parse_domain_pattern(p.to_string(), back));
  FUZZ_CHECK(back == p);
  if (p.k == kind::any) {
    FUZZ_CHECK(text == "*" && p.name.empty());
    return;
  }
  std::string_view body = text;
  if (p.k == kind::subdomains) {
    FUZZ_CHECK(body.starts_with("*."));
    body.remove_prefix(2);
  } else if (p.k == kind::domain_and_subdomains) {
    FUZZ_CHECK(body.starts_with("."));
    body.remove_prefix(1);
  } else {
    FUZZ_CHECK(!body.starts_with("*.") && !body.starts_with("."));
  }
  if (body.ends_with('.')) {
    body.remove_suffix(1);
  }
  FUZZ_CHECK(body.size() == p.name.size() && !p.name.empty() && p.name.size() <= 253);
  for (std::size_t i = 0; i < body.size(); ++i) {
    const auto c = static_cast<unsigned char>(body[i]);
    FUZZ_CHECK(p.name[i] == static_cast<char>(std::tolower(c)));
    FUZZ_CHECK(std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.');
  }
  FUZZ_CHECK(p.name.front() != '.' && p.name.back() != '.' && p.name.find("..") == std::string::npos);
}

bool oracle_matches(const pol::domain_pattern& p, const std::string& host) {
  using kind = pol::domain_pattern::kind;
  const std::string dot_name = "." + p.name;
  const bool below = host.size() > dot_name.size() && host.ends_with(dot_name);
  switch (p.k) {
    case kind::any: return true;
    case kind::exact: return host == p.name;
    case kind::subdomains: return below;
    case kind::domain_and_subdomains: return below || host == p.name;
  }
  return false;
}

void check_port_range(std::string_view text) {
  pol::port_range p;
  const bool ok = pol::parse_port_range(text, p);
  if (text == "*") {
    FUZZ_CHECK(ok && p.lo == 0 && p.hi == 65535);
    return;
  }
  // Oracle: DIGITS or DIGITS-DIGITS, 1..65535, lo <= hi.
  const auto dash = text.find('-');
  const auto num = [](std::string_view t, unsigned& v) {
    if (t.empty() || !all_of(t, is_digit)) {
      return false;
    }
    const auto nz = t.find_first_not_of('0');
    if (nz != std::string_view::npos && t.size() - nz > 5) {
      return false;
    }
    v = 0;
    for (const char c : t) {
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v <= 65535;
  };
  unsigned lo = 0;
  unsigned hi = 0;
  bool want = false;
  if (dash == std::string_view::npos) {
    want = num(text, lo) && lo >= 1;
    hi = lo;
  } else {
    want = num(text.substr(0, dash), lo) && num(text.substr(dash + 1), hi) && lo >= 1 && lo <= hi;
  }
  FUZZ_CHECK(ok == want);
  if (ok) {
    FUZZ_CHECK(p.lo == lo && p.hi == hi);
  }
}

void check_country(std::string_view text) {
  std::string cc = "xx";
  const bool ok = pol::parse_country(text, cc);
  const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  FUZZ_CHECK(ok == (text.size() == 2 && alpha(text[0]) && alpha(text[1])));
  if (ok) {
    FUZZ_CHECK(cc.size() == 2 && cc[0] == static_cast<char>(std::toupper(static_cast<unsigned char>(text[0]))) &&
               cc[1] == static_cast<char>(std::toupper(static_cast<unsigned char>(text[1]))));
  }
}

void check_command(std::string_view text) {
  std::uint8_t bits = 0;
  const bool ok = pol::parse_command(text, bits);
  std::uint8_t want = 0;
  if (text == "connect") {
    want = pol::command_bits::connect;
  } else if (text == "bind") {
    want = pol::command_bits::bind;
  } else if (text == "udp" || text == "udp_associate") {
    want = pol::command_bits::udp;
  } else if (text == "*") {
    want = pol::command_bits::all;
  }
  FUZZ_CHECK(ok == (want != 0) && bits == want);
}

void check_whole(std::string_view text) {
  pol::cidr c;
  std::string err;
  const bool cidr_ok = pol::parse_cidr(text, c, &err);
  FUZZ_CHECK(cidr_ok || !err.empty());
  if (cidr_ok) {
    check_cidr(text, c);
  }
  pol::domain_pattern p;
  err.clear();
  const bool pattern_ok = pol::parse_domain_pattern(text, p, &err);
  FUZZ_CHECK(pattern_ok || !err.empty());
  if (pattern_ok) {
    check_pattern(text, p);
  }

  pol::rule r;
  err.clear();
  const bool dest_ok = pol::parse_destination(text, r, &err);
  FUZZ_CHECK(dest_ok || !err.empty());
  const bool looks_ip = text.find(':') != std::string_view::npos ||
                        all_of(text, [](char ch) { return is_digit(ch) || ch == '.' || ch == '/'; });
  if (text == "*") {
    FUZZ_CHECK(dest_ok && r.dst_domains.size() == 1 && r.dst_cidrs.size() == 2);
  } else if (text.empty()) {
    FUZZ_CHECK(!dest_ok);
  } else if (looks_ip) {
    FUZZ_CHECK(dest_ok == cidr_ok);
    if (dest_ok) {
      FUZZ_CHECK(r.dst_cidrs.size() == 1 && r.dst_cidrs[0] == c && r.dst_domains.empty());
    }
  } else {
    FUZZ_CHECK(dest_ok == pattern_ok);
    if (dest_ok) {
      FUZZ_CHECK(r.dst_domains.size() == 1 && r.dst_domains[0] == p && r.dst_cidrs.empty());
    }
  }

  check_port_range(text);
  check_country(text);
  check_command(text);
}

/// First and last address of `c`.
std::pair<ip::address, ip::address> bounds(const pol::cidr& c) {
  if (c.network.is_v4()) {
    const std::uint32_t lo = c.network.to_v4().to_uint();
    const std::uint32_t host = c.prefix == 0 ? ~0u : (c.prefix == 32 ? 0u : (~0u >> c.prefix));
    return {ip::address_v4(lo), ip::address_v4(lo | host)};
  }
  const u128 lo = to_u128(c.network.to_v6());
  const u128 host = c.prefix == 0 ? ~u128{0} : (c.prefix == 128 ? u128{0} : (~u128{0} >> c.prefix));
  return {from_u128(lo), from_u128(lo | host)};
}

void add_probes(const ip::address& a, std::vector<ip::address>& probes) {
  probes.push_back(a);
  if (a.is_v4()) {
    const std::uint32_t v = a.to_v4().to_uint();
    probes.emplace_back(ip::address_v4(v - 1));
    probes.emplace_back(ip::address_v4(v + 1));
    probes.emplace_back(ip::make_address_v6(ip::v4_mapped, a.to_v4()));
  } else {
    const u128 v = to_u128(a.to_v6());
    probes.emplace_back(from_u128(v - 1));
    probes.emplace_back(from_u128(v + 1));
  }
}

void check_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty() && lines.size() < 32) {
    const auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }

  std::vector<pol::cidr> cidrs;
  std::vector<ip::address> probes;
  std::vector<pol::domain_pattern> patterns;
  std::vector<std::string> hosts;
  for (const auto line : lines) {
    pol::cidr c;
    if (pol::parse_cidr(line, c)) {
      check_cidr(line, c);
      cidrs.push_back(c);
      const auto [lo, hi] = bounds(c);
      // Both ends are inside, except an IPv4-mapped end of an IPv6 range
      // (::/80 ends in ::ffff:255.255.255.255): mapped addresses are
      // looked up as IPv4, by design.
      const auto mapped = [](const ip::address& a) { return a.is_v6() && a.to_v6().is_v4_mapped(); };
      FUZZ_CHECK(c.contains(lo) || mapped(lo));
      FUZZ_CHECK(c.contains(hi) || mapped(hi));
      add_probes(lo, probes);
      add_probes(hi, probes);
    }
    if (line.find('\0') == std::string_view::npos && line.size() <= 64) {
      boost::system::error_code ec;
      const auto a = ip::make_address(std::string(line), ec);
      if (!ec) {
        add_probes(a, probes);
      }
    }
    pol::domain_pattern p;
    if (pol::parse_domain_pattern(line, p)) {
      check_pattern(line, p);
      patterns.push_back(std::move(p));
    }
    hosts.push_back(pol::normalise_host(line));
  }

  // ip_set against a linear scan, in both insertion orders.
  pol::ip_set fwd;
  pol::ip_set rev;
  for (const auto& c : cidrs) {
    fwd.add(c);
  }
  for (auto it = cidrs.rbegin(); it != cidrs.rend(); ++it) {
    rev.add(*it);
  }
  fwd.finalize();
  rev.finalize();
  FUZZ_CHECK(fwd.empty() == cidrs.empty() && rev.empty() == cidrs.empty());
  for (const auto& a : probes) {
    const bool want = std::any_of(cidrs.begin(), cidrs.end(), [&](const pol::cidr& c) { return c.contains(a); });
    FUZZ_CHECK(fwd.contains(a) == want);
    FUZZ_CHECK(rev.contains(a) == want);
  }

  // domain_pattern::matches against the oracle, for every line as a host.
  for (const auto& p : patterns) {
    for (const auto& h : hosts) {
      FUZZ_CHECK(p.matches(h) == oracle_matches(p, h));
    }
    if (p.k != pol::domain_pattern::kind::any) {
      FUZZ_CHECK(p.matches(p.name) == (p.k != pol::domain_pattern::kind::subdomains));
      FUZZ_CHECK(p.matches("x." + p.name) == (p.k != pol::domain_pattern::kind::exact));
      FUZZ_CHECK(!p.matches("x" + p.name));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) {
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_whole(text);
  check_lines(text);
  return 0;
}
