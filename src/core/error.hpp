#pragma once
// One error vocabulary for the whole data plane, and the one place that turns
// an error into a SOCKS reply code.
//
// Everything that can go wrong with a session is a boost::system::error_code:
// either a socks_errc (protocol, policy and outcome errors defined here) or a
// system/asio error from a socket. to_reply_code() maps both to REP.

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace cs::core {

using error_code = boost::system::error_code;

enum class socks_errc : int {
  // Malformed or unsupported client messages (protocol/).
  bad_version = 1,             ///< first byte is not 4 or 5, or a sub-negotiation version is wrong
  no_acceptable_method,        ///< no offered method is acceptable
  auth_failed,                 ///< RFC 1929 credentials rejected (or malformed sub-negotiation)
  command_not_supported,       ///< CMD is unknown, or known but not enabled
  address_type_not_supported,  ///< ATYP is not 1, 3 or 4
  bad_domain,                  ///< DOMAIN of length 0 or containing NUL
  field_too_long,              ///< a SOCKS4 USERID / hostname past the cap
  auth_required,               ///< protocol cannot authenticate (SOCKS4 with users configured)
  // Decisions (policy/, routing/).
  not_allowed,                 ///< blocked by a rule
  limit_reached,               ///< a concurrency or rate limit refused the session
  // Outcomes of dialling (upstream/).
  host_not_found,              ///< DNS says the name does not exist / has no address
  dns_failure,                 ///< DNS failed (server failure, timeout, refused)
  connect_timeout,             ///< no connection to the target within the deadline
  handshake_timeout,           ///< client did not finish the handshake in time
  upstream_failure,            ///< an upstream proxy refused or broke the protocol
  general_failure,             ///< anything else
  ttl_expired,                 ///< an upstream reported REP 0x06 (TTL expired) for the target
};

const boost::system::error_category& socks_category() noexcept;

inline error_code make_error_code(socks_errc e) noexcept {
  return {static_cast<int>(e), socks_category()};
}

/// SOCKS5 REP values (RFC 1928 §6).
enum class reply_code : std::uint8_t {
  succeeded = 0x00,
  general_failure = 0x01,
  not_allowed = 0x02,
  network_unreachable = 0x03,
  host_unreachable = 0x04,
  connection_refused = 0x05,
  ttl_expired = 0x06,
  command_not_supported = 0x07,
  address_type_not_supported = 0x08,
};

/// SOCKS4 CD values in replies.
enum class socks4_reply : std::uint8_t {
  granted = 0x5A,
  rejected = 0x5B,
};

/// The only mapping from an error to a SOCKS5 reply code. A default
/// constructed (success) error_code maps to `succeeded`. Never throws.
reply_code to_reply_code(const error_code& ec) noexcept;

/// SOCKS4 has one failure code: everything that is not success is 0x5B.
constexpr socks4_reply to_socks4_reply(reply_code rc) noexcept {
  return rc == reply_code::succeeded ? socks4_reply::granted : socks4_reply::rejected;
}

/// Short stable name of a reply code, for logs ("ok", "refused", ...).
std::string_view reply_name(reply_code rc) noexcept;

}  // namespace cs::core

template <>
struct boost::system::is_error_code_enum<cs::core::socks_errc> : std::true_type {};
