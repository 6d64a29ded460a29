#pragma once
// HTTP CONNECT (RFC 9110 §9.3.6), client side: the request to an HTTP proxy
// and a bounded parser for its response head. Pure; no allocation.

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "protocol/parse_result.hpp"

#include <string_view>

namespace cs::protocol::http_connect {

/// Longest response head accepted (status line + headers + blank line).
inline constexpr std::size_t max_response_head = 8192;
inline constexpr std::size_t max_request_size = 1024 + 2 * 512;

/// "CONNECT host:port HTTP/1.1\r\nHost: host:port\r\n[Proxy-Authorization:
/// Basic …\r\n]\r\n". Returns bytes written, or 0 if `out` is too small or a
/// field is invalid (CR/LF in a name, credentials over 255 bytes).
std::size_t encode_request(const core::target_address& target, bool with_credentials, std::string_view user,
                           std::string_view password, core::byte_span out) noexcept;

struct response {
  unsigned status = 0;  ///< 100..599
};

/// Parses the response head. done: `consumed` is the head's length (bytes
/// after it already belong to the tunnel). Errors: general_failure for a
/// malformed status line or header, field_too_long past max_response_head.
parse_result parse_response(core::byte_view in, response& out) noexcept;

}  // namespace cs::protocol::http_connect
