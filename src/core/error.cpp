#include "core/error.hpp"

#include <boost/asio/error.hpp>

#include <string>

namespace cs::core {
namespace {

class socks_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "socks"; }

  std::string message(int ev) const override {
    switch (static_cast<socks_errc>(ev)) {
      case socks_errc::bad_version: return "bad protocol version";
      case socks_errc::no_acceptable_method: return "no acceptable authentication method";
      case socks_errc::auth_failed: return "authentication failed";
      case socks_errc::command_not_supported: return "command not supported";
      case socks_errc::address_type_not_supported: return "address type not supported";
      case socks_errc::bad_domain: return "malformed domain name";
      case socks_errc::field_too_long: return "field exceeds its length limit";
      case socks_errc::auth_required: return "authentication required but not possible with this protocol";
      case socks_errc::not_allowed: return "not allowed by ruleset";
      case socks_errc::limit_reached: return "limit reached";
      case socks_errc::host_not_found: return "host not found";
      case socks_errc::dns_failure: return "DNS resolution failed";
      case socks_errc::connect_timeout: return "connect timed out";
      case socks_errc::handshake_timeout: return "handshake timed out";
      case socks_errc::upstream_failure: return "upstream proxy failure";
      case socks_errc::general_failure: return "general failure";
      case socks_errc::ttl_expired: return "TTL expired";
    }
    return "unknown socks error";
  }
};

}  // namespace

const boost::system::error_category& socks_category() noexcept {
  static const socks_category_impl instance;
  return instance;
}

reply_code to_reply_code(const error_code& ec) noexcept {
  if (!ec) {
    return reply_code::succeeded;
  }
  if (ec.category() == socks_category()) {
    switch (static_cast<socks_errc>(ec.value())) {
      case socks_errc::command_not_supported: return reply_code::command_not_supported;
      case socks_errc::address_type_not_supported: return reply_code::address_type_not_supported;
      case socks_errc::not_allowed: return reply_code::not_allowed;
      case socks_errc::ttl_expired: return reply_code::ttl_expired;
      case socks_errc::host_not_found:
      case socks_errc::dns_failure:
      case socks_errc::connect_timeout: return reply_code::host_unreachable;
      case socks_errc::bad_version:
      case socks_errc::no_acceptable_method:
      case socks_errc::auth_failed:
      case socks_errc::bad_domain:
      case socks_errc::field_too_long:
      case socks_errc::auth_required:
      case socks_errc::limit_reached:
      case socks_errc::handshake_timeout:
      case socks_errc::upstream_failure:
      case socks_errc::general_failure: return reply_code::general_failure;
    }
    return reply_code::general_failure;
  }
  namespace err = boost::asio::error;
  if (ec == err::connection_refused) {
    return reply_code::connection_refused;
  }
  if (ec == err::network_unreachable || ec == err::network_down) {
    return reply_code::network_unreachable;
  }
  if (ec == err::host_unreachable || ec == err::timed_out || ec == err::host_not_found ||
      ec == err::host_not_found_try_again || ec == err::no_data) {
    return reply_code::host_unreachable;
  }
  if (ec == err::address_family_not_supported) {
    return reply_code::address_type_not_supported;
  }
  return reply_code::general_failure;
}

std::string_view reply_name(reply_code rc) noexcept {
  switch (rc) {
    case reply_code::succeeded: return "ok";
    case reply_code::general_failure: return "general_failure";
    case reply_code::not_allowed: return "not_allowed";
    case reply_code::network_unreachable: return "network_unreachable";
    case reply_code::host_unreachable: return "host_unreachable";
    case reply_code::connection_refused: return "refused";
    case reply_code::ttl_expired: return "ttl_expired";
    case reply_code::command_not_supported: return "command_not_supported";
    case reply_code::address_type_not_supported: return "address_type_not_supported";
  }
  return "unknown";
}

}  // namespace cs::core
