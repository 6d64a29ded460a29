#include "session/udp_associate.hpp"

#include "obs/log.hpp"
#include "protocol/socks5.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace cs::session {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;
namespace s5 = protocol::socks5;

namespace {
constexpr int burst = 32;                 // datagrams per readiness event before yielding
constexpr std::size_t max_peers = 1024;   // remembered targets per association
constexpr std::size_t header_room = s5::max_udp_header_size;
}  // namespace

udp_association::udp_association(asio::ip::tcp::socket& control, asio::ip::tcp::socket* upstream,
                                 udp::socket& client_side, const config::snapshot& snap, worker_services& svc,
                                 policy::request_view view, options opts)
    : control_(control), upstream_(upstream), client_(client_side), snap_(snap), svc_(svc), view_(view),
      opts_(std::move(opts)), idle_(client_side.get_executor()) {
  view_.cmd = core::command::udp_associate;
}

udp_association::~udp_association() = default;

void udp_association::start(asio::any_completion_handler<void(udp_result)> handler) {
  handler_.swap(handler);  // not operator=: see tcp_relay
  auto slot = handler_.get_cancellation_slot();
  if (slot.is_connected()) {
    slot.assign([this](asio::cancellation_type) { stop("cancelled"); });
  }
  const auto now = clock::now();
  last_activity_ = refilled_up_ = refilled_down_ = now;
  tokens_up_ = tokens_down_ = std::max(snap_.source.udp.rate, 1.0);
  core::error_code ec;
  client_.non_blocking(true, ec);
  if (opts_.relay) {
    target_socket(opts_.relay->address().is_v6());
  }
  svc_.metrics.udp_associations.inc();
  arm_idle();
  watch_control(control_);
  if (upstream_ != nullptr) {
    watch_control(*upstream_);
  }
  // First look without waiting (edge-triggered readiness), posted so that
  // the handler never runs inside async_run().
  ++outstanding_;
  asio::post(client_.get_executor(), [this] {
    --outstanding_;
    drain_client();
    op_done();
  });
}

udp::socket* udp_association::target_socket(bool v6) {
  auto& slot = v6 ? out6_ : out4_;
  if (!slot) {
    core::error_code ec;
    slot.emplace(client_.get_executor());
    slot->open(v6 ? udp::v6() : udp::v4(), ec);
    if (!ec && v6) {
      slot->set_option(asio::ip::v6_only(true), ec);
    }
    if (!ec) {
      slot->non_blocking(true, ec);
    }
    if (ec) {
      slot.reset();
      return nullptr;
    }
    wait_readable(*slot, false);
  }
  return &*slot;
}

void udp_association::wait_readable(udp::socket& s, bool from_client) {
  ++outstanding_;
  s.async_wait(udp::socket::wait_read, [this, &s, from_client](core::error_code ec) {
    --outstanding_;
    if (ec || stopping_) {
      if (ec && ec != asio::error::operation_aborted) {
        stop("error");
      }
    } else if (from_client) {
      drain_client();
    } else {
      drain_targets(s);
    }
    op_done();
  });
}

void udp_association::drain_client() {
  if (stopping_) {
    return;
  }
  auto& buf = svc_.udp_buffer;
  for (int i = 0; i < burst; ++i) {
    udp::endpoint from;
    core::error_code ec;
    const std::size_t n = client_.receive_from(asio::buffer(buf.data(), buf.size() - header_room), from, 0, ec);
    if (ec == asio::error::would_block) {
      wait_readable(client_, true);
      return;
    }
    if (ec) {
      continue;  // e.g. ICMP port unreachable reported on the socket; keep going
    }
    on_client_datagram(from, std::span(buf.data(), n));
    if (stopping_) {
      return;
    }
  }
  ++outstanding_;
  asio::post(client_.get_executor(), [this] {
    --outstanding_;
    drain_client();
    op_done();
  });
}

void udp_association::drop(obs::counter& why) {
  why.inc();
  ++result_.dropped;
}

bool udp_association::take_token(double& tokens, clock::time_point& refilled) {
  const double rate = snap_.source.udp.rate;
  if (rate <= 0) {
    return true;
  }
  const auto now = clock::now();
  tokens = std::min(std::max(rate, 1.0), tokens + std::chrono::duration<double>(now - refilled).count() * rate);
  refilled = now;
  if (tokens < 1.0) {
    return false;
  }
  tokens -= 1.0;
  return true;
}

void udp_association::on_client_datagram(const udp::endpoint& from, std::span<std::uint8_t> data) {
  auto& m = svc_.metrics;
  // Only the associating client, from one port: its IP always; the port
  // from the request when it named the client, else the first datagram's.
  if (core::unmap(from.address()) != opts_.client_ip) {
    drop(m.udp_dropped_source);
    return;
  }
  if (opts_.client_port && from.port() != *opts_.client_port) {
    drop(m.udp_dropped_source);
    return;
  }
  if (client_ep_ && *client_ep_ != from) {
    drop(m.udp_dropped_source);
    return;
  }
  s5::udp_header h;
  const auto r = s5::parse_udp_header(data, h);
  if (!r.is_done()) {
    drop(m.udp_dropped_malformed);
    return;
  }
  if (h.frag != 0) {
    drop(m.udp_dropped_fragment);
    return;
  }
  if (!client_ep_) {
    client_ep_ = from;
  }
  if (!take_token(tokens_up_, refilled_up_)) {
    drop(m.udp_dropped_rate);
    return;
  }
  last_activity_ = clock::now();
  const auto payload = data.subspan(r.consumed);

  // The ACL on the target as named (names, ports, IP targets).
  std::string host;
  policy::request_view v = view_;
  v.port = h.dst.port;
  v.address.reset();
  if (const auto* d = h.dst.domain()) {
    host = policy::normalise_host(std::string_view(d->data(), d->size()));
    core::ip::address literal;
    const auto form = core::read_name(host, literal);
    if (form == core::name_form::invalid) {
      drop(m.udp_dropped_other);  // looks like an address, is none: no DNS name either
      return;
    }
    if (form == core::name_form::address) {
      h.dst.host = literal;
      host.clear();
    } else {
      v.domain = host;
    }
  }
  if (const auto* ip = h.dst.ip_address()) {
    v.address = core::unmap(*ip);
  }
  const auto verdict = snap_.acl.evaluate(v);
  if (verdict.blocked()) {
    drop(m.udp_dropped_acl);
    return;
  }

  if (opts_.relay) {
    // Upstream mode: the datagram goes on unchanged; the far end resolves
    // names and applies its own ACL to what they resolve to.
    auto* s = target_socket(opts_.relay->address().is_v6());
    core::error_code ec;
    if (s == nullptr || (s->send_to(asio::buffer(data.data(), data.size()), *opts_.relay, 0, ec), ec)) {
      drop(m.udp_dropped_other);
      return;
    }
    m.udp_datagrams_up.inc();
    ++result_.datagrams_up;
    result_.bytes_up += payload.size();
    return;
  }
  if (const auto* ip = h.dst.ip_address()) {
    send_to_target(core::unmap(*ip), h.dst.port, payload, {});
    return;
  }
  // A name: from the cache now, or after an asynchronous lookup.
  if (auto hit = svc_.dns.cached(host)) {
    if (hit->first || hit->second.empty()) {
      drop(m.udp_dropped_other);
      return;
    }
    for (const auto& a : hit->second) {
      v.address = core::unmap(a);
      if (snap_.acl.evaluate(v).allowed()) {
        send_to_target(*v.address, h.dst.port, payload, host);
        return;
      }
    }
    drop(m.udp_dropped_acl);
    return;
  }
  const auto slot = std::find(resolving_.begin(), resolving_.end(), false);
  if (slot == resolving_.end()) {
    drop(m.udp_dropped_other);  // too many lookups in flight for one association
    return;
  }
  const auto i = static_cast<std::size_t>(slot - resolving_.begin());
  resolving_[i] = true;
  ++outstanding_;
  auto copy = std::make_shared<std::vector<std::uint8_t>>(payload.begin(), payload.end());
  svc_.dns.async_resolve(
      host, asio::bind_cancellation_slot(
                resolve_cancel_[i].slot(),
                [this, i, copy, host, port = h.dst.port, v](core::error_code ec, upstream::address_list addrs) mutable {
                  --outstanding_;
                  resolving_[i] = false;
                  if (!stopping_) {
                    bool sent = false;
                    for (const auto& a : ec ? upstream::address_list{} : addrs) {
                      v.address = core::unmap(a);
                      v.domain = host;
                      if (snap_.acl.evaluate(v).allowed()) {
                        send_to_target(*v.address, port, *copy, host);
                        sent = true;
                        break;
                      }
                    }
                    if (!sent) {
                      drop(ec ? svc_.metrics.udp_dropped_other : svc_.metrics.udp_dropped_acl);
                    }
                  }
                  op_done();
                }));
}

void udp_association::send_to_target(const core::ip::address& a, std::uint16_t port,
                                     std::span<const std::uint8_t> payload, std::string_view) {
  auto* s = target_socket(a.is_v6());
  const udp::endpoint to(a, port);
  core::error_code ec;
  if (s == nullptr || (s->send_to(asio::buffer(payload.data(), payload.size()), to, 0, ec), ec)) {
    drop(svc_.metrics.udp_dropped_other);
    return;
  }
  if (peers_.size() >= max_peers && peers_.count(to) == 0) {
    peers_.clear();  // bounded memory; replies from forgotten peers are dropped
  }
  peers_.insert(to);
  svc_.metrics.udp_datagrams_up.inc();
  ++result_.datagrams_up;
  result_.bytes_up += payload.size();
}

void udp_association::drain_targets(udp::socket& s) {
  if (stopping_) {
    return;
  }
  auto& m = svc_.metrics;
  auto& buf = svc_.udp_buffer;
  for (int i = 0; i < burst; ++i) {
    udp::endpoint from;
    core::error_code ec;
    // Leave room in front of the payload for the SOCKS header we add.
    const std::size_t n = s.receive_from(asio::buffer(buf.data() + header_room, buf.size() - header_room), from, 0, ec);
    if (ec == asio::error::would_block) {
      wait_readable(s, false);
      return;
    }
    if (ec) {
      continue;
    }
    if (!client_ep_) {
      drop(m.udp_dropped_other);  // nowhere to send it yet
      continue;
    }
    std::span<const std::uint8_t> out;
    if (opts_.relay) {
      if (from != *opts_.relay) {
        drop(m.udp_dropped_unsolicited);
        continue;
      }
      out = std::span(buf.data() + header_room, n);  // already wrapped by the upstream
    } else {
      const auto sender = udp::endpoint(core::unmap(from.address()), from.port());
      if (!snap_.source.udp.allow_unsolicited && peers_.count(from) == 0 && peers_.count(sender) == 0) {
        drop(m.udp_dropped_unsolicited);
        continue;
      }
      std::array<std::uint8_t, header_room> hdr{};
      const core::target_address src{sender.address(), sender.port()};
      const std::size_t hl = s5::encode_udp_header(src, hdr);
      std::memcpy(buf.data() + header_room - hl, hdr.data(), hl);
      out = std::span(buf.data() + header_room - hl, hl + n);
    }
    if (!take_token(tokens_down_, refilled_down_)) {
      drop(m.udp_dropped_rate);
      continue;
    }
    if (client_.send_to(asio::buffer(out.data(), out.size()), *client_ep_, 0, ec); ec) {
      drop(m.udp_dropped_other);
      continue;
    }
    last_activity_ = clock::now();
    m.udp_datagrams_down.inc();
    ++result_.datagrams_down;
    result_.bytes_down += n;
  }
  ++outstanding_;
  asio::post(client_.get_executor(), [this, &s] {
    --outstanding_;
    drain_targets(s);
    op_done();
  });
}

void udp_association::watch_control(asio::ip::tcp::socket& s) {
  // The association lives as long as its control connection: any bytes on
  // it are ignored, EOF or an error ends everything.
  ++outstanding_;
  auto& buf = &s == &control_ ? control_buf_ : upstream_buf_;
  s.async_read_some(asio::buffer(buf), [this, &s](core::error_code ec, std::size_t) {
    --outstanding_;
    if (ec) {
      stop(ec == asio::error::operation_aborted ? "cancelled" : "closed");
    } else if (!stopping_) {
      watch_control(s);
    }
    op_done();
  });
}

void udp_association::arm_idle() {
  const auto idle = snap_.source.udp.idle_timeout;
  if (idle.count() <= 0) {
    return;
  }
  ++outstanding_;
  idle_.expires_at(last_activity_ + idle);
  idle_.async_wait([this, idle](core::error_code ec) {
    --outstanding_;
    if (!ec && !stopping_) {
      if (clock::now() - last_activity_ >= idle) {
        stop("idle_timeout");
      } else {
        arm_idle();
      }
    }
    op_done();
  });
}

void udp_association::stop(std::string_view reason) {
  if (stopping_ || completed_) {
    return;
  }
  stopping_ = true;
  result_.reason = reason;
  core::error_code ignored;
  control_.cancel(ignored);
  if (upstream_ != nullptr) {
    upstream_->cancel(ignored);
  }
  client_.cancel(ignored);
  if (out4_) {
    out4_->close(ignored);
  }
  if (out6_) {
    out6_->close(ignored);
  }
  idle_.cancel();
  for (std::size_t i = 0; i < resolving_.size(); ++i) {
    if (resolving_[i]) {
      resolve_cancel_[i].emit(asio::cancellation_type::terminal);
    }
  }
}

void udp_association::op_done() {
  if (completed_ || outstanding_ > 0) {
    return;
  }
  if (!stopping_) {
    stop("error");  // nothing left to wait on: cannot happen, but never hang
    if (outstanding_ > 0) {
      return;
    }
  }
  completed_ = true;
  auto slot = handler_.get_cancellation_slot();
  if (slot.is_connected()) {
    slot.clear();
  }
  asio::post(client_.get_executor(), asio::append(std::move(handler_), result_));
}

}  // namespace cs::session
