#pragma once
// Access control: ordered rules (first match wins, explicit default) plus
// built-in blocks that protect what a proxy must never reach by accident —
// loopback, private and link-local networks, cloud metadata, SMTP.
//
// Evaluation takes two passes for a domain target. Before DNS the address
// is unknown: rules that depend on it (destination CIDR, country) cannot be
// decided and the result is `need_address`, unless the decision is already
// certain (e.g. the name itself is blocked). After DNS every candidate
// address is evaluated with the name and the address both known, and the
// session dials only addresses that were allowed — the exact addresses
// checked, so there is no time-of-check/time-of-use gap.
//
// Built-in blocks apply to whatever address is finally dialled, including
// IPv6 transition forms that embed an IPv4 address (mapped, compatible,
// NAT64, 6to4, Teredo, ISATAP). An operator lifts one only by an allow rule
// that matched and names the range at least as specifically as the block
// (`--allow 10.0.0.0/8` lifts the 10/8 block; `--allow 0.0.0.0/0` does not).
//
// Thread-safety: an acl is immutable after construction; evaluate() is safe
// from any thread.

#include "auth/user_store.hpp"
#include "core/address.hpp"
#include "policy/geoip.hpp"
#include "policy/ip_set.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace cs::policy {

enum class action : std::uint8_t { allow, block };

struct port_range {
  std::uint16_t lo = 0;
  std::uint16_t hi = 65535;
  bool contains(std::uint16_t p) const noexcept { return p >= lo && p <= hi; }
  friend bool operator==(const port_range&, const port_range&) = default;
};

/// A destination name pattern: "example.com" (exactly), "*.example.com"
/// (any subdomain, not example.com itself), ".example.com" (example.com and
/// any subdomain), "*" (any name). Compared case-insensitively, without a
/// trailing dot.
struct domain_pattern {
  enum class kind : std::uint8_t { exact, subdomains, domain_and_subdomains, any };
  kind k = kind::exact;
  std::string name;  ///< lower-case, no leading "*." / "." and no trailing dot

  bool matches(std::string_view host) const noexcept;
  std::string to_string() const;
  friend bool operator==(const domain_pattern&, const domain_pattern&) = default;
};

namespace command_bits {
inline constexpr std::uint8_t connect = 1;
inline constexpr std::uint8_t bind = 2;
inline constexpr std::uint8_t udp = 4;
inline constexpr std::uint8_t all = connect | bind | udp;
}  // namespace command_bits

/// One rule as configured. Empty fields match anything; a rule matches when
/// every non-empty field matches. `dst_cidrs` and `dst_domains` together are
/// one field: either may match.
struct rule {
  std::string name;  ///< shown in logs and metrics; defaults to "rule N"
  action act = action::block;
  std::vector<cidr> src;
  std::vector<std::string> users;  ///< names, "@group", or "*" (any authenticated user)
  std::vector<cidr> dst_cidrs;
  std::vector<domain_pattern> dst_domains;
  std::vector<port_range> ports;
  std::uint8_t commands = command_bits::all;
  std::vector<std::string> countries;  ///< ISO 3166-1 alpha-2, upper case
};

/// Built-in blocks; each on unless turned off by the operator.
struct builtin_blocks {
  bool loopback = true;       ///< 127.0.0.0/8, ::1
  bool private_ranges = true; ///< RFC 1918, fec0::/10
  bool link_local = true;     ///< 169.254.0.0/16, fe80::/10
  bool cgnat = true;          ///< 100.64.0.0/10
  bool unique_local = true;   ///< fc00::/7
  bool unspecified = true;    ///< 0.0.0.0/8, ::
  bool multicast = true;      ///< 224.0.0.0/4, ff00::/8
  bool reserved = true;       ///< 240.0.0.0/4 including 255.255.255.255
  bool metadata = true;       ///< 169.254.169.254, fd00:ec2::254, 100.100.100.200 and metadata hostnames
  bool smtp = true;           ///< destination port 25
  /// This host's own addresses that no other enabled block covers (a public
  /// address on an interface): local services bound to every address are
  /// reachable through them, loopback block or not.
  bool local = true;
};

struct acl_settings {
  std::vector<rule> rules;
  action default_action = action::allow;
  builtin_blocks builtin;
  /// This host's addresses for builtin_blocks::local, as host_addresses()
  /// read them when the configuration was loaded.
  std::vector<core::ip::address> local_addresses;
};

/// The addresses of this host's interfaces (getifaddrs), IPv4-mapped ones
/// unmapped; empty if they cannot be read.
std::vector<core::ip::address> host_addresses();

/// What a rule can look at.
struct request_view {
  core::ip::address client;
  const auth::user* user = nullptr;
  core::command cmd = core::command::connect;
  std::string_view domain;                  ///< requested name, empty for an IP target
  std::optional<core::ip::address> address; ///< the IP target, or the resolved candidate
  std::uint16_t port = 0;
};

struct decision {
  enum class verdict : std::uint8_t { allow, block, need_address };
  verdict v = verdict::allow;
  std::string_view by;  ///< the rule or built-in block that decided ("default" otherwise)

  bool allowed() const noexcept { return v == verdict::allow; }
  bool blocked() const noexcept { return v == verdict::block; }
};

class acl {
 public:
  acl();  ///< default rules: allow, every built-in block on
  explicit acl(acl_settings settings, std::shared_ptr<const geoip> geo = nullptr);
  // Compiled rules point into settings_: moving keeps them valid, copying would not.
  acl(const acl&) = delete;
  acl& operator=(const acl&) = delete;
  acl(acl&&) noexcept = default;
  acl& operator=(acl&&) noexcept = default;

  decision evaluate(const request_view& r) const noexcept;

  const acl_settings& settings() const noexcept { return settings_; }
  /// Names of the built-in blocks as they appear in decisions.
  static std::span<const std::string_view> builtin_names() noexcept;
  std::size_t rule_count() const noexcept { return compiled_.size(); }

 private:
  enum class tri : std::uint8_t { no, maybe, yes };
  struct compiled_rule {
    const rule* source = nullptr;
    ip_set src;
    ip_set dst;
    std::unordered_set<std::string> users;
    std::unordered_set<std::string> groups;
    bool any_user = false;
  };
  struct builtin_range {
    cidr range;
    std::string_view category;  ///< "builtin:private", ...
  };

  tri match(const compiled_rule& cr, const request_view& r) const noexcept;
  /// The name-based built-in block (SMTP port, metadata host) that applies
  /// to `r` unless `allowed_by` lifts it; empty if none.
  std::string_view name_block(const request_view& r, const rule* allowed_by) const noexcept;
  static bool lifts_smtp(const rule* allowed_by) noexcept;
  static bool lifts_metadata_name(const rule* allowed_by, std::string_view host) noexcept;
  std::string_view builtin_block_for(const core::ip::address& a, const rule* allowed_by) const noexcept;
  std::string_view builtin_block_for_v4(const core::ip::address_v4& a, const rule* allowed_by) const noexcept;

  acl_settings settings_;
  std::shared_ptr<const geoip> geo_;
  std::vector<compiled_rule> compiled_;
  std::vector<builtin_range> builtin_;
  std::vector<std::string> metadata_hosts_;
};

/// Normalises a host name for matching: lower case, trailing dot removed.
std::string normalise_host(std::string_view host);

}  // namespace cs::policy
