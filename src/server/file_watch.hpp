#pragma once
// Watches files for changes with inotify, on the control thread's loop.
//
// Directories are watched rather than files, because editors and
// Kubernetes replace files instead of writing them in place: a ConfigMap
// volume swaps a "..data" symlink to a new directory, which changes what
// every path resolves to without touching the files themselves. Any
// create/close-after-write/move/delete in a watched directory whose name is one of the
// watched files, or "..data", triggers the callback after a short quiet
// period (bursts of events coalesce into one call).

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace cs::server {

class file_watch {
 public:
  file_watch(boost::asio::io_context& ctx, std::function<void()> on_change,
             std::chrono::milliseconds quiet = std::chrono::milliseconds(200));
  ~file_watch();
  file_watch(const file_watch&) = delete;
  file_watch& operator=(const file_watch&) = delete;

  /// Replaces the set of watched files (empty strings are ignored).
  void watch(const std::vector<std::string>& files);
  void stop();

 private:
  void read();
  void changed();

  boost::asio::io_context& ctx_;
  std::function<void()> on_change_;
  std::chrono::milliseconds quiet_;
  int fd_ = -1;
  boost::asio::posix::stream_descriptor stream_;
  boost::asio::steady_timer debounce_;
  std::map<int, std::string> dirs_;           // watch descriptor → directory
  std::map<std::string, std::set<std::string>> names_;  // directory → file names
  alignas(8) char buf_[8192];
};

}  // namespace cs::server
