#pragma once
// SOCKS4 and SOCKS4a: pure parsers and encoders (server and client side).
// No sockets, no allocation, no exceptions. Thread-safe.

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "protocol/parse_result.hpp"

#include <cstdint>

namespace cs::protocol::socks4 {

inline constexpr std::uint8_t version = 0x04;
inline constexpr std::uint8_t reply_version = 0x00;
/// USERID and SOCKS4a hostname are NUL-terminated with no limit in the
/// protocol; we cap each at 255 bytes (excluding the NUL).
inline constexpr std::size_t max_field = 255;
inline constexpr std::size_t max_request_size = 8 + (max_field + 1) * 2;
inline constexpr std::size_t reply_size = 8;

enum class command : std::uint8_t { connect = 0x01, bind = 0x02 };

/// Client request.
///
///   +----+----+----+----+----+----+----+----+----+----+....+----+
///   | VN | CD | DSTPORT |      DSTIP        | USERID       |NULL|
///   +----+----+----+----+----+----+----+----+----+----+....+----+
///      1    1      2              4           variable       1
///
/// SOCKS4a: DSTIP = 0.0.0.x (x != 0), then HOSTNAME NUL after USERID; `dst`
/// then holds the hostname. Errors: bad_version, command_not_supported,
/// field_too_long (USERID or hostname > 255 bytes without NUL), bad_domain
/// (empty SOCKS4a hostname).
struct request {
  command cmd = command::connect;
  core::target_address dst;
  boost::static_string<max_field> userid;
  bool socks4a = false;
};
parse_result parse_request(core::byte_view in, request& out) noexcept;

/// Reply: VN(0) CD DSTPORT DSTIP. Returns 8 or 0.
std::size_t encode_reply(core::socks4_reply cd, const core::ip::address_v4& addr,
                         std::uint16_t port, core::byte_span out) noexcept;

// ---------------------------------------------------------------- client side

/// Request to an upstream: SOCKS4 for an IPv4 target, SOCKS4a for a domain.
/// Returns 0 for IPv6 targets (not expressible), over-long fields or a small buffer.
std::size_t encode_request(command cmd, const core::target_address& dst, std::string_view userid,
                           core::byte_span out) noexcept;

/// Upstream's 8-byte reply. Errors: bad_version (VN != 0). `granted` tells
/// whether CD was 0x5A.
struct reply {
  bool granted = false;
  std::uint8_t code = 0;
  core::ip::address_v4 addr;
  std::uint16_t port = 0;
};
parse_result parse_reply(core::byte_view in, reply& out) noexcept;

}  // namespace cs::protocol::socks4
