#include "policy/acl.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace cs::policy {

std::string normalise_host(std::string_view host) {
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (!out.empty() && out.back() == '.') {
    out.pop_back();
  }
  return out;
}

bool domain_pattern::matches(std::string_view host) const noexcept {
  // `host` is already normalised by the caller (acl::evaluate).
  switch (k) {
    case kind::any: return true;
    case kind::exact: return host == name;
    case kind::subdomains:
    case kind::domain_and_subdomains:
      if (host == name) {
        return k == kind::domain_and_subdomains;
      }
      return host.size() > name.size() + 1 && host.ends_with(name) &&
             host[host.size() - name.size() - 1] == '.';
  }
  return false;
}

std::string domain_pattern::to_string() const {
  switch (k) {
    case kind::any: return "*";
    case kind::exact: return name;
    case kind::subdomains: return "*." + name;
    case kind::domain_and_subdomains: return "." + name;
  }
  return name;
}

std::vector<core::ip::address> host_addresses() {
  std::vector<core::ip::address> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return out;
  }
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) {
      continue;
    }
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      out.emplace_back(core::ip::address_v4(ntohl(sin->sin_addr.s_addr)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      core::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), sin6->sin6_addr.s6_addr, bytes.size());
      out.emplace_back(core::unmap(core::ip::address_v6(bytes)));
    }
  }
  ::freeifaddrs(list);
  return out;
}

namespace {

cidr must_parse(std::string_view text) {
  cidr c;
  parse_cidr(text, c);
  return c;
}

// Names under which clouds serve instance metadata. Blocked by name before
// any DNS lookup, and their addresses are blocked too.
constexpr std::string_view metadata_names[] = {
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.internal", "metadata.tencentyun.com",
    "metadata.platformequinix.com", "100-100-100-200.metadata",
};

bool specific_enough(const rule* allowed_by, const core::ip::address& a, const cidr& block) {
  if (allowed_by == nullptr) {
    return false;
  }
  for (const auto& c : allowed_by->dst_cidrs) {
    if (c.contains(a) && c.network.is_v4() == block.network.is_v4() && c.prefix >= block.prefix) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::span<const std::string_view> acl::builtin_names() noexcept {
  static constexpr std::string_view names[] = {
      "builtin:metadata", "builtin:loopback",  "builtin:private",   "builtin:link_local", "builtin:cgnat",
      "builtin:unique_local", "builtin:unspecified", "builtin:multicast", "builtin:reserved", "builtin:smtp",
      "builtin:local"};
  return names;
}

acl::acl() : acl(acl_settings{}) {}

acl::acl(acl_settings settings, std::shared_ptr<const geoip> geo)
    : settings_(std::move(settings)), geo_(std::move(geo)) {
  std::size_t n = 0;
  for (auto& r : settings_.rules) {
    ++n;
    if (r.name.empty()) {
      r.name = "rule " + std::to_string(n);
    }
  }
  compiled_.reserve(settings_.rules.size());
  for (const auto& r : settings_.rules) {
    compiled_rule cr;
    cr.source = &r;
    for (const auto& c : r.src) {
      cr.src.add(c);
    }
    cr.src.finalize();
    for (const auto& c : r.dst_cidrs) {
      cr.dst.add(c);
    }
    cr.dst.finalize();
    for (const auto& u : r.users) {
      if (u == "*") {
        cr.any_user = true;
      } else if (u.starts_with('@')) {
        cr.groups.insert(u.substr(1));
      } else {
        cr.users.insert(u);
      }
    }
    compiled_.push_back(std::move(cr));
  }

  // Most specific first: metadata addresses sit inside link-local and CGNAT.
  const auto& b = settings_.builtin;
  std::vector<cidr> special;  // every range below, on or off, then the local addresses taken
  auto add = [this, &special](bool on, std::initializer_list<std::string_view> ranges, std::string_view category) {
    for (auto r : ranges) {
      special.push_back(must_parse(r));
      if (on) {
        builtin_.push_back({special.back(), category});
      }
    }
  };
  add(b.metadata, {"169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32"}, "builtin:metadata");
  add(b.loopback, {"127.0.0.0/8", "::1/128"}, "builtin:loopback");
  add(b.private_ranges, {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fec0::/10"}, "builtin:private");
  add(b.link_local, {"169.254.0.0/16", "fe80::/10"}, "builtin:link_local");
  add(b.cgnat, {"100.64.0.0/10"}, "builtin:cgnat");
  add(b.unique_local, {"fc00::/7"}, "builtin:unique_local");
  add(b.unspecified, {"0.0.0.0/8", "::/128"}, "builtin:unspecified");
  add(b.multicast, {"224.0.0.0/4", "ff00::/8"}, "builtin:multicast");
  add(b.reserved, {"240.0.0.0/4"}, "builtin:reserved");
  // Last: an own address inside a range above stays that range's business,
  // whether its block is on or off (lifting "10.0.0.0/8", or turning the
  // loopback block off, keeps working on this host).
  if (b.local) {
    for (const auto& raw : settings_.local_addresses) {
      const auto a = core::unmap(raw);
      if (std::none_of(special.begin(), special.end(), [&](const cidr& c) { return c.contains(a); })) {
        special.push_back(cidr{a, static_cast<std::uint8_t>(a.is_v4() ? 32 : 128)});  // each address once
        builtin_.push_back({special.back(), "builtin:local"});
      }
    }
  }
  if (b.metadata) {
    metadata_hosts_.assign(std::begin(metadata_names), std::end(metadata_names));
  }
}

acl::tri acl::match(const compiled_rule& cr, const request_view& r) const noexcept {
  const rule& ru = *cr.source;
  const auto bit = r.cmd == core::command::connect ? command_bits::connect
                   : r.cmd == core::command::bind  ? command_bits::bind
                                                   : command_bits::udp;
  if ((ru.commands & bit) == 0) {
    return tri::no;
  }
  if (!ru.src.empty() && !cr.src.contains(r.client)) {
    return tri::no;
  }
  if (!ru.users.empty()) {
    if (r.user == nullptr) {
      return tri::no;
    }
    bool ok = cr.any_user || cr.users.count(r.user->name) != 0;
    for (const auto& g : r.user->groups) {
      ok = ok || cr.groups.count(g) != 0;
    }
    if (!ok) {
      return tri::no;
    }
  }
  if (!ru.ports.empty() &&
      std::none_of(ru.ports.begin(), ru.ports.end(), [&](const port_range& p) { return p.contains(r.port); })) {
    return tri::no;
  }
  tri result = tri::yes;
  if (!ru.dst_cidrs.empty() || !ru.dst_domains.empty()) {
    bool hit = false;
    if (!r.domain.empty()) {
      hit = std::any_of(ru.dst_domains.begin(), ru.dst_domains.end(),
                        [&](const domain_pattern& p) { return p.matches(r.domain); });
    }
    if (!hit && r.address) {
      hit = cr.dst.contains(*r.address);
    }
    if (!hit) {
      if (!r.address && !ru.dst_cidrs.empty()) {
        result = tri::maybe;  // a CIDR may match once the name is resolved
      } else {
        return tri::no;
      }
    }
  }
  if (!ru.countries.empty()) {
    if (!r.address) {
      result = tri::maybe;
    } else {
      const auto cc = geo_ ? geo_->country(*r.address) : std::nullopt;
      const bool hit = cc && std::any_of(ru.countries.begin(), ru.countries.end(), [&](const std::string& c) {
                         return c.size() == 2 && c[0] == (*cc)[0] && c[1] == (*cc)[1];
                       });
      if (!hit) {
        return tri::no;
      }
    }
  }
  return result;
}

std::string_view acl::builtin_block_for_v4(const core::ip::address_v4& a, const rule* allowed_by) const noexcept {
  const core::ip::address addr(a);
  for (const auto& b : builtin_) {
    if (b.range.contains(addr)) {
      return specific_enough(allowed_by, addr, b.range) ? std::string_view{} : b.category;
    }
  }
  return {};
}

std::string_view acl::builtin_block_for(const core::ip::address& raw, const rule* allowed_by) const noexcept {
  const auto a = core::unmap(raw);
  if (a.is_v4()) {
    return builtin_block_for_v4(a.to_v4(), allowed_by);
  }
  for (const auto& b : builtin_) {
    if (b.range.contains(a)) {
      if (!specific_enough(allowed_by, a, b.range)) {
        return b.category;
      }
      break;
    }
  }
  for (const auto& v4 : embedded_v4(a.to_v6())) {
    if (auto why = builtin_block_for_v4(v4, allowed_by); !why.empty()) {
      return why;
    }
  }
  return {};
}

bool acl::lifts_smtp(const rule* allowed_by) noexcept {
  return allowed_by != nullptr &&
         std::any_of(allowed_by->ports.begin(), allowed_by->ports.end(),
                     [](const port_range& p) { return p.contains(25) && p.hi - p.lo + 1 < 1024; });
}

bool acl::lifts_metadata_name(const rule* allowed_by, std::string_view host) noexcept {
  return allowed_by != nullptr &&
         std::any_of(allowed_by->dst_domains.begin(), allowed_by->dst_domains.end(), [&](const domain_pattern& p) {
           return p.k == domain_pattern::kind::exact && p.name == host;
         });
}

std::string_view acl::name_block(const request_view& r, const rule* allowed_by) const noexcept {
  if (settings_.builtin.smtp && r.port == 25 && !lifts_smtp(allowed_by)) {
    return "builtin:smtp";
  }
  if (!r.domain.empty() && !metadata_hosts_.empty() &&
      std::find(metadata_hosts_.begin(), metadata_hosts_.end(), r.domain) != metadata_hosts_.end() &&
      !lifts_metadata_name(allowed_by, r.domain)) {
    return "builtin:metadata";
  }
  return {};
}

decision acl::evaluate(const request_view& r) const noexcept {
  using verdict = decision::verdict;
  const rule* allowed_by = nullptr;
  std::string_view by = "default";
  bool matched = false;
  for (std::size_t i = 0; i < compiled_.size(); ++i) {
    const auto& cr = compiled_[i];
    const tri m = match(cr, r);
    if (m == tri::no) {
      continue;
    }
    if (m == tri::maybe) {
      // Undecided until the name is resolved. A block by name (metadata
      // host, SMTP port) that no rule from here on could lift is final now:
      // such a name must not even be looked up.
      if (const auto why = name_block(r, nullptr); !why.empty()) {
        const bool liftable = std::any_of(compiled_.begin() + static_cast<std::ptrdiff_t>(i), compiled_.end(),
                                          [&](const compiled_rule& c) {
                                            return c.source->act == action::allow && name_block(r, c.source).empty();
                                          });
        if (!liftable) {
          return {verdict::block, why};
        }
      }
      return {verdict::need_address, cr.source->name};
    }
    matched = true;
    by = cr.source->name;
    if (cr.source->act == action::block) {
      return {verdict::block, by};
    }
    allowed_by = cr.source;
    break;
  }
  if (!matched && settings_.default_action == action::block) {
    return {verdict::block, "default"};
  }

  // Built-in blocks, unless lifted by the allow rule that matched.
  if (const auto why = name_block(r, allowed_by); !why.empty()) {
    return {verdict::block, why};
  }
  if (!r.address) {
    return {verdict::need_address, by};  // the dialled address still has to pass
  }
  if (auto why = builtin_block_for(*r.address, allowed_by); !why.empty()) {
    return {verdict::block, why};
  }
  return {verdict::allow, by};
}

}  // namespace cs::policy
