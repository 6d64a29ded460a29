#pragma once
// The client side of the proxy protocols CleverSocks speaks to upstreams:
// SOCKS5 (no-auth and RFC 1929), SOCKS4/4a and HTTP CONNECT (Basic auth).
// Each runs over a connected socket and asks the proxy for a tunnel to
// `next` (the next hop of a chain, or the final target).
//
// Replies are never trusted: they go through the strict pure parsers in
// protocol/, are read with exact lengths (SOCKS) or bounded (HTTP), and any
// deviation is an error, never an overflow.

#include "core/address.hpp"
#include "core/error.hpp"
#include "upstream/url.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <cstdint>
#include <vector>

namespace cs::upstream {

struct hop_result {
  core::error_code ec;
  /// True when the error is the hop's own fault (refused our credentials,
  /// broke the protocol, failed generally) rather than the target's (the hop
  /// reported the target refused or unreachable). Pools retry and count
  /// failures only for the former.
  bool hop_failed = false;
  /// Bytes that arrived after the HTTP response head: they already belong
  /// to the tunnel and must be passed on to the client.
  std::vector<std::uint8_t> early;
};

/// Speaks `hop`'s protocol on `sock` to open a tunnel to `next`.
/// A domain `next` is sent as a name (the hop resolves it), except to a
/// plain socks4:// hop, which needs an IPv4 address (the caller resolves).
boost::asio::awaitable<hop_result> open_tunnel(boost::asio::ip::tcp::socket& sock, const proxy_url& hop,
                                               const core::target_address& next);

/// SOCKS5 UDP ASSOCIATE on an upstream (a socks5:// hop only): on success
/// `relay` is where datagrams go — the upstream's BND, or, when it answers
/// with an unspecified address, the address the control connection reached.
struct udp_hop_result {
  hop_result result;
  boost::asio::ip::udp::endpoint relay;
};
boost::asio::awaitable<udp_hop_result> open_udp_associate(boost::asio::ip::tcp::socket& sock, const proxy_url& hop);

/// The error a client is told when an upstream SOCKS5 reply code is not 0.
core::error_code error_for_upstream_reply(std::uint8_t rep) noexcept;

/// The error for an HTTP CONNECT status that is not 2xx.
core::error_code error_for_http_status(unsigned status) noexcept;

}  // namespace cs::upstream
