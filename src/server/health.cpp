#include "server/health.hpp"

#include "obs/log.hpp"
#include "upstream/direct.hpp"
#include "upstream/proxy_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <utility>

namespace cs::server {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;

health_checker::health_checker(asio::io_context& ctx, const upstream::resolver_options& dns)
    : ctx_(ctx), dns_(ctx.get_executor(), dns), timer_(ctx) {}

health_checker::~health_checker() { stop(); }

void health_checker::stop() {
  stopped_ = true;
  timer_.cancel();
  for (auto* d : deadlines_) {
    d->cancel();  // its probe's check is cancelled in turn, and the probe ends
  }
}

void health_checker::when_idle(std::function<void()> done) {
  if (in_flight_.empty()) {
    asio::post(ctx_, std::move(done));
  } else {
    on_idle_ = std::move(done);
  }
}

void health_checker::track(std::shared_ptr<const config::snapshot> snap) {
  snap_ = std::move(snap);
  if (!stopped_) {
    // Probe at once (new members are known before their first dial), then
    // on the new interval: the old timer is replaced, so a reload that
    // shortens the interval does not wait out the old one.
    round();
  }
}

void health_checker::schedule() {
  if (stopped_ || !snap_) {
    return;
  }
  timer_.expires_after(snap_->source.proxy_pool.health_check.interval);  // cancels the previous wait
  timer_.async_wait([this](core::error_code ec) {
    if (!ec) {
      round();
    }
  });
}

void health_checker::round() {
  if (const auto* p = snap_->router.get_pool()) {
    for (const auto& m : p->members()) {
      if (in_flight_.insert(m.state->id()).second) {
        asio::co_spawn(ctx_, probe(m.state, snap_), asio::detached);
      }
    }
  }
  schedule();
}

asio::awaitable<void> health_checker::probe(std::shared_ptr<routing::member_state> m,
                                            std::shared_ptr<const config::snapshot> snap) {
  const auto& hc = snap->source.proxy_pool.health_check;
  const auto started = clock::now();
  asio::steady_timer deadline(ctx_);
  deadline.expires_after(hc.timeout);
  deadlines_.insert(&deadline);
  auto check = [&]() -> asio::awaitable<core::error_code> {
    auto d = co_await upstream::dial_direct(m->url().server, dns_, snap->source.connect, {});
    if (d.ec || hc.kind != "socks5" || hc.target.empty()) {
      co_return d.ec;
    }
    core::target_address t;
    if (!core::parse_target(hc.target, t)) {
      co_return d.ec;
    }
    auto r = co_await upstream::open_tunnel(d.socket, m->url(), t);
    co_return r.ec;
  };
  auto wait = [&]() -> asio::awaitable<void> {
    auto [ec] = co_await deadline.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  };
  auto v = co_await (check() || wait());
  deadlines_.erase(&deadline);
  in_flight_.erase(m->id());
  if (stopped_) {  // cut short by stop(): no verdict on the member
    if (in_flight_.empty() && on_idle_) {
      asio::post(ctx_, std::exchange(on_idle_, nullptr));
    }
    co_return;
  }
  const core::error_code ec = v.index() == 1 ? core::error_code(asio::error::timed_out) : std::get<0>(v);
  const auto* p = snap->router.get_pool();
  if (!ec) {
    const bool was_ejected = m->state() != routing::breaker_state::closed;
    m->on_success(std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started));
    if (was_ejected) {
      obs::log().info("upstream {} passed its health check: back in rotation", m->name());
    }
  } else if (p != nullptr) {
    const bool was_closed = m->state() == routing::breaker_state::closed;
    m->on_failure(clock::now(), p->breaker());
    if (was_closed && m->state() != routing::breaker_state::closed) {
      obs::log().warn("upstream {} failed its health check ({}): ejected", m->name(), ec.message());
    }
  }
}

}  // namespace cs::server
