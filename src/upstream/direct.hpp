#pragma once
// Direct dialling: resolve (if the target is a name), filter every candidate
// address through the caller's check, connect Happy-Eyeballs style.
//
// The address check runs on the exact addresses that are then dialled, after
// resolution, so a name cannot be made to point somewhere the check would
// refuse between the check and the connect (no second lookup).

#include "core/address.hpp"
#include "core/error.hpp"
#include "upstream/connect.hpp"
#include "upstream/resolver.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>

namespace cs::upstream {

/// Decides whether an address may be dialled. Returns an empty error_code to
/// allow, or the reason to refuse (e.g. socks_errc::not_allowed).
using address_check = std::function<core::error_code(const core::ip::address&)>;

struct dial_result {
  core::error_code ec;
  tcp::socket socket;
  tcp::endpoint remote;  ///< the address actually connected to (valid on success)
  bool resolved = false; ///< the target was a name that went through DNS
};

/// Leaves out of `addresses` every one `check` refuses (none when `check`
/// is empty), keeping the order. Returns an error when none is left: the
/// last refusal's reason, or host_not_found for an empty list. The one
/// filter for every use of resolved addresses (dial_direct, BIND's expected
/// peers), so all of them are judged alike.
core::error_code keep_allowed(address_list& addresses, const address_check& check);

/// Dials `target` directly. On failure `ec` is what the client's reply is
/// made from (host_not_found, not_allowed, connection_refused, ...).
/// Cancellation (e.g. a connect deadline) aborts resolution and all attempts.
boost::asio::awaitable<dial_result> dial_direct(const core::target_address& target, resolver& dns,
                                                const connect_options& options,
                                                const address_check& check);

}  // namespace cs::upstream
