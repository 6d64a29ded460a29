#include "upstream/chain.hpp"

#include "upstream/direct.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace cs::upstream {

namespace asio = boost::asio;

boost::asio::awaitable<chain_result> dial_chain(std::span<const proxy_url> hops, const core::target_address& target,
                                                resolver& dns, const connect_options& options) {
  chain_result out{{}, tcp::socket(dns.get_executor()), {}, false, {}};
  auto first = co_await dial_direct(hops.front().server, dns, options, {});
  if (first.ec) {
    out.ec = first.ec == asio::error::operation_aborted ? first.ec : core::error_code(core::socks_errc::upstream_failure);
    out.hop_failed = true;
    co_return out;
  }
  out.socket = std::move(first.socket);
  out.first_hop = first.remote;
  for (std::size_t i = 0; i < hops.size(); ++i) {
    const bool last = i + 1 == hops.size();
    core::target_address next = last ? target : hops[i + 1].server;
    if (hops[i].scheme == proxy_scheme::socks4 && next.is_domain()) {
      // Plain SOCKS4 carries only an IPv4 address: resolve it here.
      const auto& name = *next.domain();
      auto [rec, list] = co_await dns.async_resolve(std::string_view(name.data(), name.size()),
                                                    asio::as_tuple(asio::use_awaitable));
      const auto v4 = std::find_if(list.begin(), list.end(), [](const auto& a) { return core::unmap(a).is_v4(); });
      if (rec || v4 == list.end()) {
        out.ec = rec ? rec : core::error_code(core::socks_errc::host_not_found);
        out.hop_failed = !last;
        co_return out;
      }
      next.host = core::unmap(*v4);
    }
    auto r = co_await open_tunnel(out.socket, hops[i], next);
    if (r.ec) {
      // A middle hop failing to reach the next hop is a chain failure,
      // whatever code it gave: the client's target was never tried.
      out.ec = last ? r.ec : core::error_code(core::socks_errc::upstream_failure);
      out.hop_failed = !last || r.hop_failed;
      co_return out;
    }
    if (!r.early.empty()) {
      if (!last) {
        out.ec = core::socks_errc::upstream_failure;  // data before we asked for the next hop
        out.hop_failed = true;
        co_return out;
      }
      out.early = std::move(r.early);
    }
  }
  co_return out;
}

}  // namespace cs::upstream
