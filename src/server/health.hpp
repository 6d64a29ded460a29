#pragma once
// Active health checks of pool members, on the control thread: every
// interval each member is probed (a TCP connect, or a SOCKS5 handshake and
// CONNECT to a probe target), with a timeout. Results feed the member's
// circuit breaker, so a failing member is ejected and a recovered one is
// re-admitted without waiting for client traffic.

#include "config/settings.hpp"
#include "upstream/resolver.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <set>
#include <string>

namespace cs::server {

class health_checker {
 public:
  health_checker(boost::asio::io_context& ctx, const upstream::resolver_options& dns);
  ~health_checker();
  health_checker(const health_checker&) = delete;
  health_checker& operator=(const health_checker&) = delete;

  /// Checks the pool of `snap` from now on (call again after a reload).
  void track(std::shared_ptr<const config::snapshot> snap);
  /// No more rounds, and the probes under way are cut short (their results
  /// are not recorded).
  void stop();
  /// Runs `done` on the loop once no probe is under way (at once if none
  /// is). The io_context must not be stopped before: a probe's frame
  /// destroyed with the io_context while it waits in its parallel group is
  /// never freed (the group's state and its operations own each other).
  void when_idle(std::function<void()> done);

 private:
  void schedule();
  void round();
  boost::asio::awaitable<void> probe(std::shared_ptr<routing::member_state> m,
                                     std::shared_ptr<const config::snapshot> snap);

  boost::asio::io_context& ctx_;
  upstream::resolver dns_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<const config::snapshot> snap_;
  std::set<std::string> in_flight_;  // member ids being probed
  std::set<boost::asio::steady_timer*> deadlines_;  // of the probes under way
  std::function<void()> on_idle_;
  bool stopped_ = false;
};

}  // namespace cs::server
