#pragma once
// Forwarding rules → a route for each request (seeds/000 "forwarding",
// seeds/001 router decisions). First matching rule wins; unmatched traffic
// takes the default route: the pool when `proxy_pool.enabled`, else direct.
//
// A rule matches on "HOST_PATTERN:PORT_PATTERN" (domain pattern or CIDR,
// and port, "*" for any), client CIDR, user, destination CIDR and country.
// Destination CIDR and country need the target's address: for a domain
// target the router asks for it (need_address) and the session resolves it.
//
// Thread-safety: immutable after construction.

#include "auth/user_store.hpp"
#include "core/address.hpp"
#include "policy/acl.hpp"
#include "policy/geoip.hpp"
#include "routing/pool.hpp"
#include "routing/settings.hpp"
#include "upstream/connect.hpp"
#include "upstream/url.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cs::routing {

/// How a route rewrites the target sent upstream ("remote:").
struct rewrite {
  std::string host;  ///< may contain one '*': the part of the host the match's '*' covered
  std::optional<std::uint16_t> port;  ///< nullopt: keep the requested port
};

struct route {
  enum class kind : std::uint8_t { direct, chain, pool, block, redirect };
  kind k = kind::direct;
  std::string name;                       ///< for logs and metrics: "direct", "forwarding[2]", ...
  std::vector<upstream::proxy_url> hops;  ///< chain: first hop first
  std::optional<rewrite> remote;
  core::target_address redirect;          ///< kind::redirect
  upstream::connect_options egress;       ///< direct and redirect dials
  std::size_t rule = SIZE_MAX;            ///< index in forwarding, SIZE_MAX for the default route
};

struct route_request {
  core::ip::address client;
  const auth::user* user = nullptr;
  const core::target_address* target = nullptr;  ///< as requested
  std::string_view host;                          ///< normalised name for a domain target, else empty
  std::optional<core::ip::address> address;       ///< the IP target, or its resolution
};

struct route_decision {
  const route* r = nullptr;  ///< null: need_address
  bool need_address() const noexcept { return r == nullptr; }
};

class router {
 public:
  /// The default router: everything direct.
  router();
  /// Compiles the routing settings. Throws std::invalid_argument naming the
  /// rule and field on an error (unknown upstream name, bad pattern, ...).
  router(const std::vector<forwarding_rule>& rules,
         const std::vector<std::pair<std::string, std::string>>& upstreams, const pool_settings& pool_cfg,
         std::vector<member_spec> pool_members, upstream::connect_options default_egress,
         std::shared_ptr<const policy::geoip> geo, const std::vector<port_forward_settings>& forwards = {});
  router(const router&) = delete;
  router& operator=(const router&) = delete;
  router(router&&) noexcept = default;
  router& operator=(router&&) noexcept = default;

  route_decision select(const route_request& req) const;

  /// The target to ask the upstream for, after the route's rewrite; nullopt
  /// when the rewritten name is not a valid DOMAIN (empty or > 255 bytes).
  static std::optional<core::target_address> rewritten(const route& r, const core::target_address& requested,
                                        std::string_view captured);

  /// What the matching rule's '*' covered in the host (for rewrites).
  std::string_view capture(const route& r, std::string_view host) const;

  const pool* get_pool() const noexcept { return pool_.get(); }

  /// Port forwards (`port_forward`), in configuration order: the fixed
  /// target and the route to it ("via" hops, the pool, or direct).
  struct forward {
    core::target_address target;
    route r;
  };
  const std::vector<forward>& forwards() const noexcept { return forwards_; }
  const std::vector<route>& routes() const noexcept { return routes_; }
  const route& default_route() const noexcept { return default_; }

  /// Resolves "name", URL or "host:port" to hops; "direct" gives none.
  /// Throws std::invalid_argument.
  static std::vector<upstream::proxy_url> resolve_hops(
      const std::vector<std::string>& spec, const std::vector<std::pair<std::string, std::string>>& upstreams,
      const std::string& where);

 private:
  struct matcher {
    std::optional<policy::domain_pattern> host;
    std::optional<policy::cidr> host_cidr;
    std::vector<policy::port_range> ports;  // empty: any
    policy::ip_set src;
    bool has_src = false;
    std::vector<std::string> users;
    policy::ip_set dst;
    bool has_dst = false;
    std::vector<std::string> countries;
  };
  enum class tri : std::uint8_t { no, maybe, yes };
  tri matches(const matcher& m, const route_request& req) const;

  std::vector<matcher> matchers_;
  std::vector<route> routes_;
  route default_;
  std::vector<forward> forwards_;
  std::unique_ptr<pool> pool_;
  std::shared_ptr<const policy::geoip> geo_;
};

}  // namespace cs::routing
