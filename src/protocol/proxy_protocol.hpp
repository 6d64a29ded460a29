#pragma once
// PROXY protocol v1 (text) and v2 (binary) headers, as sent by HAProxy,
// AWS NLB and other L4 balancers in front of a listener, carrying the real
// client address. Pure; bounded; no allocation.
//
// v1:  "PROXY TCP4 192.0.2.1 198.51.100.1 56324 1080\r\n"   (≤ 107 bytes)
// v2:  \r\n\r\n\0\r\nQUIT\n  ver|cmd  fam|proto  len(2)  addresses  TLVs

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "protocol/parse_result.hpp"

#include <optional>

namespace cs::protocol::proxy {

inline constexpr std::size_t max_v1_size = 107;
/// Longest v2 header accepted (addresses plus TLVs); more is refused.
inline constexpr std::size_t max_v2_size = 16 + 512;

enum class version : std::uint8_t { v1 = 1, v2 = 2 };

struct header {
  version ver = version::v1;
  /// Original client and destination; empty for LOCAL (v2) / UNKNOWN (v1)
  /// connections (health checks by the balancer itself) and non-TCP families.
  std::optional<core::ip::tcp::endpoint> source;
  std::optional<core::ip::tcp::endpoint> destination;
};

/// Parses a header of either version (detected from the first bytes).
/// `allow_v1` / `allow_v2` restrict which are accepted. Errors:
/// bad_version (no/forbidden signature), general_failure (malformed).
parse_result parse(core::byte_view in, header& out, bool allow_v1 = true, bool allow_v2 = true) noexcept;

/// Encoders, for tests and for forwarding to an upstream that expects one.
std::size_t encode_v1(const core::ip::tcp::endpoint& src, const core::ip::tcp::endpoint& dst, core::byte_span out) noexcept;
std::size_t encode_v2(const core::ip::tcp::endpoint& src, const core::ip::tcp::endpoint& dst, core::byte_span out) noexcept;

}  // namespace cs::protocol::proxy
