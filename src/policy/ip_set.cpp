#include "policy/ip_set.hpp"

#include <algorithm>
#include <charconv>

namespace cs::policy {

namespace {

__extension__ using u128 = unsigned __int128;

u128 to_u128(const core::ip::address_v6& a) {
  const auto b = a.to_bytes();
  u128 v = 0;
  for (auto byte : b) {
    v = (v << 8) | byte;
  }
  return v;
}

std::uint32_t mask4(unsigned prefix) { return prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix); }
u128 mask6(unsigned prefix) { return prefix == 0 ? 0 : ~u128{0} << (128 - prefix); }

}  // namespace

bool cidr::contains(const core::ip::address& raw) const noexcept {
  const auto a = core::unmap(raw);
  if (a.is_v4() != network.is_v4()) {
    return false;
  }
  if (a.is_v4()) {
    const auto m = mask4(prefix);
    return (a.to_v4().to_uint() & m) == (network.to_v4().to_uint() & m);
  }
  const auto m = mask6(prefix);
  return (to_u128(a.to_v6()) & m) == (to_u128(network.to_v6()) & m);
}

std::string cidr::to_string() const {
  return network.to_string() + "/" + std::to_string(prefix);
}

bool parse_cidr(std::string_view text, cidr& out, std::string* error) {
  auto fail = [&](const char* why) {
    if (error != nullptr) {
      *error = why;
    }
    return false;
  };
  const auto slash = text.find('/');
  const auto addr_text = text.substr(0, slash);
  // make_address() reads a C string: a NUL would hide whatever follows it.
  if (addr_text.empty() || addr_text.size() > 64 || addr_text.find('\0') != std::string_view::npos) {
    return fail("not an IP address");
  }
  boost::system::error_code ec;
  auto addr = core::ip::make_address(std::string(addr_text), ec);
  if (ec) {
    return fail("not an IP address");
  }
  const unsigned max = addr.is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    const auto [ptr, pec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || pec != std::errc{} || ptr != p.data() + p.size() || prefix > max) {
      return fail("invalid prefix length");
    }
  }
  if (addr.is_v6() && addr.to_v6().is_v4_mapped() && prefix >= 96) {
    addr = core::unmap(addr);
    prefix -= 96;
  }
  if (addr.is_v4()) {
    if ((addr.to_v4().to_uint() & ~mask4(prefix)) != 0) {
      return fail("host bits set (did you mean the network address?)");
    }
  } else if ((to_u128(addr.to_v6()) & ~mask6(prefix)) != 0) {
    return fail("host bits set (did you mean the network address?)");
  }
  out = cidr{addr, static_cast<std::uint8_t>(prefix)};
  return true;
}

void ip_set::add(const cidr& c) {
  if (c.network.is_v4()) {
    const auto lo = c.network.to_v4().to_uint() & mask4(c.prefix);
    v4_.push_back({lo, lo | ~mask4(c.prefix)});
  } else {
    const auto lo = to_u128(c.network.to_v6()) & mask6(c.prefix);
    v6_.push_back({lo, lo | ~mask6(c.prefix)});
  }
}

namespace {
template <typename Range>
void merge(std::vector<Range>& v) {
  std::sort(v.begin(), v.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  std::vector<Range> out;
  for (const auto& r : v) {
    // Adjacent ranges merge too (hi + 1 == lo), guarding the top of the space.
    if (!out.empty() && (r.lo <= out.back().hi || r.lo - 1 == out.back().hi)) {
      out.back().hi = std::max(out.back().hi, r.hi);
    } else {
      out.push_back(r);
    }
  }
  v.swap(out);
}

template <typename Range, typename Value>
bool lookup(const std::vector<Range>& v, Value x) {
  auto it = std::upper_bound(v.begin(), v.end(), x, [](Value val, const Range& r) { return val < r.lo; });
  return it != v.begin() && x <= std::prev(it)->hi;
}
}  // namespace

void ip_set::finalize() {
  merge(v4_);
  merge(v6_);
}

bool ip_set::contains(const core::ip::address& raw) const noexcept {
  const auto a = core::unmap(raw);
  if (a.is_v4()) {
    return lookup(v4_, a.to_v4().to_uint());
  }
  return lookup(v6_, to_u128(a.to_v6()));
}

embedded_v4_list embedded_v4(const core::ip::address_v6& a) {
  embedded_v4_list out;
  const u128 v = to_u128(a);
  const auto low32 = static_cast<std::uint32_t>(v & 0xFFFFFFFFu);
  const auto top96 = v >> 32;
  const auto top16 = static_cast<std::uint16_t>(v >> 112);
  if (top96 == 0xFFFF) {  // ::ffff:a.b.c.d (mapped)
    out.emplace_back(low32);
  } else if (top96 == 0 && low32 > 1) {  // ::a.b.c.d (compatible; not :: or ::1)
    out.emplace_back(low32);
  } else if ((v >> 32) == (u128{0x0064ff9b} << 64)) {  // 64:ff9b::/96 NAT64 well-known
    out.emplace_back(low32);
  } else if ((v >> 80) == ((u128{0x0064} << 32) | (u128{0xff9b} << 16) | 0x0001)) {
    // 64:ff9b:1::/48 NAT64 local use: RFC 6052 puts the IPv4 address in
    // bits 48..63 and 72..87 for a /48 prefix; a /96 inside it uses the
    // last 32 bits. Both readings are checked.
    // A /96 inside the prefix has zeros where the /48 layout would read.
    if (((v >> 64) & 0xFFFF) != 0) {
      out.emplace_back(static_cast<std::uint32_t>((((v >> 64) & 0xFFFF) << 16) | ((v >> 40) & 0xFFFF)));
    }
    out.emplace_back(low32);
  } else if (top16 == 0x2002) {  // 6to4: 2002:AABB:CCDD::/48
    out.emplace_back(static_cast<std::uint32_t>((v >> 80) & 0xFFFFFFFFu));
  } else if ((v >> 96) == 0x20010000) {  // Teredo 2001:0::/32: server, then obfuscated client
    out.emplace_back(static_cast<std::uint32_t>((v >> 64) & 0xFFFFFFFFu));
    out.emplace_back(~low32);
  }
  // ISATAP: interface identifier 0000:5efe:a.b.c.d or 0200:5efe:a.b.c.d.
  const auto iid_hi = static_cast<std::uint32_t>((v >> 32) & 0xFFFFFFFFu);
  if ((iid_hi & 0xFDFFFFFFu) == 0x00005EFEu) {
    out.emplace_back(low32);
  }
  return out;
}

}  // namespace cs::policy
