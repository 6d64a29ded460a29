#pragma once
// CIDR prefixes and compiled address sets.
//
// An ip_set is built once (at configuration compile time) and then only
// read: the prefixes are turned into sorted, merged intervals per family and
// a lookup is a binary search — O(log n) for any number of prefixes.
// Thread-safety: immutable after finalize(); concurrent contains() is safe.

#include "core/address.hpp"

#include <boost/container/static_vector.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cs::policy {

struct cidr {
  core::ip::address network;  ///< host bits cleared
  std::uint8_t prefix = 0;

  bool contains(const core::ip::address& a) const noexcept;
  std::string to_string() const;
  friend bool operator==(const cidr&, const cidr&) = default;
};

/// "10.0.0.0/8", "fe80::/10", or a bare address (a /32 or /128). Host bits
/// set in the network part are an error ("10.0.0.1/8"): they usually mean a
/// typo, and silently widening the range would hide it. IPv4-mapped IPv6
/// prefixes (::ffff:a.b.c.d/ ≥96) are stored as IPv4. Pure; never throws.
bool parse_cidr(std::string_view text, cidr& out, std::string* error = nullptr);

class ip_set {
 public:
  void add(const cidr& c);
  void finalize();  ///< sort and merge; call once after the last add()

  /// IPv4-mapped addresses are looked up as IPv4.
  bool contains(const core::ip::address& a) const noexcept;
  bool empty() const noexcept { return v4_.empty() && v6_.empty(); }

 private:
  __extension__ using u128 = unsigned __int128;
  struct range4 {
    std::uint32_t lo, hi;
  };
  struct range6 {
    u128 lo, hi;
  };
  std::vector<range4> v4_;
  std::vector<range6> v6_;
};

/// IPv4 addresses embedded in an IPv6 address by the transition mechanisms
/// (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96 and 64:ff9b:1::/48,
/// 6to4 2002::/16, Teredo 2001::/32 server and client, ISATAP). An address
/// reached through one of these forms may really be the IPv4 host, so
/// blocks on IPv4 ranges must apply to them too. Returns up to 3 addresses
/// (a NAT64 /48 reading twice, plus an ISATAP identifier), without
/// allocating: it runs on every IPv6 ACL check.
using embedded_v4_list = boost::container::static_vector<core::ip::address_v4, 3>;
embedded_v4_list embedded_v4(const core::ip::address_v6& a);

}  // namespace cs::policy
