#pragma once
// The few places the server talks to the operating system's service
// manager: systemd readiness notification, socket activation, and dropping
// root privileges after binding.

#include <boost/asio/ip/tcp.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace cs::server {

/// sd_notify(3); a no-op when not started by systemd (NOTIFY_SOCKET unset).
void notify(std::string_view state);

/// Listening TCP sockets passed by systemd socket activation (LISTEN_FDS),
/// or none. The descriptors are owned by the caller.
std::vector<int> activated_sockets();

/// The local address a socket descriptor is bound to.
boost::asio::ip::tcp::endpoint local_endpoint_of(int fd);

/// Switches to `user` (and `group`, or the user's primary group), dropping
/// supplementary groups. Throws std::runtime_error with the reason.
void drop_privileges(const std::string& user, const std::string& group);

}  // namespace cs::server
