#pragma once
// Dialling through upstream proxies: connect to the first hop, then ask
// each hop in turn for a tunnel to the next one, and the last for the
// target. A one-element chain is a single upstream.

#include "core/address.hpp"
#include "upstream/connect.hpp"
#include "upstream/proxy_client.hpp"
#include "upstream/resolver.hpp"
#include "upstream/url.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <span>
#include <vector>

namespace cs::upstream {

struct chain_result {
  core::error_code ec;
  tcp::socket socket;
  tcp::endpoint first_hop;  ///< address of the first hop, when connected
  /// The failure was a hop's fault (unreachable, refused us, broke the
  /// protocol), not the target's: a pool tries another member.
  bool hop_failed = false;
  std::vector<std::uint8_t> early;  ///< tunnel bytes that came with the last reply
};

/// Dials `target` through `hops` (non-empty). Hop addresses are not subject
/// to the ACL (the operator configured them); names are resolved locally
/// only for the first hop and for a plain socks4:// hop's next address.
/// Cancellation aborts everything.
boost::asio::awaitable<chain_result> dial_chain(std::span<const proxy_url> hops, const core::target_address& target,
                                                resolver& dns, const connect_options& options);

}  // namespace cs::upstream
