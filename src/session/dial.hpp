#pragma once
// The dial step: given the route the router chose, reach the target —
// directly (Happy Eyeballs, every resolved address checked by the ACL),
// through a chain of upstream proxies, or through a pool member with
// failover to the next member when a member fails before anything was sent
// to the client.

#include "config/settings.hpp"
#include "policy/acl.hpp"
#include "routing/pool.hpp"
#include "routing/router.hpp"
#include "session/session.hpp"
#include "upstream/direct.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cs::session {

struct dial_request {
  const config::snapshot* snap = nullptr;
  worker_services* svc = nullptr;
  const routing::route* route = nullptr;
  core::target_address target;   ///< as requested
  std::string_view host;         ///< normalised name of a domain target, else empty
  policy::request_view* view = nullptr;  ///< ACL view, re-evaluated per resolved address
  routing::pick_context pick;
};

struct dial_outcome {
  core::error_code ec;
  boost::asio::ip::tcp::socket socket;
  std::string dialled;                 ///< "IP:PORT" for direct dials, "via <upstream>" otherwise
  std::vector<std::uint8_t> early;     ///< bytes from the upstream to pass on after our reply
  std::shared_ptr<routing::member_state> member;  ///< the pool member in use (session_started called)
  std::string_view blocked_by;         ///< the ACL rule that refused a resolved address
};

/// Completes when `timer` expires or is cancelled; never throws. The other
/// half of an `op || expiry(timer)` deadline.
boost::asio::awaitable<void> expiry(boost::asio::steady_timer& timer);

/// The ACL as an address check for resolved candidates: `view` (the request
/// as the ACL sees it, its name included) is evaluated with each candidate
/// as its address; a refusal returns not_allowed and names the rule or
/// built-in block in `blocked_by`. Both must outlive the check.
upstream::address_check acl_check(const config::snapshot& snap, policy::request_view& view,
                                  std::string_view& blocked_by);

/// Never throws for network events; honours cancellation (the caller's
/// connect deadline).
boost::asio::awaitable<dial_outcome> dial(const dial_request& req);

}  // namespace cs::session
