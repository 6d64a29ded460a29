#include "server/system.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace cs::server {

void notify(std::string_view state) {
  const std::string s(state);
  (void)sd_notify(0, s.c_str());
}

std::vector<int> activated_sockets() {
  std::vector<int> out;
  const int n = sd_listen_fds(1);  // 1: unset LISTEN_* so children don't inherit them
  for (int i = 0; i < n; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
      out.push_back(fd);
    }
  }
  return out;
}

boost::asio::ip::tcp::endpoint local_endpoint_of(int fd) {
  boost::asio::ip::tcp::endpoint ep;
  socklen_t len = static_cast<socklen_t>(ep.capacity());
  if (::getsockname(fd, ep.data(), &len) == 0) {
    ep.resize(len);
  }
  return ep;
}

void drop_privileges(const std::string& user, const std::string& group) {
  errno = 0;
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) {
    throw std::runtime_error("run_as.user: no such user '" + user + "'");
  }
  gid_t gid = pw->pw_gid;
  if (!group.empty()) {
    const struct group* gr = ::getgrnam(group.c_str());
    if (gr == nullptr) {
      throw std::runtime_error("run_as.group: no such group '" + group + "'");
    }
    gid = gr->gr_gid;
  }
  if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(pw->pw_uid) != 0) {
    throw std::runtime_error(std::string("cannot drop privileges: ") + std::strerror(errno));
  }
  if (pw->pw_uid != 0 && (::setuid(0) == 0 || ::seteuid(0) == 0)) {
    throw std::runtime_error("privileges could be regained after dropping them; refusing to run");
  }
}

}  // namespace cs::server
