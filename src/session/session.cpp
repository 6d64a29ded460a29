#include "session/session.hpp"

#include "core/address.hpp"
#include "obs/log.hpp"
#include "protocol/socks4.hpp"
#include "protocol/socks5.hpp"
#include "relay/tcp_relay.hpp"
#include "session/dial.hpp"
#include "session/handshake.hpp"
#include "session/udp_associate.hpp"
#include "upstream/chain.hpp"
#include "upstream/proxy_client.hpp"
#include "upstream/direct.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <sodium.h>

#include <chrono>

namespace cs::session {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// The reply for `rc` in the client's protocol. BND is our outbound socket's
// local address on success, zeros otherwise.
asio::awaitable<core::error_code> send_reply(tcp::socket& client, client_protocol proto, core::reply_code rc,
                                             const tcp::endpoint& bnd) {
  std::array<std::uint8_t, protocol::socks5::max_reply_size> out{};
  std::size_t n = 0;
  if (proto == client_protocol::socks5) {
    n = protocol::socks5::encode_reply(rc, bnd.address(), bnd.port(), out);
  } else if (proto == client_protocol::socks4) {
    const auto a = core::unmap(bnd.address());
    n = protocol::socks4::encode_reply(core::to_socks4_reply(rc),
                                       a.is_v4() ? a.to_v4() : core::ip::address_v4::any(), bnd.port(), out);
  }
  if (n == 0) {
    co_return core::error_code(core::socks_errc::general_failure);
  }
  auto [ec, written] = co_await asio::async_write(client, asio::buffer(out.data(), n), nothrow);
  co_return ec;
}

// A short outcome word for the access log.
std::string_view outcome(const core::error_code& ec) {
  if (!ec) {
    return "ok";
  }
  if (ec.category() == core::socks_category()) {
    switch (static_cast<core::socks_errc>(ec.value())) {
      case core::socks_errc::bad_version: return "bad_version";
      case core::socks_errc::no_acceptable_method: return "no_acceptable_method";
      case core::socks_errc::auth_failed: return "auth_failed";
      case core::socks_errc::auth_required: return "auth_required";
      case core::socks_errc::handshake_timeout: return "handshake_timeout";
      case core::socks_errc::connect_timeout: return "connect_timeout";
      case core::socks_errc::host_not_found: return "host_not_found";
      case core::socks_errc::dns_failure: return "dns_failure";
      case core::socks_errc::not_allowed: return "not_allowed";
      case core::socks_errc::limit_reached: return "limit_reached";
      case core::socks_errc::command_not_supported: return "command_not_supported";
      case core::socks_errc::address_type_not_supported: return "address_type_not_supported";
      default: break;
    }
  }
  if (ec == asio::error::eof || ec == asio::error::connection_reset) {
    return "client_closed";
  }
  if (ec == asio::error::operation_aborted) {
    return "cancelled";
  }
  return core::reply_name(core::to_reply_code(ec));
}

// Runs on the hashing pool: argon2 verification must never run on a loop.
asio::awaitable<const auth::user*> verify_off_loop(std::shared_ptr<const config::snapshot> snap, std::string name,
                                                   std::string password) {
  const auth::user* u = snap->users.verify(name, password);
  sodium_memzero(password.data(), password.size());
  co_return u;
}

// One verification counted in shared_services::hashing for as long as it is
// queued or running, whichever way the session leaves (an exception too).
struct hashing_slot {
  explicit hashing_slot(std::atomic<int>& n) : count(n), queued(n.fetch_add(1) + 1) {}
  ~hashing_slot() { count.fetch_sub(1); }
  hashing_slot(const hashing_slot&) = delete;
  hashing_slot& operator=(const hashing_slot&) = delete;

  std::atomic<int>& count;
  const int queued;  ///< this one included
};

// RFC 1929 checks for one session: lockouts first, then the store (cheap
// digests on the loop, argon2 on the pool, with a per-worker cache).
class session_auth final : public authenticator {
 public:
  session_auth(const std::shared_ptr<const config::snapshot>& snap, worker_services& svc,
               const core::ip::address& client)
      : snap_(snap), svc_(svc), client_(client) {}

  bool required() const noexcept override { return !snap_->users.empty(); }

  asio::awaitable<const auth::user*> authenticate(std::string_view name, std::string_view password) override {
    const auto& limits = snap_->source.limits;
    // Counted as running (a failure, for the lockout) until it ends, so a
    // burst of guesses in parallel cannot outrun the lockout.
    policy::refusal why = policy::refusal::none;
    auto attempt = svc_.shared.limits.begin_auth(client_, name, limits, why);
    if (!attempt) {
      svc_.metrics.auth_throttled.inc();
      obs::log().debug("auth for '{}' from {} refused without checking: {}", name,
                       core::to_string(client_, 0), policy::to_string(why));
      co_return nullptr;
    }
    const auth::user* u = nullptr;
    const auto& store = snap_->users;
    if (!store.needs_slow_check(name)) {
      u = store.verify(name, password);
    } else {
      const auto key = store.cache_key(name, password);
      u = svc_.auth_cache.find(key, snap_->generation);
      if (u == nullptr) {
        const hashing_slot slot(svc_.shared.hashing);
        if (slot.queued > shared_services::max_hashing) {
          svc_.metrics.auth_throttled.inc();
          co_return nullptr;  // shed load rather than queue unboundedly
        }
        // No cancellation slot: the session's cancellation (its deadline, a
        // forced shutdown) must not reach the pool. argon2 cannot stop
        // midway, and a coroutine spawned there with the session's slot is
        // cancelled from this thread while it runs on another: Boost 1.81
        // then throws on the pool thread (std::terminate) or emits into a
        // signal the session has freed. The deadline takes effect once the
        // session resumes here, a bounded argon2 run later.
        u = co_await asio::co_spawn(svc_.shared.hash_pool,
                                    verify_off_loop(snap_, std::string(name), std::string(password)),
                                    asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable));
        if (u != nullptr) {
          svc_.auth_cache.insert(key, u, snap_->generation);
        }
      }
    }
    if (u != nullptr) {
      attempt.succeeded();
    } else {
      attempt.failed(limits);
    }
    co_return u;
  }

  void decided(bool accepted) noexcept override {
    (accepted ? svc_.metrics.auth_success : svc_.metrics.auth_failure).inc();
  }

 private:
  const std::shared_ptr<const config::snapshot>& snap_;
  worker_services& svc_;
  core::ip::address client_;
};


struct session_udp_result {
  core::error_code ec;
  bool replied = false;
  core::reply_code reply = core::reply_code::succeeded;
  udp_result result;
};

// Sets up the upstream side of an association routed through a SOCKS5
// upstream: the control connection (kept open) and the relay's address.
asio::awaitable<std::pair<core::error_code, std::optional<udp::endpoint>>> upstream_udp(
    const routing::route& route, const config::snapshot& snap, worker_services& svc, const routing::pick_context& pick,
    tcp::socket& control) {
  std::vector<upstream::proxy_url> hops = route.hops;
  std::shared_ptr<routing::member_state> member;
  if (route.k == routing::route::kind::pool) {
    const auto* p = snap.router.get_pool();
    for (const auto& m : p != nullptr ? p->candidates(pick) : std::vector<std::shared_ptr<routing::member_state>>{}) {
      if (m->admits(clock::now())) {
        member = m;
        hops = {m->url()};
        break;
      }
    }
    if (hops.empty()) {
      co_return std::make_pair(core::error_code(core::socks_errc::upstream_failure), std::nullopt);
    }
  }
  // Reach the last hop (through the others), then ask it for UDP.
  tcp::socket sock(control.get_executor());
  if (hops.size() == 1) {
    auto d = co_await upstream::dial_direct(hops.front().server, svc.dns, route.egress, {});
    if (d.ec) {
      if (member) {
        member->on_failure(clock::now(), snap.router.get_pool()->breaker());
      }
      co_return std::make_pair(core::error_code(core::socks_errc::upstream_failure), std::nullopt);
    }
    sock = std::move(d.socket);
  } else {
    auto c = co_await upstream::dial_chain(std::span(hops.data(), hops.size() - 1), hops.back().server, svc.dns,
                                           route.egress);
    if (c.ec) {
      co_return std::make_pair(c.ec, std::nullopt);
    }
    sock = std::move(c.socket);
  }
  auto r = co_await upstream::open_udp_associate(sock, hops.back());
  if (r.result.ec) {
    co_return std::make_pair(r.result.ec, std::nullopt);
  }
  control = std::move(sock);
  co_return std::make_pair(core::error_code{}, std::optional<udp::endpoint>(r.relay));
}

asio::awaitable<session_udp_result> serve_udp(tcp::socket& client, const std::shared_ptr<const config::snapshot>& snap,
                                              worker_services& svc, policy::request_view view,
                                              const core::ip::address& client_ip, const handshake_result& hs,
                                              const routing::route& route, obs::access_record& rec,
                                              session_control& ctl) {
  session_udp_result out;
  const auto& cfg = snap->source;
  policy::refusal refused = policy::refusal::none;
  const std::string user = hs.user != nullptr ? hs.user->name : std::string();
  auto lease = svc.shared.limits.admit_udp(client_ip, user, cfg.udp.max_per_ip, cfg.udp.max_per_user, refused);
  if (!lease) {
    svc.metrics.rejected[static_cast<std::size_t>(refused)].inc();
    out.ec = core::socks_errc::limit_reached;
    co_return out;
  }
  // Upstream side first: if it cannot be set up the client hears why.
  tcp::socket upstream_control(client.get_executor());
  udp_association::options opts;
  opts.client_ip = client_ip;
  if (route.k == routing::route::kind::block) {
    out.ec = core::socks_errc::not_allowed;
    co_return out;
  }
  if (route.k == routing::route::kind::redirect) {
    out.ec = core::socks_errc::command_not_supported;
    co_return out;
  }
  if (route.k == routing::route::kind::chain || route.k == routing::route::kind::pool) {
    ctl.expires_after(cfg.timeouts.connect);
    const routing::pick_context pick{client_ip, user, rec.target};
    auto [uec, relay] = co_await upstream_udp(route, *snap, svc, pick, upstream_control);
    if (ctl.end_phase() && uec) {
      out.ec = core::socks_errc::connect_timeout;
      co_return out;
    }
    if (uec) {
      out.ec = uec;
      co_return out;
    }
    opts.relay = relay;
    rec.dialled = "via " + core::to_string(*relay);
  }
  // The client-facing socket: on the address the client reached us on.
  core::error_code ec;
  const auto local = client.local_endpoint(ec);
  udp::socket client_side(client.get_executor());
  if (!ec) {
    client_side.open(local.address().is_v4() ? udp::v4() : udp::v6(), ec);
  }
  if (!ec) {
    client_side.bind(udp::endpoint(local.address(), 0), ec);
  }
  udp::endpoint bound;
  if (!ec) {
    bound = client_side.local_endpoint(ec);
  }
  if (ec) {
    out.ec = core::socks_errc::general_failure;
    co_return out;
  }
  // BND: where the client must send. Behind NAT, the configured address.
  tcp::endpoint bnd(bound.address(), bound.port());
  if (!cfg.udp.advertise_address.empty()) {
    bnd.address(core::ip::make_address(cfg.udp.advertise_address, ec));
  }
  const auto wec = co_await send_reply(client, hs.proto, core::reply_code::succeeded, bnd);
  if (wec) {
    out.ec = wec;
    co_return out;
  }
  out.replied = true;
  // The request's DST names the client's own sending address when the client
  // knows it; zeros or another host (the target, as some clients send) leave
  // the port to be learnt from the first datagram.
  if (const auto* hint = hs.target.ip_address();
      hint != nullptr && hs.target.port != 0 && (hint->is_unspecified() || core::unmap(*hint) == client_ip)) {
    opts.client_port = hs.target.port;
  }
  view.cmd = core::command::udp_associate;
  udp_association assoc(client, opts.relay ? &upstream_control : nullptr, client_side, *snap, svc, view, opts);
  out.result = co_await assoc.async_run(asio::use_awaitable);
  co_return out;
}

struct bind_outcome {
  core::error_code ec;
  bool replied = false;
  core::reply_code reply = core::reply_code::succeeded;
  std::string_view blocked_by;  ///< the ACL rule that refused every expected peer
};

// Waits for a connection from one of `expected` (any when empty) that the
// ACL allows.
asio::awaitable<core::error_code> accept_expected(tcp::acceptor& acceptor, const upstream::address_list& expected,
                                                  tcp::socket& out, worker_services& svc, const config::snapshot& snap,
                                                  policy::request_view view) {
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(nothrow);
    if (ec) {
      co_return ec;
    }
    core::error_code pec;
    const auto peer = core::unmap(sock.remote_endpoint(pec).address());
    bool ok = !pec && (expected.empty() || std::find(expected.begin(), expected.end(), peer) != expected.end());
    if (ok) {
      // Whoever connects must pass the ACL as a target would: a named peer
      // as the request named it (its name, DST.PORT) at the address it
      // connects from; an unnamed one on its own address and port.
      view.address = peer;
      if (expected.empty()) {
        view.port = sock.remote_endpoint(pec).port();
      }
      ok = !pec && snap.acl.evaluate(view).allowed();
    }
    if (ok) {
      out = std::move(sock);
      co_return core::error_code{};
    }
    svc.metrics.binds_rejected_peer.inc();  // not who the client said: closed, keep waiting
  }
}

// Completes when the client closes (or misbehaves by sending before the
// second reply): either way the BIND is over.
asio::awaitable<void> client_gone(tcp::socket& client) {
  auto [ec] = co_await client.async_wait(tcp::socket::wait_read, nothrow);
  (void)ec;
}

asio::awaitable<bind_outcome> serve_bind(tcp::socket& client, client_protocol proto, const config::snapshot& snap,
                                         worker_services& svc, const core::target_address& expected_peer,
                                         tcp::socket& peer_out, obs::access_record& rec, policy::request_view view,
                                         session_control& ctl) {
  bind_outcome out;
  const auto& cfg = snap.source;
  // Who may connect: DST.ADDR (those of a name's addresses the ACL allows,
  // judged as CONNECT judges the addresses it would dial); 0.0.0.0 or ::
  // means anyone (the client does not know the peer's address).
  view.cmd = core::command::bind;
  upstream::address_list expected;
  std::optional<core::ip::address> toward;
  if (const auto* ip = expected_peer.ip_address()) {
    if (!ip->is_unspecified()) {
      expected.push_back(core::unmap(*ip));
      toward = core::unmap(*ip);
    }
  } else {
    const auto& d = *expected_peer.domain();
    ctl.expires_after(cfg.timeouts.connect);  // as CONNECT's lookup: the resolver's own timeouts may be longer
    auto [rec_ec, addrs] = co_await svc.dns.async_resolve(std::string_view(d.data(), d.size()), nothrow);
    if (ctl.end_phase() && (rec_ec || addrs.empty())) {
      out.ec = core::socks_errc::connect_timeout;
      co_return out;
    }
    if (rec_ec || addrs.empty()) {
      out.ec = rec_ec ? rec_ec : core::error_code(core::socks_errc::host_not_found);
      co_return out;
    }
    for (const auto& a : addrs) {
      expected.push_back(core::unmap(a));
    }
    if (auto refused = upstream::keep_allowed(expected, acl_check(snap, view, out.blocked_by))) {
      out.ec = refused;  // not_allowed: none of them may be the peer
      co_return out;
    }
    toward = expected.front();
  }
  // Listen on the address the peer will see us at: the route toward it (a
  // connected UDP socket sends nothing but tells the kernel's choice), else
  // the address the client reached.
  core::error_code ec;
  core::ip::address local = client.local_endpoint(ec).address();
  if (toward) {
    udp::socket probe(client.get_executor());
    probe.open(toward->is_v4() ? udp::v4() : udp::v6(), ec);
    if (!ec) {
      probe.connect(udp::endpoint(*toward, 9), ec);
    }
    if (!ec) {
      local = probe.local_endpoint(ec).address();
    }
  }
  tcp::acceptor acceptor(client.get_executor());
  acceptor.open(local.is_v4() ? tcp::v4() : tcp::v6(), ec);
  if (!ec) {
    acceptor.bind(tcp::endpoint(local, 0), ec);
  }
  if (!ec) {
    acceptor.listen(1, ec);
  }
  tcp::endpoint listening;
  if (!ec) {
    listening = acceptor.local_endpoint(ec);
  }
  if (ec) {
    out.ec = core::socks_errc::general_failure;
    co_return out;
  }
  tcp::endpoint bnd = listening;
  if (!cfg.bind.advertise_address.empty()) {
    bnd.address(core::ip::make_address(cfg.bind.advertise_address, ec));
  }
  if (auto wec = co_await send_reply(client, proto, core::reply_code::succeeded, bnd)) {
    out.ec = wec;
    co_return out;
  }
  asio::steady_timer wait(client.get_executor());
  wait.expires_after(cfg.bind.timeout);
  auto r = co_await (accept_expected(acceptor, expected, peer_out, svc, snap, view) || expiry(wait) ||
                     client_gone(client));
  core::error_code aec;
  acceptor.close(aec);  // one connection per BIND
  if (r.index() == 2) {
    out.ec = asio::error::eof;  // the client left; nobody to answer
    out.replied = true;
    co_return out;
  }
  out.reply = r.index() == 0 && !std::get<0>(r) ? core::reply_code::succeeded : core::reply_code::host_unreachable;
  tcp::endpoint peer;
  if (out.reply == core::reply_code::succeeded) {
    peer = peer_out.remote_endpoint(ec);
    rec.dialled = core::to_string(peer);
    svc.metrics.binds_accepted.inc();
  }
  const auto wec = co_await send_reply(client, proto, out.reply, peer);
  out.replied = !wec;
  out.ec = out.reply != core::reply_code::succeeded ? core::error_code(core::socks_errc::connect_timeout) : wec;
  co_return out;
}

}  // namespace

namespace {

// What a session keeps once its handshake is over: the accounting, the
// leases it holds, and how it ended so far.
constexpr std::size_t no_forward = SIZE_MAX;

struct session_state {
  obs::access_record rec;
  policy::session_lease lease;       ///< admission (global / per IP)
  policy::session_lease user_lease;  ///< per user
  std::shared_ptr<routing::member_state> member;  ///< pool member carrying the tunnel
  const auth::user* user = nullptr;
  client_protocol proto = client_protocol::unknown;
  command cmd = command::connect;
  core::error_code ec;
  core::reply_code reply = core::reply_code::succeeded;
  bool replied = false;
  bool account = false;  ///< admitted: counted and logged at the end
  bool relays = false;   ///< a TCP tunnel follows (CONNECT, BIND)
  std::string_view udp_reason;
  relay::relay_result moved;  ///< bytes moved outside the TCP relay (early bytes, UDP)
};

// What a dial under the connect deadline (started at `started`) brought.
// Called right after the dial returns: it ends the phase. On success the
// socket, the dialled address and any early bytes become the session's.
// The pool member is handed over whatever happened: it was counted as
// started, so the session's end must count it ended. A plain function, not
// a coroutine: no extra frame per session.
core::error_code take_dial(dial_outcome d, session_control& ctl, clock::time_point started, worker_services& svc,
                           session_state& st, tcp::socket& target, std::string_view& blocked_by,
                           std::vector<std::uint8_t>& early) {
  const bool late = ctl.end_phase();
  st.member = std::move(d.member);
  if (late && d.ec) {
    return core::socks_errc::connect_timeout;
  }
  if (!d.blocked_by.empty()) {
    blocked_by = d.blocked_by;
  }
  if (!d.ec) {
    target = std::move(d.socket);
    st.rec.dialled = std::move(d.dialled);
    early = std::move(d.early);
    svc.metrics.connect_duration.observe(
        std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started));
  }
  return d.ec;
}

// A request the ACL refused: counted, and the rule named in the access log.
void count_acl_block(session_state& st, const config::snapshot& snap, worker_services& svc,
                     std::string_view blocked_by) {
  svc.metrics.acl_blocked.inc();
  st.rec.rule = std::string(blocked_by);
  if (auto* c = snap.acl_counter(blocked_by)) {
    c->inc();
  }
}

// Everything before the relay: PROXY header, admission, handshake, ACL,
// route, dial, reply (and UDP ASSOCIATE / BIND, which reply themselves).
// Its frame is large (buffers, parse results, the dial's state) and is gone
// once the tunnel is open: an idle tunnel keeps only run()'s small frame.
asio::awaitable<void> establish(tcp::socket& client, const tcp::endpoint& peer, tcp::socket& target,
                                const std::shared_ptr<const config::snapshot>& snap, worker_services& svc,
                                session_control& ctl, config::proxy_protocol_mode proxy_protocol,
                                session_state& st) {
  const auto& cfg = snap->source;
  auto& metrics = svc.metrics;
  auto& rec = st.rec;
  rec.route = "direct";
  core::ip::address client_ip = core::unmap(peer.address());
  rec.client = core::to_string(peer);

  // One deadline for everything before the request is known.
  ctl.expires_after(cfg.timeouts.handshake);
  auto buf = std::make_unique<handshake_buffer>();

  // ---- PROXY protocol header from a load balancer: the real client address
  if (proxy_protocol != config::proxy_protocol_mode::off) {
    protocol::proxy::header ph;
    const bool v1 = proxy_protocol != config::proxy_protocol_mode::v2;
    const bool v2 = proxy_protocol != config::proxy_protocol_mode::v1;
    const auto pr = co_await read_proxy_header(client, *buf, v1, v2, ph);
    if (!pr.is_done()) {
      const bool timed_out = ctl.expired();
      metrics.handshakes[0][timed_out ? 2 : 1].inc();
      obs::log().debug("connection from {}: {} PROXY protocol header", rec.client,
                       timed_out ? "no" : "invalid");
      co_return;
    }
    if (ph.source) {
      client_ip = core::unmap(ph.source->address());
      rec.client = core::to_string(*ph.source);
    }
  }

  // ---- admission: connection rate and concurrency limits
  policy::refusal refused = policy::refusal::none;
  st.lease = svc.shared.limits.admit(client_ip, cfg.limits, refused);
  if (!st.lease) {
    metrics.rejected[static_cast<std::size_t>(refused)].inc();
    obs::log().debug("connection from {} refused: {}", rec.client, policy::to_string(refused));
    co_return;  // closed at once: a flood costs us as little as possible
  }
  st.account = true;

  auto& ec = st.ec;
  auto& reply = st.reply;
  auto& replied = st.replied;
  auto& moved = st.moved;

  // ---- handshake: protocol, authentication, request (under one deadline)
  handshake_result hs;
  {
    session_auth auth(snap, svc, client_ip);
    hs = co_await run_handshake(client, *buf, auth);
    if (ctl.end_phase() && hs.ec) {
      hs = handshake_result{};
      hs.ec = core::socks_errc::handshake_timeout;
    }
  }
  rec.proto = to_string(hs.proto);
  rec.command = hs.target_known ? to_string(hs.cmd) : std::string_view("-");
  if (hs.user != nullptr) {
    rec.user = hs.user->name;
  }
  {
    const std::size_t version = static_cast<std::size_t>(hs.proto);  // unknown, socks4, socks5
    const std::size_t result = !hs.ec || hs.reply_due ? 0 : hs.ec == core::socks_errc::handshake_timeout ? 2 : 1;
    metrics.handshakes[version][result].inc();
  }
  ec = hs.ec;  // RFC 1929 verdicts were counted before the client heard them (session_auth::decided)
  if (hs.target_known) {
    // A name that is an IP address ("127.0.0.1", or "0177.0.0.1" as a
    // browser and inet_aton read it, sent as DOMAIN) is an IP: IP rules
    // must see it as one. One that only looks like an address is no name
    // either: DNS never hears of it. A UDP ASSOCIATE's DST is a hint where
    // only a plain literal is an address: other names mean "any address"
    // (PySocks sends the name "0").
    if (const auto* d = hs.target.domain()) {
      const std::string_view name(d->data(), d->size());
      core::ip::address literal;
      if (hs.cmd == command::udp_associate) {
        core::error_code lec;
        literal = core::ip::make_address(name, lec);
        if (!lec) {
          hs.target.host = core::unmap(literal);
        }
      } else if (const auto form = core::read_name(name, literal); form == core::name_form::address) {
        hs.target.host = literal;
      } else if (form == core::name_form::invalid && !ec) {
        ec = core::socks_errc::host_not_found;
      }
    }
    rec.target = core::to_string(hs.target);
  }

  // ---- per-user concurrency
  if (!ec && hs.user != nullptr) {
    st.user_lease = svc.shared.limits.admit_user(hs.user->name, cfg.limits, refused);
    if (!st.user_lease) {
      metrics.rejected[static_cast<std::size_t>(refused)].inc();
      ec = core::socks_errc::limit_reached;
    }
  }

  // ---- decide: the ACL on the target as requested (CONNECT), the expected
  // peer (BIND); UDP is checked per datagram, its request names no target.
  std::string host_name;
  policy::request_view view;
  std::string_view blocked_by;
  if (!ec) {
    view.client = client_ip;
    view.user = hs.user;
    view.cmd = hs.cmd;
    view.port = hs.target.port;
    if (const auto* d = hs.target.domain()) {
      host_name = policy::normalise_host(std::string_view(d->data(), d->size()));
      view.domain = host_name;
    } else {
      view.address = *hs.target.ip_address();
    }
    // UDP ASSOCIATE names no target (its DST is where the client will send
    // from): only rules about the client, user or command can refuse it
    // here; every datagram's target is checked later. A BIND naming no
    // peer (0.0.0.0 / ::) is checked on the peer that connects instead.
    const bool no_target = hs.cmd == command::udp_associate ||
                           (hs.cmd == command::bind && view.address && view.address->is_unspecified());
    if (no_target) {
      view.address.reset();
      view.domain = {};
      view.port = 0;
    }
    const auto verdict = snap->acl.evaluate(view);
    if (verdict.blocked()) {
      ec = core::socks_errc::not_allowed;
      blocked_by = verdict.by;
    }
  }

  // ---- route: forwarding rules choose direct, an upstream, a chain, the
  // pool, a redirect or a block. Rules on the destination address of a
  // domain target need it resolved first.
  const routing::route* route = &snap->router.default_route();
  if (!ec) {
    routing::route_request rq{client_ip, hs.user, &hs.target, host_name, view.address};
    auto decision = snap->router.select(rq);
    // A UDP request's DST is a hint, not a target: never resolved for routing.
    if (decision.need_address() && hs.cmd != command::udp_associate) {
      ctl.expires_after(cfg.timeouts.connect);
      auto [rec_ec, addrs] = co_await svc.dns.async_resolve(host_name, nothrow);
      const bool late = ctl.end_phase();
      if (late && (rec_ec || addrs.empty())) {
        ec = core::socks_errc::connect_timeout;
      } else if (rec_ec || addrs.empty()) {
        ec = rec_ec ? rec_ec : core::error_code(core::socks_errc::host_not_found);
      } else {
        rq.address = core::unmap(addrs.front());
        decision = snap->router.select(rq);
      }
    }
    if (!ec) {
      route = decision.need_address() ? &snap->router.default_route() : decision.r;
      rec.route = route->name;
      if (hs.cmd == command::bind && route->k != routing::route::kind::direct) {
        // The peer must reach *this* proxy; through an upstream it could not.
        ec = core::socks_errc::command_not_supported;
      }
    }
  }

  // ---- dial (under the connect deadline). Direct dials check every
  // resolved address against the ACL and dial only the allowed ones.
  std::vector<std::uint8_t> early_down;
  if (!ec && hs.cmd == command::connect) {
    const dial_request dr{snap.get(), &svc, route, hs.target, host_name, &view,
                          routing::pick_context{client_ip, hs.user != nullptr ? std::string_view(hs.user->name) : "",
                                                rec.target}};
    ctl.expires_after(cfg.timeouts.connect);
    const auto started = clock::now();
    ec = take_dial(co_await dial(dr), ctl, started, svc, st, target, blocked_by, early_down);
  }
  if (ec == core::socks_errc::not_allowed) {
    count_acl_block(st, *snap, svc, blocked_by);
  }

  // ---- UDP ASSOCIATE: the association replies itself and lives until its
  // control connection closes.
  session_udp_result udp_done;
  if (!ec && hs.cmd == command::udp_associate) {
    buf.reset();
    udp_done = co_await serve_udp(client, snap, svc, view, client_ip, hs, *route, rec, ctl);
    ec = udp_done.ec;
    replied = udp_done.replied;
    reply = udp_done.reply;
    moved.bytes_up = udp_done.result.bytes_up;
    moved.bytes_down = udp_done.result.bytes_down;
  }

  // ---- BIND: first reply (where we listen), wait for the peer, second
  // reply (who connected); then relay like CONNECT.
  if (!ec && hs.cmd == command::bind) {
    auto b = co_await serve_bind(client, hs.proto, *snap, svc, hs.target, target, rec, view, ctl);
    ec = b.ec;
    replied = b.replied;
    reply = b.reply;
    if (ec == core::socks_errc::not_allowed) {
      count_acl_block(st, *snap, svc, b.blocked_by);
    }
  }

  // ---- reply
  if (!replied && (hs.reply_due || (hs.target_known && !hs.ec))) {
    reply = core::to_reply_code(ec);
    tcp::endpoint bnd;
    if (!ec) {
      core::error_code lec;
      bnd = target.local_endpoint(lec);
    }
    const auto wec = co_await send_reply(client, hs.proto, reply, bnd);
    replied = !wec;
    if (!ec && wec) {
      ec = wec;
    }
  }

  // ---- relay: first the payload bytes that came with the handshake
  const bool relays = !ec && hs.cmd != command::udp_associate;
  if (relays && buf) {
    const auto early = buf->pending();
    if (!early.empty()) {
      auto [wec, n] = co_await asio::async_write(target, asio::buffer(early.data(), early.size()), nothrow);
      ec = wec;
      moved.bytes_up = n;
    }
  }
  if (!ec && !early_down.empty()) {
    // Tunnel bytes that arrived with an upstream's reply go to the client.
    auto [wec, n] = co_await asio::async_write(client, asio::buffer(early_down), nothrow);
    ec = wec;
    moved.bytes_down = n;
    early_down = {};
  }
  st.user = hs.user;
  st.proto = hs.proto;
  st.cmd = hs.cmd;
  st.relays = !ec && relays;
  if (!ec && hs.cmd == command::udp_associate) {
    st.udp_reason = udp_done.result.reason;
  }
}

// Counters, pool bookkeeping and the access log line for a finished session.
void account(session_state& st, const config::snapshot& snap, worker_services& svc,
             clock::time_point started) {
  // Limits first: the session's slots are free before it is reported, so
  // whoever reads the access line may count on them.
  st.lease = {};
  st.user_lease = {};
  auto& metrics = svc.metrics;
  auto& rec = st.rec;
  const auto& moved = st.moved;
  if (st.member) {
    st.member->session_ended();
  }
  metrics.bytes_up.inc(moved.bytes_up);
  metrics.bytes_down.inc(moved.bytes_down);
  if (st.replied) {
    metrics.count_reply(st.reply);
  }
  rec.reply = st.replied ? (st.proto == client_protocol::socks4 ? static_cast<int>(core::to_socks4_reply(st.reply))
                                                                : static_cast<int>(st.reply))
                         : -1;
  if (!st.ec && st.cmd == command::udp_associate) {
    rec.result = st.udp_reason;
  } else if (!st.ec && moved.reason == relay::end_reason::idle_timeout) {
    rec.result = "idle_timeout";
  } else if (!st.ec && moved.reason == relay::end_reason::cancelled) {
    rec.result = "cancelled";
  } else {
    rec.result = outcome(st.ec);
  }
  rec.bytes_up = moved.bytes_up;
  rec.bytes_down = moved.bytes_down;
  rec.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started);
  metrics.session_duration.observe(rec.duration);
  if (st.user != nullptr) {
    if (auto it = snap.user_counters.find(st.user); it != snap.user_counters.end()) {
      it->second->sessions.inc();
      it->second->bytes_up.inc(moved.bytes_up);
      it->second->bytes_down.inc(moved.bytes_down);
    }
  }
  if (snap.source.log.access_log) {
    obs::write_access(rec);
  }
}

// A port_forward connection up to its relay: admission, ACL on the fixed
// target, dial. No SOCKS: a refused target is a close.
asio::awaitable<void> establish_forward(tcp::socket& client, const tcp::endpoint& peer, tcp::socket& target,
                                        const std::shared_ptr<const config::snapshot>& snap, worker_services& svc,
                                        session_control& ctl, std::size_t forward_index, session_state& st) {
  const auto& cfg = snap->source;
  auto& metrics = svc.metrics;
  auto& rec = st.rec;
  rec.proto = "forward";
  rec.command = "connect";
  const core::ip::address client_ip = core::unmap(peer.address());
  rec.client = core::to_string(peer);
  const auto& forwards = snap->router.forwards();
  if (forward_index >= forwards.size()) {
    co_return;  // the entry went away in a reload
  }
  const auto& fwd = forwards[forward_index];
  rec.target = core::to_string(fwd.target);
  rec.route = fwd.r.name;

  policy::refusal refused = policy::refusal::none;
  st.lease = svc.shared.limits.admit(client_ip, cfg.limits, refused);
  if (!st.lease) {
    metrics.rejected[static_cast<std::size_t>(refused)].inc();
    co_return;
  }
  st.account = true;

  auto& ec = st.ec;
  std::string host_name;
  policy::request_view view;
  view.client = client_ip;
  view.port = fwd.target.port;
  if (const auto* d = fwd.target.domain()) {
    host_name = policy::normalise_host(std::string_view(d->data(), d->size()));
    view.domain = host_name;
  } else {
    view.address = *fwd.target.ip_address();
  }
  std::string_view blocked_by;
  if (const auto verdict = snap->acl.evaluate(view); verdict.blocked()) {
    ec = core::socks_errc::not_allowed;
    blocked_by = verdict.by;
  }

  std::vector<std::uint8_t> early_down;
  if (!ec) {
    const dial_request dr{snap.get(), &svc, &fwd.r, fwd.target, host_name, &view,
                          routing::pick_context{client_ip, "", rec.target}};
    ctl.expires_after(cfg.timeouts.connect);
    const auto started = clock::now();
    ec = take_dial(co_await dial(dr), ctl, started, svc, st, target, blocked_by, early_down);
  }
  if (ec == core::socks_errc::not_allowed) {
    count_acl_block(st, *snap, svc, blocked_by);
  }
  if (!ec && !early_down.empty()) {
    auto [wec, n] = co_await asio::async_write(client, asio::buffer(early_down), nothrow);
    ec = wec;
    st.moved.bytes_down = n;
  }
  st.relays = !ec;
}

// An open tunnel: the two sockets, the relay between them and what the
// session accounts at its end. Allocated when the coroutine hands over, on
// its worker's tunnel_set, freed by itself when the relay ends.
class tunnel final : public tunnel_link {
 public:
  tunnel(tcp::socket client, tcp::socket target, std::shared_ptr<const config::snapshot> snap,
         worker_services& svc, session_state st, clock::time_point started)
      : client_(std::move(client)), target_(std::move(target)), snap_(std::move(snap)), svc_(svc),
        st_(std::move(st)), started_(started),
        relay_(client_, target_, snap_->source.relay, svc.pipes, svc.buffers, svc.idle) {}

  void start() {
    relay_.async_run([this](relay::relay_result r) { finish(r); });
    svc_.tunnels.add(*this);
  }

  void cancel() noexcept override { relay_.cancel(); }

 private:
  void finish(const relay::relay_result& r) {
    st_.moved.bytes_up += r.bytes_up;
    st_.moved.bytes_down += r.bytes_down;
    st_.moved.reason = r.reason;
    account(st_, *snap_, svc_, started_);
    auto& set = svc_.tunnels;
    delete this;  // unlinks itself from the set; the relay completed, nothing refers to it
    set.ended();
  }

  tcp::socket client_;
  tcp::socket target_;
  std::shared_ptr<const config::snapshot> snap_;
  worker_services& svc_;
  session_state st_;
  clock::time_point started_;
  relay::tcp_relay relay_;
};

// A session up to its tunnel: establishing runs in a frame of its own; if a
// tunnel follows, the sockets and the session_state move to a `tunnel` and
// this coroutine (with co_spawn's state around it) ends.
asio::awaitable<bool> serve(tcp::socket client, tcp::endpoint peer, std::shared_ptr<const config::snapshot> snap,
                            worker_services& svc, session_control& ctl, std::uint64_t id,
                            config::proxy_protocol_mode proxy_protocol, std::size_t forward_index) {
  // Cancellation (server shutdown) is handled through error codes below,
  // not by exceptions thrown at the next co_await.
  co_await asio::this_coro::throw_if_cancelled(false);
  const auto started = clock::now();
  session_state st;
  st.rec.session = id;
  tcp::socket target(client.get_executor());
  if (forward_index == no_forward) {
    co_await establish(client, peer, target, snap, svc, ctl, proxy_protocol, st);
  } else {
    co_await establish_forward(client, peer, target, snap, svc, ctl, forward_index, st);
  }
  if (!st.account) {
    co_return false;
  }
  if (st.relays) {
    auto t = std::make_unique<tunnel>(std::move(client), std::move(target), std::move(snap), svc, std::move(st),
                                      started);
    t->start();
    t.release();  // owned by svc.tunnels from here on
    co_return true;
  }
  account(st, *snap, svc, started);
  co_return false;
}

}  // namespace

asio::awaitable<bool> run(tcp::socket client, tcp::endpoint peer, std::shared_ptr<const config::snapshot> snap,
                          worker_services& svc, session_control& ctl, std::uint64_t id,
                          config::proxy_protocol_mode proxy_protocol) {
  return serve(std::move(client), peer, std::move(snap), svc, ctl, id, proxy_protocol, no_forward);
}

asio::awaitable<bool> run_forward(tcp::socket client, tcp::endpoint peer, std::shared_ptr<const config::snapshot> snap,
                                  worker_services& svc, session_control& ctl, std::uint64_t id,
                                  std::size_t forward_index) {
  return serve(std::move(client), peer, std::move(snap), svc, ctl, id, config::proxy_protocol_mode::off, forward_index);
}

void session_control::expires_after(std::chrono::steady_clock::duration d) {
  expired_ = false;
  const auto phase = ++phase_;
  timer_.expires_after(d);  // a wait still pending completes as aborted
  ++waits_;
  timer_.async_wait([this, phase](boost::system::error_code ec) { on_wait(phase, ec); });
}

void session_control::disarm() noexcept {
  ++phase_;  // a wait that fired but has not run yet no longer counts
  timer_.cancel();
}

void session_control::on_wait(std::uint32_t phase, boost::system::error_code ec) {
  --waits_;
  if (released_) {
    if (waits_ == 0) {
      owner_->erase(self_);  // the last reference to this record
    }
    return;
  }
  if (!ec && phase == phase_) {
    expired_ = true;
    cancel();
    // A cancellation that comes while no operation is pending (one has just
    // completed, the coroutine has not resumed yet) cancels nothing, and
    // the next operation would run without a deadline. Until the phase
    // ends, keep cancelling whatever the session awaits.
    using namespace std::chrono_literals;
    timer_.expires_after(10ms);
    ++waits_;
    timer_.async_wait([this, phase](boost::system::error_code e) { on_wait(phase, e); });
  }
}

void session_control::release() noexcept {
  released_ = true;
  disarm();
  if (waits_ == 0) {
    owner_->erase(self_);
  }
}

tunnel_set::~tunnel_set() {
  // A tunnel still here has readiness waits queued in Asio whose memory is
  // inside the tunnel: freeing it would leave the io_context destroying
  // freed operations. Its owner ends tunnels first (cancel_all(), then the
  // loop runs their completions); one left behind is a bug, and leaking it
  // lets the leak checker say so instead of corrupting memory.
  on_ended_ = nullptr;
  if (!tunnels_.empty()) {
    obs::log().error("{} tunnel(s) still open when their worker was destroyed",
                     std::distance(tunnels_.begin(), tunnels_.end()));
    tunnels_.clear();
  }
}

void tunnel_set::cancel_all() noexcept {
  cancelled_ = true;
  for (auto& t : tunnels_) {
    t.cancel();  // completions are posted: no tunnel leaves the list during this loop
  }
}

}  // namespace cs::session
