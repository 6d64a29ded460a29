#include "upstream/direct.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace cs::upstream {

namespace asio = boost::asio;

core::error_code keep_allowed(address_list& addresses, const address_check& check) {
  core::error_code refused;
  std::erase_if(addresses, [&](const core::ip::address& a) {
    if (!check) {
      return false;
    }
    if (auto why = check(core::unmap(a))) {
      refused = why;
      return true;
    }
    return false;
  });
  if (addresses.empty()) {
    return refused ? refused : core::error_code(core::socks_errc::host_not_found);
  }
  return {};
}

boost::asio::awaitable<dial_result> dial_direct(const core::target_address& target, resolver& dns,
                                                const connect_options& options,
                                                const address_check& check) {
  // The resolver belongs to this worker's loop: dial on the same loop.
  const auto ex = dns.get_executor();
  dial_result result{{}, tcp::socket(ex), {}, false};

  address_list addresses;
  if (const auto* ip = target.ip_address()) {
    addresses.push_back(*ip);
  } else {
    const auto& name = *target.domain();
    core::error_code ec;
    const auto literal = core::ip::make_address(std::string_view(name.data(), name.size()), ec);
    if (!ec) {
      addresses.push_back(literal);  // "127.0.0.1" sent as a DOMAIN
    } else if (auto hit = dns.cached(std::string_view(name.data(), name.size()))) {
      result.resolved = true;
      if (hit->first) {
        result.ec = hit->first;
        co_return result;
      }
      addresses = std::move(hit->second);
    } else {
      result.resolved = true;
      auto [rec, list] =
          co_await dns.async_resolve(std::string_view(name.data(), name.size()), asio::as_tuple(asio::use_awaitable));
      if (rec) {
        result.ec = rec;
        co_return result;
      }
      addresses = std::move(list);
    }
  }

  // Check every address before dialling any of them.
  if (auto refused = keep_allowed(addresses, check)) {
    result.ec = refused;
    co_return result;
  }

  auto candidates = order_candidates(addresses, target.port, options.family);
  if (candidates.empty()) {
    result.ec = asio::error::address_family_not_supported;
    co_return result;
  }
  auto [cec, sock, ep] =
      co_await async_connect_any(ex, std::move(candidates), options, asio::as_tuple(asio::use_awaitable));
  result.ec = cec;
  result.socket = std::move(sock);
  result.remote = ep;
  co_return result;
}

}  // namespace cs::upstream
