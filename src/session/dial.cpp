#include "session/dial.hpp"

#include "obs/log.hpp"
#include "upstream/chain.hpp"
#include "upstream/direct.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace cs::session {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {

// One pool member's try, within `share` of the connect deadline. A member
// that does not answer in time (its SYNs dropped, a stalled handshake) is
// its own failure (timed_out, hop_failed); when the session's deadline or a
// shutdown cancels the try first, ec is operation_aborted.
asio::awaitable<upstream::chain_result> try_member(const upstream::proxy_url& hop, const core::target_address& target,
                                                   const dial_request& req, clock::duration share) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer wait(co_await asio::this_coro::executor);
  wait.expires_after(share);
  auto r = co_await (upstream::dial_chain(std::span(&hop, 1), target, req.svc->dns, req.route->egress) ||
                     expiry(wait));
  if (r.index() == 0) {
    co_return std::move(std::get<0>(r));
  }
  const bool expired = clock::now() >= wait.expiry();
  co_return upstream::chain_result{expired ? asio::error::timed_out : asio::error::operation_aborted,
                                   tcp::socket(req.svc->dns.get_executor()), {}, expired, {}};
}

asio::awaitable<dial_outcome> direct(const dial_request& req, const core::target_address& target) {
  dial_outcome out{{}, tcp::socket(req.svc->dns.get_executor()), {}, {}, nullptr, {}};
  const upstream::address_check check =
      req.view != nullptr ? acl_check(*req.snap, *req.view, out.blocked_by) : upstream::address_check();
  auto d = co_await upstream::dial_direct(target, req.svc->dns, req.route->egress, check);
  out.ec = d.ec;
  if (!d.ec) {
    out.socket = std::move(d.socket);
    out.dialled = core::to_string(d.remote);
  }
  co_return out;
}

asio::awaitable<dial_outcome> through(const dial_request& req, std::span<const upstream::proxy_url> hops,
                                      const core::target_address& target, std::string name) {
  dial_outcome out{{}, tcp::socket(req.svc->dns.get_executor()), {}, {}, nullptr, {}};
  auto c = co_await upstream::dial_chain(hops, target, req.svc->dns, req.route->egress);
  out.ec = c.ec;
  if (!c.ec) {
    out.socket = std::move(c.socket);
    out.early = std::move(c.early);
    out.dialled = "via " + std::move(name);
  }
  co_return out;
}

}  // namespace

asio::awaitable<void> expiry(asio::steady_timer& timer) {
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ec;
}

upstream::address_check acl_check(const config::snapshot& snap, policy::request_view& view,
                                  std::string_view& blocked_by) {
  return [&snap, &view, &blocked_by](const core::ip::address& a) -> core::error_code {
    view.address = a;
    const auto verdict = snap.acl.evaluate(view);
    if (!verdict.allowed()) {
      blocked_by = verdict.by;
      return core::socks_errc::not_allowed;
    }
    return {};
  };
}

asio::awaitable<dial_outcome> dial(const dial_request& req) {
  const auto& route = *req.route;
  const auto rewritten = routing::router::rewritten(route, req.target, req.snap->router.capture(route, req.host));
  if (route.k == routing::route::kind::block) {
    dial_outcome out{core::socks_errc::not_allowed, tcp::socket(req.svc->dns.get_executor()), {}, {}, nullptr, {}};
    out.blocked_by = route.name;
    co_return out;
  }
  if (!rewritten) {
    // The rule's "remote" does not fit this name (longer than 255 bytes).
    co_return dial_outcome{core::socks_errc::bad_domain, tcp::socket(req.svc->dns.get_executor()), {}, {}, nullptr, {}};
  }
  const auto& target = *rewritten;
  switch (route.k) {
    case routing::route::kind::block:
    case routing::route::kind::direct:
      co_return co_await direct(req, target);
    case routing::route::kind::redirect:
      co_return co_await direct(req, route.redirect);
    case routing::route::kind::chain:
      co_return co_await through(req, route.hops, target, route.name);
    case routing::route::kind::pool:
      break;
  }

  // Pool: try members in the strategy's order; a member that fails on its
  // own account (unreachable, broke the protocol) is reported and the next
  // one is tried. A target-side refusal ends it: another member would be
  // told the same.
  const auto* p = req.snap->router.get_pool();
  dial_outcome out{core::socks_errc::upstream_failure, tcp::socket(req.svc->dns.get_executor()), {}, {}, nullptr, {}};
  if (p == nullptr) {
    co_return out;
  }
  // Each member gets its share of the connect deadline (which still bounds
  // the whole): one that never answers must not use all of it up.
  const auto members = p->candidates(req.pick);
  const auto share = std::chrono::duration_cast<clock::duration>(req.snap->source.timeouts.connect) /
                     static_cast<int>(std::max<std::size_t>(members.size(), 1));
  for (const auto& member : members) {
    if (!member->admits(clock::now())) {
      continue;  // someone else took its half-open trial
    }
    const auto started = clock::now();
    const upstream::proxy_url hop = member->url();
    auto c = co_await try_member(hop, target, req, share);
    if (!c.ec) {
      member->on_success(std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started));
      member->session_started();
      out.ec = {};
      out.socket = std::move(c.socket);
      out.early = std::move(c.early);
      out.dialled = "via " + member->name();
      out.member = member;
      co_return out;
    }
    if (c.ec == asio::error::operation_aborted) {
      member->abandon_trial();  // a half-open member's trial did not happen: the next session may take it
      out.ec = c.ec;
      co_return out;
    }
    out.ec = c.ec;
    if (!c.hop_failed) {
      co_return out;
    }
    member->on_failure(clock::now(), p->breaker());
    obs::log().debug("pool member {} failed ({}); trying the next", member->name(), c.ec.message());
  }
  co_return out;
}

}  // namespace cs::session
