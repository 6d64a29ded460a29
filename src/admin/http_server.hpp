#pragma once
// The admin HTTP listener (Boost.Beast): health, readiness, metrics and the
// JSON API. Runs on the control thread's io_context, never on a worker.
// Bounded: 8 KiB of headers, 64 KiB of body, 10 s per request, 64
// connections (16 per client address), 100 requests per connection;
// anything unknown is 404.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cs::admin {

struct request {
  std::string method;  ///< "GET", "POST", ...
  std::string path;    ///< target without the query string
  std::string query;
  std::string body;
};

struct response {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct route {
  std::string method;
  std::string path;     ///< exact path, or a prefix when `prefix` is set
  bool prefix = false;
  std::function<response(const request&)> handle;
};

class http_server {
 public:
  /// Binds and listens on `ep` (throws boost::system::system_error).
  http_server(boost::asio::io_context& ctx, const boost::asio::ip::tcp::endpoint& ep, std::vector<route> routes);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void start();
  void stop();  ///< closes the listener; open connections end after their request

  /// Dispatches a request to the routes (404/405 otherwise). Public for tests.
  response dispatch(const request& r) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// JSON string escaping helper for API bodies.
std::string json_string(std::string_view s);

}  // namespace cs::admin
