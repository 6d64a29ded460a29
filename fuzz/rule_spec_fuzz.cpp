// The --allow / --deny SPEC: policy::parse_rule_spec over arbitrary text.
//
// Invariants:
//  - failure always says why; the action only changes the rule's action and
//    default name, never whether or how the text parses;
//  - every field of a parsed rule is well-formed: CIDRs print and re-parse
//    (parse_cidr) to themselves, so no host bits; domain patterns print and
//    re-parse (parse_domain_pattern) to themselves, lower case, no trailing
//    dot; port ranges are 1..65535 with lo <= hi, or "*" (0-65535);
//    commands non-empty; countries two upper-case letters; users non-empty
//    with no ',' or white space; the DEST[:PORTS] form sets only
//    destinations and ports and names the rule after its text;
//  - encode(parse(x)) re-parses to the same rule (names aside), where encode
//    writes the key=value form: dst= (CIDRs, then patterns; "*" stands for
//    its pattern and both /0 prefixes) src= port= user= cmd= country=.
#include "fuzz_common.hpp"
#include "policy/rule_spec.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace pol = cs::policy;
namespace core = cs::core;

namespace {

bool cidr_less(const pol::cidr& a, const pol::cidr& b) {
  return a.network != b.network ? a.network < b.network : a.prefix < b.prefix;
}

void check_cidr(const pol::cidr& c) {
  FUZZ_CHECK(c.prefix <= (c.network.is_v4() ? 32 : 128));
  FUZZ_CHECK(!(c.network.is_v6() && c.network.to_v6().is_v4_mapped()));
  pol::cidr back;
  std::string err;
  FUZZ_CHECK(pol::parse_cidr(c.to_string(), back, &err));
  FUZZ_CHECK(back == c);
  FUZZ_CHECK(c.contains(c.network));
}

void check_pattern(const pol::domain_pattern& p) {
  if (p.k == pol::domain_pattern::kind::any) {
    FUZZ_CHECK(p.name.empty() && p.to_string() == "*");
    return;
  }
  FUZZ_CHECK(!p.name.empty() && p.name.size() <= 253 && p.name.back() != '.');
  FUZZ_CHECK(std::none_of(p.name.begin(), p.name.end(), [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; }));
  pol::domain_pattern back;
  std::string err;
  FUZZ_CHECK(pol::parse_domain_pattern(p.to_string(), back, &err));
  FUZZ_CHECK(back == p);
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    out += out.empty() ? "" : ",";
    out += s;
  }
  return out;
}

/// The key=value form of `r` (without its name).
std::string encode(const pol::rule& r) {
  std::vector<std::string> dst;
  std::vector<pol::cidr> cidrs = r.dst_cidrs;
  std::vector<std::string> patterns;
  for (const auto& p : r.dst_domains) {
    if (p.k == pol::domain_pattern::kind::any) {
      // "*" also brought 0.0.0.0/0 and ::/0; it brings them back.
      for (const char* any : {"0.0.0.0/0", "::/0"}) {
        pol::cidr c;
        FUZZ_CHECK(pol::parse_cidr(any, c));
        const auto it = std::find(cidrs.begin(), cidrs.end(), c);
        FUZZ_CHECK(it != cidrs.end());
        cidrs.erase(it);
      }
    }
    patterns.push_back(p.to_string());
  }
  for (const auto& c : cidrs) {
    dst.push_back(c.to_string());
  }
  dst.insert(dst.end(), patterns.begin(), patterns.end());

  std::string out;
  const auto add = [&](const char* key, const std::vector<std::string>& items) {
    if (!items.empty()) {
      out += out.empty() ? "" : " ";
      out += key;
      out += '=';
      out += join(items);
    }
  };
  add("dst", dst);
  std::vector<std::string> src;
  for (const auto& c : r.src) {
    src.push_back(c.to_string());
  }
  add("src", src);
  std::vector<std::string> ports;
  for (const auto& p : r.ports) {
    ports.push_back(p.lo == 0 ? "*" : p.lo == p.hi ? std::to_string(p.lo) : std::to_string(p.lo) + "-" + std::to_string(p.hi));
  }
  add("port", ports);
  add("user", r.users);
  std::vector<std::string> cmds;
  if (r.commands != pol::command_bits::all) {  // all is the default: nothing to write
    if ((r.commands & pol::command_bits::connect) != 0) {
      cmds.emplace_back("connect");
    }
    if ((r.commands & pol::command_bits::bind) != 0) {
      cmds.emplace_back("bind");
    }
    if ((r.commands & pol::command_bits::udp) != 0) {
      cmds.emplace_back("udp");
    }
  }
  add("cmd", cmds);
  add("country", r.countries);
  return out;
}

bool same_fields(const pol::rule& a, const pol::rule& b, bool sort_dst_cidrs) {
  auto ca = a.dst_cidrs;
  auto cb = b.dst_cidrs;
  if (sort_dst_cidrs) {
    std::sort(ca.begin(), ca.end(), cidr_less);
    std::sort(cb.begin(), cb.end(), cidr_less);
  }
  return a.act == b.act && a.src == b.src && a.users == b.users && ca == cb && a.dst_domains == b.dst_domains &&
         a.ports == b.ports && a.commands == b.commands && a.countries == b.countries;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  pol::rule r;
  const std::string err = pol::parse_rule_spec(text, pol::action::allow, r);

  // The action changes nothing else; a dirty output object neither.
  pol::rule d;
  d.users = {"dirty"};
  d.ports = {{1, 2}};
  d.commands = 0;
  const std::string err_deny = pol::parse_rule_spec(text, pol::action::block, d);
  FUZZ_CHECK(err == err_deny);
  FUZZ_CHECK(r.act == pol::action::allow && d.act == pol::action::block);
  d.act = pol::action::allow;
  FUZZ_CHECK(same_fields(r, d, false));
  if (!err.empty()) {
    return 0;
  }

  FUZZ_CHECK(!r.name.empty());
  for (const auto& c : r.src) {
    check_cidr(c);
  }
  for (const auto& c : r.dst_cidrs) {
    check_cidr(c);
  }
  for (const auto& p : r.dst_domains) {
    check_pattern(p);
  }
  for (const auto& p : r.ports) {
    FUZZ_CHECK((p.lo >= 1 && p.lo <= p.hi) || (p.lo == 0 && p.hi == 65535));
  }
  FUZZ_CHECK(r.commands != 0 && (r.commands & ~pol::command_bits::all) == 0);
  for (const auto& c : r.countries) {
    FUZZ_CHECK(c.size() == 2 && std::isupper(static_cast<unsigned char>(c[0])) != 0 &&
               std::isupper(static_cast<unsigned char>(c[1])) != 0);
  }
  for (const auto& u : r.users) {
    FUZZ_CHECK(!u.empty() && u.find(',') == std::string::npos);
    FUZZ_CHECK(std::none_of(u.begin(), u.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }));
  }
  if (text.find('=') == std::string_view::npos) {
    // DEST[:PORTS]
    FUZZ_CHECK(r.src.empty() && r.users.empty() && r.countries.empty() && r.commands == pol::command_bits::all);
    FUZZ_CHECK(r.name == "--allow " + std::string(text.substr(0, 200)));
    FUZZ_CHECK(d.name == "--deny " + std::string(text.substr(0, 200)));
    FUZZ_CHECK(r.dst_cidrs.size() + r.dst_domains.size() <= 1);
  }

  const std::string canonical = encode(r);
  pol::rule again;
  if (canonical.empty()) {
    // Nothing to write: a rule that matches anything ("*", "*:*").
    FUZZ_CHECK(r.src.empty() && r.dst_cidrs.empty() && r.dst_domains.empty() && r.ports.empty() &&
               r.users.empty() && r.countries.empty());
    return 0;
  }
  const std::string err2 = pol::parse_rule_spec(canonical, pol::action::allow, again);
  if (!err2.empty()) {
    std::fprintf(stderr, "canonical '%s': %s\n", canonical.c_str(), err2.c_str());
  }
  FUZZ_CHECK(err2.empty());
  FUZZ_CHECK(same_fields(again, r, true));
  FUZZ_CHECK(encode(again) == canonical || !r.dst_domains.empty());
  return 0;
}
