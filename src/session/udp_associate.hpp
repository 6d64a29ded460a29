#pragma once
// UDP ASSOCIATE (RFC 1928 §7): one association = the client's TCP control
// connection + a UDP socket facing the client + UDP sockets facing targets
// (or one facing an upstream SOCKS5 relay).
//
// - Only datagrams from the TCP client's IP are accepted; the port is the
//   one the request named when it named the client itself, else the first
//   datagram's (clients that put the *target* in the request, or zeros,
//   keep working).
// - FRAG ≠ 0 is dropped (RFC 1928 allows it; no client in use fragments).
// - Every datagram's target passes the ACL (command udp); names are resolved
//   asynchronously (cached).
// - Replies are wrapped with the sender's address; replies from hosts the
//   client never sent to are dropped unless allowed.
// - The association ends when the control connection closes, after the idle
//   timeout, or on cancellation; every socket is closed then.
//
// Datagrams are read into a per-worker scratch buffer with non-blocking
// receives after readiness, so an association holds no datagram buffer.

#include "config/settings.hpp"
#include "policy/acl.hpp"
#include "session/session.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <unordered_set>

namespace cs::session {

using udp = boost::asio::ip::udp;

struct udp_result {
  std::uint64_t bytes_up = 0;  ///< payload bytes client → targets
  std::uint64_t bytes_down = 0;
  std::uint64_t datagrams_up = 0;
  std::uint64_t datagrams_down = 0;
  std::uint64_t dropped = 0;
  std::string_view reason = "closed";  ///< closed | idle_timeout | cancelled | error
};

class udp_association {
 public:
  struct options {
    core::ip::address client_ip;
    std::optional<std::uint16_t> client_port;  ///< fixed by the request, when it named the client
    std::optional<udp::endpoint> relay;        ///< upstream mode: where datagrams go, unchanged
  };

  /// `client_side` is open and bound (its address was sent to the client).
  /// `upstream` (upstream mode) is the control connection to the upstream.
  udp_association(boost::asio::ip::tcp::socket& control, boost::asio::ip::tcp::socket* upstream,
                  udp::socket& client_side, const config::snapshot& snap, worker_services& svc,
                  policy::request_view view, options opts);
  ~udp_association();
  udp_association(const udp_association&) = delete;
  udp_association& operator=(const udp_association&) = delete;

  template <typename Token>
  auto async_run(Token&& token) {
    return boost::asio::async_initiate<Token, void(udp_result)>(
        [this](auto handler) { start(boost::asio::any_completion_handler<void(udp_result)>(std::move(handler))); },
        token);
  }

 private:
  void start(boost::asio::any_completion_handler<void(udp_result)> handler);
  void wait_readable(udp::socket& s, bool from_client);
  void drain_client();
  void drain_targets(udp::socket& s);
  void on_client_datagram(const udp::endpoint& from, std::span<std::uint8_t> data);
  void send_to_target(const core::ip::address& a, std::uint16_t port, std::span<const std::uint8_t> payload,
                      std::string_view host);
  udp::socket* target_socket(bool v6);
  void watch_control(boost::asio::ip::tcp::socket& s);
  void arm_idle();
  bool take_token(double& tokens, std::chrono::steady_clock::time_point& refilled);
  void drop(obs::counter& why);
  void stop(std::string_view reason);
  void op_done();

  boost::asio::ip::tcp::socket& control_;
  boost::asio::ip::tcp::socket* upstream_;
  udp::socket& client_;
  std::optional<udp::socket> out4_;
  std::optional<udp::socket> out6_;
  const config::snapshot& snap_;
  worker_services& svc_;
  policy::request_view view_;
  options opts_;
  std::optional<udp::endpoint> client_ep_;
  std::unordered_set<udp::endpoint> peers_;  // targets the client sent to (bounded)
  boost::asio::steady_timer idle_;
  std::chrono::steady_clock::time_point last_activity_;
  double tokens_up_ = 0;
  double tokens_down_ = 0;
  std::chrono::steady_clock::time_point refilled_up_;
  std::chrono::steady_clock::time_point refilled_down_;
  std::array<boost::asio::cancellation_signal, 4> resolve_cancel_;
  std::array<bool, 4> resolving_{};
  std::array<std::uint8_t, 64> control_buf_{};
  std::array<std::uint8_t, 64> upstream_buf_{};
  boost::asio::any_completion_handler<void(udp_result)> handler_;
  udp_result result_;
  int outstanding_ = 0;
  bool stopping_ = false;
  bool completed_ = false;
};

}  // namespace cs::session
