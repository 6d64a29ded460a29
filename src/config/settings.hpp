#pragma once
// The typed configuration tree and the compiled, immutable snapshot that
// sessions run on.
//
// Pipeline: command line (and later YAML + environment) → settings →
// compile() → snapshot. A snapshot is never modified after compile(); a
// reload builds a new one and swaps it in, and every session keeps the
// snapshot it started with (std::shared_ptr<const snapshot>).

#include "auth/user_store.hpp"
#include "core/address.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "policy/acl.hpp"
#include "policy/geoip.hpp"
#include "policy/limits.hpp"
#include "relay/tcp_relay.hpp"
#include "routing/router.hpp"
#include "routing/settings.hpp"
#include "upstream/connect.hpp"
#include "upstream/resolver.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cs::config {

using namespace std::chrono_literals;

struct timeout_settings {
  std::chrono::milliseconds handshake = 10s;  ///< accept → request parsed
  std::chrono::milliseconds connect = 10s;    ///< resolve + connect to the target
  std::chrono::milliseconds idle = 1h;        ///< tunnel with no byte moved either way
  std::chrono::milliseconds drain = 30s;      ///< SIGTERM: time open tunnels get to finish
};

/// Whether a listener expects a PROXY protocol header (HAProxy) before SOCKS.
enum class proxy_protocol_mode : std::uint8_t { off, v1, v2, any };

struct listener_settings {
  core::ip::tcp::endpoint endpoint;
  proxy_protocol_mode proxy_protocol = proxy_protocol_mode::off;
  friend bool operator==(const listener_settings&, const listener_settings&) = default;
};

struct admin_settings {
  bool enabled = true;
  core::ip::tcp::endpoint listen{core::ip::make_address_v4("127.0.0.1"), 9090};
};

struct run_as_settings {
  std::string user;   ///< empty: keep the starting user
  std::string group;  ///< empty: the user's primary group
};

struct udp_settings {
  std::string advertise_address;  ///< BND.ADDR for clients behind NAT; empty: the listener's address
  std::chrono::milliseconds idle_timeout = 2min;  ///< no datagram either way: the association ends
  unsigned max_per_ip = 0;        ///< concurrent associations per client IP; 0 = unlimited
  unsigned max_per_user = 0;
  double rate = 0;                ///< datagrams per second per association (each way); 0 = unlimited
  bool allow_unsolicited = false; ///< relay datagrams from hosts the client never sent to
};

struct bind_settings {
  std::string advertise_address;  ///< BND.ADDR of the first BIND reply; empty: the local address
  std::chrono::milliseconds timeout = 60s;  ///< wait for the incoming connection
};

struct settings {
  std::vector<listener_settings> listen{{default_listen_endpoint_value(), proxy_protocol_mode::off}};
  unsigned workers = 0;  ///< 0 → one per available core
  /// After its last event a worker keeps polling its loop this long before it
  /// sleeps in epoll_wait: shorter round trips for CPU time. 0 = off.
  std::chrono::microseconds busy_poll{0};
  int listen_backlog = 4096;
  bool allow_open = false;  ///< silence the "public without auth" warning
  run_as_settings run_as;
  std::vector<auth::credential> users;
  std::string users_file;  ///< "NAME:SECRET" lines, merged with `users`
  policy::acl_settings acl;
  std::string geoip_database;  ///< MaxMind DB for country rules; empty = none
  policy::limit_settings limits;
  timeout_settings timeouts;
  upstream::resolver_options dns;
  upstream::connect_options connect;
  relay::relay_options relay;
  obs::log_settings log;
  admin_settings admin;
  std::vector<std::pair<std::string, std::string>> upstreams;  ///< name → URL, in file order
  std::vector<routing::forwarding_rule> forwarding;
  routing::pool_settings proxy_pool;
  std::vector<routing::port_forward_settings> port_forward;
  udp_settings udp;
  bind_settings bind;

  static core::ip::tcp::endpoint default_listen_endpoint_value() {
    return {core::ip::make_address_v4("127.0.0.1"), 1080};
  }
};

/// What sessions read. Immutable; shared across threads by shared_ptr.
struct snapshot {
  std::uint64_t generation = 0;
  settings source;
  auth::user_store users;
  std::shared_ptr<const policy::geoip> geoip;
  policy::acl acl;
  routing::router router;
  std::vector<std::string> warnings;  ///< worth telling the operator at load time
  /// Metric counters resolved at compile time, so sessions never look up a
  /// registry: ACL blocks by rule name, totals by user.
  std::unordered_map<std::string_view, obs::shared_counter*> acl_block_counters;
  std::unordered_map<const auth::user*, obs::user_counters*> user_counters;

  obs::shared_counter* acl_counter(std::string_view rule) const;
};

/// Builds a snapshot: reads the users file and the GeoIP database, compiles
/// the ACL. Throws std::invalid_argument with a message naming the setting
/// and what is wrong (start-up/reload only; never on an event loop) — among
/// others when the users file cannot be read, is a directory, or names no
/// user while no other user is configured (it must never turn auth off).
std::shared_ptr<const snapshot> compile(const settings& s, std::uint64_t generation);

/// Reads all of `path` into `out`: "" on success, else why not (the OS's
/// words; a directory is an error, where std::ifstream reads it as empty).
std::string read_whole_file(const std::string& path, std::string& out);

/// Number of cores this process may run on (sched_getaffinity), at least 1.
unsigned available_cores() noexcept;

/// "10" / "1.5" (seconds), "500ms", "2s", "1m", "1h". Returns false on
/// anything else, negative values or overflow.
bool parse_duration(std::string_view text, std::chrono::milliseconds& out);
/// The same for fields kept in microseconds, which also take "50us" / "50µs".
bool parse_duration(std::string_view text, std::chrono::microseconds& out);

}  // namespace cs::config
