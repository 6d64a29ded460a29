#pragma once
// Routing settings as configured (the `forwarding`, `proxy_pool` and
// `port_forward` sections). routing/router.hpp compiles them.

#include "core/address.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace cs::routing {

using namespace std::chrono_literals;

/// One `forwarding:` entry (seeds/000). Compiled by routing/.
struct forwarding_rule {
  std::string match;                  ///< "HOST_PATTERN:PORT_PATTERN"
  std::vector<std::string> upstream;  ///< hops (names or URLs), "pool:NAME", "direct" or "block"
  std::string remote;                 ///< rewrite of the target sent upstream
  std::string redirect;               ///< HOST:PORT to connect to instead
  std::vector<std::string> src;       ///< client CIDRs
  std::vector<std::string> users;
  std::vector<std::string> dst;       ///< destination CIDRs (on the resolved address)
  std::vector<std::string> countries;
  std::string bind;                   ///< egress source address for direct dials
  std::string prefer;                 ///< egress family preference for direct dials
};

struct health_check_settings {
  std::chrono::milliseconds interval = 10s;
  std::chrono::milliseconds timeout = 3s;
  std::string kind = "connect";  ///< connect | socks5
  std::string target;            ///< HOST:PORT for socks5 probes
};

struct member_spec {
  std::string url;
  unsigned weight = 1;  ///< for strategy "weighted"
  friend bool operator==(const member_spec&, const member_spec&) = default;
};

struct pool_settings {
  bool enabled = false;
  std::string source;                ///< proxybroker2 JSON or one URL per line
  std::vector<member_spec> members;  ///< inline upstream URLs
  std::string strategy = "round_robin";
  std::string hash_key = "client_ip";
  unsigned max_tries = 3;
  health_check_settings health_check;
  unsigned failures_to_eject = 3;       ///< consecutive failures that open the circuit
  std::chrono::milliseconds eject_base = 10s;  ///< first ejection; doubles while probes keep failing
  std::chrono::milliseconds eject_max = 5min;
};

struct port_forward_settings {
  core::ip::tcp::endpoint listen;
  std::string target;            ///< HOST:PORT
  std::vector<std::string> via;  ///< hops, "pool:NAME", or empty for direct

  friend bool operator==(const port_forward_settings&, const port_forward_settings&) = default;
};

}  // namespace cs::routing
