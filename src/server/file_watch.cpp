#include "server/file_watch.hpp"

#include "obs/log.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace cs::server {

namespace asio = boost::asio;

file_watch::file_watch(asio::io_context& ctx, std::function<void()> on_change, std::chrono::milliseconds quiet)
    : ctx_(ctx), on_change_(std::move(on_change)), quiet_(quiet), stream_(ctx), debounce_(ctx) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    obs::log().warn("inotify unavailable ({}); configuration changes need SIGHUP", std::strerror(errno));
    return;
  }
  stream_.assign(fd_);
  read();
}

file_watch::~file_watch() { stop(); }

void file_watch::stop() {
  debounce_.cancel();
  if (stream_.is_open()) {
    boost::system::error_code ignored;
    stream_.close(ignored);  // closes fd_
  }
  fd_ = -1;
}

void file_watch::watch(const std::vector<std::string>& files) {
  if (fd_ < 0) {
    return;
  }
  for (const auto& [wd, dir] : dirs_) {
    ::inotify_rm_watch(fd_, wd);
  }
  dirs_.clear();
  names_.clear();
  for (const auto& f : files) {
    if (f.empty()) {
      continue;
    }
    const std::filesystem::path p = std::filesystem::absolute(f);
    const std::string dir = p.parent_path().string();
    auto& names = names_[dir];
    names.insert(p.filename().string());
    names.insert("..data");  // Kubernetes ConfigMap/Secret volumes
    if (names.size() > 2) {
      continue;  // directory already watched
    }
    // Not IN_ATTRIB or IN_MODIFY: an in-place rewrite (open with O_TRUNC)
    // reports both before a byte of the new version is written, and a slow
    // writer would have us load the empty or half-written file. A write is
    // complete at IN_CLOSE_WRITE; renames and symlink swaps (ConfigMaps)
    // arrive as IN_MOVED_TO / IN_CREATE.
    const int wd = ::inotify_add_watch(fd_, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
    if (wd < 0) {
      obs::log().warn("cannot watch {}: {}", dir, std::strerror(errno));
      continue;
    }
    dirs_[wd] = dir;
  }
}

void file_watch::read() {
  stream_.async_read_some(asio::buffer(buf_), [this](boost::system::error_code ec, std::size_t n) {
    if (ec) {
      return;  // closed
    }
    bool relevant = false;
    for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
      inotify_event ev;
      std::memcpy(&ev, buf_ + off, sizeof ev);
      const std::string name = ev.len > 0 ? std::string(buf_ + off + sizeof(inotify_event)) : std::string();
      if (auto it = dirs_.find(ev.wd); it != dirs_.end()) {
        const auto& names = names_[it->second];
        relevant = relevant || names.count(name) != 0;
      }
      off += sizeof(inotify_event) + ev.len;
    }
    if (relevant) {
      changed();
    }
    read();
  });
}

void file_watch::changed() {
  debounce_.expires_after(quiet_);
  debounce_.async_wait([this](boost::system::error_code ec) {
    if (!ec) {
      on_change_();
    }
  });
}

}  // namespace cs::server
