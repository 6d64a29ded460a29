#pragma once
// Connecting to a list of candidate addresses the Happy Eyeballs way
// (RFC 8305): address families interleaved, a new attempt started every
// `attempt_delay` or as soon as the previous one fails, the first connection
// wins and the rest are cancelled.

#include "core/address.hpp"
#include "core/error.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <vector>

namespace cs::upstream {

using tcp = core::ip::tcp;

enum class family_preference : std::uint8_t { prefer_v6, prefer_v4, only_v4, only_v6 };

struct connect_options {
  /// RFC 8305 §5 "Connection Attempt Delay" (recommended 250 ms).
  std::chrono::milliseconds attempt_delay{250};
  family_preference family = family_preference::prefer_v6;
  /// Source addresses to dial from (egress), per family; unset = kernel's choice.
  std::optional<core::ip::address_v4> bind_v4;
  std::optional<core::ip::address_v6> bind_v6;
};

/// Orders candidates per RFC 8305 §4 (interleaving families, preferred family
/// first) and drops families excluded by the preference. Pure.
std::vector<tcp::endpoint> order_candidates(std::span<const core::ip::address> addresses,
                                            std::uint16_t port, family_preference pref);

using connect_signature = void(core::error_code, tcp::socket, tcp::endpoint);

namespace detail {
void start_connect_any(boost::asio::io_context::executor_type ex, std::vector<tcp::endpoint> candidates,
                       const connect_options& options,
                       boost::asio::any_completion_handler<connect_signature> handler);
}

/// Connects to the first of `candidates` that answers. On failure the error is
/// the most telling one seen (refused over unreachable over anything else).
/// Supports per-operation cancellation (all attempts are abandoned).
/// The winning socket has TCP_NODELAY set.
template <typename Token>
auto async_connect_any(boost::asio::io_context::executor_type ex, std::vector<tcp::endpoint> candidates,
                       const connect_options& options, Token&& token) {
  return boost::asio::async_initiate<Token, connect_signature>(
      [ex](auto handler, std::vector<tcp::endpoint> c, const connect_options* o) {
        detail::start_connect_any(ex, std::move(c), *o,
                                  boost::asio::any_completion_handler<connect_signature>(std::move(handler)));
      },
      token, std::move(candidates), &options);
}

}  // namespace cs::upstream
