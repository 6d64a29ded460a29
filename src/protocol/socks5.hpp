#pragma once
// SOCKS5 (RFC 1928) and username/password sub-negotiation (RFC 1929):
// pure parsers and encoders for the server side and the client side.
// No sockets, no allocation, no exceptions. Thread-safe (no shared state).

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "protocol/parse_result.hpp"

#include <bitset>
#include <cstdint>

namespace cs::protocol::socks5 {

inline constexpr std::uint8_t version = 0x05;
inline constexpr std::uint8_t auth_version = 0x01;  // RFC 1929 sub-negotiation

// Largest possible message sizes, used to size buffers.
inline constexpr std::size_t max_greeting_size = 2 + 255;
inline constexpr std::size_t max_auth_request_size = 3 + 255 + 255;
inline constexpr std::size_t max_request_size = 4 + 1 + 255 + 2;
inline constexpr std::size_t max_reply_size = max_request_size;
inline constexpr std::size_t max_udp_header_size = 4 + 1 + 255 + 2;

enum class method : std::uint8_t {
  no_auth = 0x00,
  gssapi = 0x01,
  user_pass = 0x02,
  no_acceptable = 0xFF,
};

enum class command : std::uint8_t {
  connect = 0x01,
  bind = 0x02,
  udp_associate = 0x03,
};

enum class atyp : std::uint8_t { ipv4 = 0x01, domain = 0x03, ipv6 = 0x04 };

// ---------------------------------------------------------------- server side

/// Method-selection message from the client.
///
///   +----+----------+----------+
///   |VER | NMETHODS | METHODS  |
///   +----+----------+----------+
///   | 1  |    1     | 1 to 255 |
///   +----+----------+----------+
struct greeting {
  std::bitset<256> methods;  ///< bit m set when method m was offered
  bool offers(method m) const noexcept { return methods.test(static_cast<std::uint8_t>(m)); }
};
/// Errors: bad_version. NMETHODS = 0 parses (with no method offered).
parse_result parse_greeting(core::byte_view in, greeting& out) noexcept;

/// Server's method choice: VER METHOD. Returns bytes written (2) or 0.
std::size_t encode_method_selection(method m, core::byte_span out) noexcept;

/// RFC 1929 request.
///
///   +----+------+----------+------+----------+
///   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
///   +----+------+----------+------+----------+
///   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
///   +----+------+----------+------+----------+
///
/// Zero lengths parse (RFC 1929 says 1..255, but clients send empty
/// passwords; whether an empty credential matches is the user store's call).
struct auth_request {
  boost::static_string<255> username;
  boost::static_string<255> password;
};
/// Errors: bad_version (VER != 0x01), which the session answers as an auth failure.
parse_result parse_auth_request(core::byte_view in, auth_request& out) noexcept;

/// RFC 1929 status: VER(0x01) STATUS (0x00 success, 0x01 failure).
std::size_t encode_auth_status(bool success, core::byte_span out) noexcept;

/// Client request.
///
///   +----+-----+-------+------+----------+----------+
///   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
///   +----+-----+-------+------+----------+----------+
///   | 1  |  1  | X'00' |  1   | Variable |    2     |
///   +----+-----+-------+------+----------+----------+
///
/// RSV is ignored. Errors: bad_version, command_not_supported (CMD not 1..3),
/// address_type_not_supported (ATYP unknown; the length is then unknowable,
/// so this is reported as soon as ATYP is seen), bad_domain (length 0 or NUL).
struct request {
  command cmd = command::connect;
  core::target_address dst;
};
parse_result parse_request(core::byte_view in, request& out) noexcept;

/// Server reply: VER REP RSV ATYP BND.ADDR BND.PORT. An IPv4-mapped BND is
/// written as IPv4. Returns bytes written (10 or 22) or 0 if `out` is too small.
std::size_t encode_reply(core::reply_code rep, const core::ip::address& bnd_addr,
                         std::uint16_t bnd_port, core::byte_span out) noexcept;

/// UDP request header (RFC 1928 §7).
///
///   +----+------+------+----------+----------+----------+
///   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
///   +----+------+------+----------+----------+----------+
///   | 2  |  1   |  1   | Variable |    2     | Variable |
///   +----+------+------+----------+----------+----------+
///
/// A datagram is complete, so need_more means "truncated": callers treat it as
/// an error. `consumed` is the header length; DATA follows it.
struct udp_header {
  std::uint8_t frag = 0;
  core::target_address dst;
};
parse_result parse_udp_header(core::byte_view in, udp_header& out) noexcept;
std::size_t encode_udp_header(const core::target_address& dst, core::byte_span out) noexcept;

// ---------------------------------------------------------------- client side
// Used when CleverSocks dials through an upstream SOCKS5 server. As strict as
// the server side: a reply is never trusted to be well-formed.

/// VER NMETHODS METHODS. `offer_user_pass` adds 0x02 after 0x00.
std::size_t encode_greeting(bool offer_no_auth, bool offer_user_pass, core::byte_span out) noexcept;

/// Server's VER METHOD. Errors: bad_version.
parse_result parse_method_selection(core::byte_view in, method& out) noexcept;

/// RFC 1929 request. Returns 0 (nothing written) when a field is longer than
/// 255 bytes or `out` is too small: never truncate a credential.
std::size_t encode_auth_request(std::string_view username, std::string_view password,
                                core::byte_span out) noexcept;

/// VER STATUS. Errors: bad_version; auth_failed when STATUS != 0.
parse_result parse_auth_status(core::byte_view in) noexcept;

/// Request to an upstream. Returns 0 for an empty domain or a small buffer.
std::size_t encode_request(command cmd, const core::target_address& dst,
                           core::byte_span out) noexcept;

/// Upstream's reply. `rep` gets REP; BND is returned in `bnd`.
/// Errors: bad_version, address_type_not_supported, bad_domain. A non-zero REP
/// is a successful parse; the caller decides what it means.
struct reply {
  core::reply_code rep = core::reply_code::general_failure;
  core::target_address bnd;
};
parse_result parse_reply(core::byte_view in, reply& out) noexcept;

}  // namespace cs::protocol::socks5
