#include "admin/http_server.hpp"

#include "obs/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <list>
#include <memory>

namespace cs::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_connections = 64;
// One client address holds at most a quarter of them: a client that keeps
// its connections busy (not reading its responses) cannot take every slot.
constexpr std::size_t max_connections_per_client = max_connections / 4;
constexpr int max_requests_per_connection = 100;
}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  obs::append_json_escaped(out, s);
  out += '"';
  return out;
}

struct http_server::impl {
  impl(asio::io_context& c, const tcp::endpoint& ep, std::vector<route> r)
      : ctx(c), acceptor(c), routes(std::move(r)) {
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(64);
  }

  // One admitted connection, for as long as serve() runs it.
  struct connection {
    beast::tcp_stream* stream = nullptr;
    asio::ip::address client;
    bool waiting = false;  ///< in a read for its next request (it may have sent part of it)
    std::chrono::steady_clock::time_point waiting_since{};
    bool evicted = false;
  };

  asio::io_context& ctx;
  tcp::acceptor acceptor;
  std::vector<route> routes;
  // Shared with each serve() frame, which may be destroyed after this (with
  // the io_context) and unlists itself then.
  std::shared_ptr<std::list<connection>> connections = std::make_shared<std::list<connection>>();
  bool stopped = false;

  // Admitted connections: all of them, or those of one client address.
  std::size_t admitted(const asio::ip::address* from = nullptr) const {
    return static_cast<std::size_t>(std::count_if(connections->begin(), connections->end(), [from](const connection& c) {
      return !c.evicted && (from == nullptr || c.client == *from);
    }));
  }

  // At a limit, the connection that has waited longest for its next request
  // makes room (of all, or of the client's own at its per-client limit): 64
  // idle keep-alive connections (a client that polls /health on each every
  // few seconds), or as many trickling a request in, must not lock out the
  // next scrape or probe. False when every candidate is writing a response.
  bool evict_longest_waiting(const asio::ip::address* from = nullptr) {
    connection* oldest = nullptr;
    for (auto& c : *connections) {
      if (!c.evicted && c.waiting && (from == nullptr || c.client == *from) &&
          (oldest == nullptr || c.waiting_since < oldest->waiting_since)) {
        oldest = &c;
      }
    }
    if (oldest == nullptr) {
      return false;
    }
    oldest->evicted = true;
    oldest->stream->cancel();  // its read ends with operation_aborted; serve() closes it
    return true;
  }

  response dispatch(const request& r) const {
    bool path_known = false;
    for (const auto& rt : routes) {
      const bool match = rt.prefix ? r.path.starts_with(rt.path) : r.path == rt.path;
      if (!match) {
        continue;
      }
      path_known = true;
      if (rt.method == r.method) {
        return rt.handle(r);
      }
    }
    if (path_known) {
      return {405, "text/plain; charset=utf-8", "method not allowed\n"};
    }
    return {404, "text/plain; charset=utf-8", "not found\n"};
  }

  asio::awaitable<void> accept_loop() {
    while (!stopped) {
      auto [ec, sock] = co_await acceptor.async_accept(nothrow);
      if (ec == asio::error::operation_aborted || stopped) {
        co_return;
      }
      if (ec) {
        continue;
      }
      beast::error_code pec;
      const auto client = sock.remote_endpoint(pec).address();
      if (pec || (admitted(&client) >= max_connections_per_client && !evict_longest_waiting(&client)) ||
          (admitted() >= max_connections && !evict_longest_waiting())) {
        continue;  // sock closes on destruction
      }
      asio::co_spawn(ctx, serve(beast::tcp_stream(std::move(sock)), client), asio::detached);
    }
  }

  asio::awaitable<void> serve(beast::tcp_stream stream, asio::ip::address client) {
    const auto list = connections;
    list->push_back({&stream, client, false, {}, false});
    const auto self = std::prev(list->end());
    struct unlist {
      std::shared_ptr<std::list<connection>> from;
      std::list<connection>::iterator it;
      ~unlist() { from->erase(it); }
    } const guard{list, self};
    beast::flat_buffer buffer;
    for (int n = 0; n < max_requests_per_connection && !stopped && !self->evicted; ++n) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(8 * 1024);
      parser.body_limit(64 * 1024);
      stream.expires_after(std::chrono::seconds(10));
      self->waiting = buffer.size() == 0;  // pipelined bytes already read: a request is under way
      self->waiting_since = std::chrono::steady_clock::now();
      auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, nothrow);
      self->waiting = false;
      if (ec) {
        if (ec != http::error::end_of_stream && ec != asio::error::operation_aborted &&
            ec != beast::error::timeout) {
          // A malformed or oversized request gets a 400 before the close.
          http::response<http::string_body> bad{http::status::bad_request, 11};
          bad.set(http::field::content_type, "text/plain; charset=utf-8");
          bad.set(http::field::connection, "close");
          bad.body() = "bad request: " + ec.message() + "\n";
          bad.prepare_payload();
          co_await http::async_write(stream, bad, nothrow);
        }
        break;
      }
      const auto& req = parser.get();
      request r;
      r.method = std::string(req.method_string());
      const std::string_view target = req.target();
      const auto q = target.find('?');
      r.path = std::string(target.substr(0, q));
      r.query = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
      r.body = req.body();
      const response out = dispatch(r);

      http::response<http::string_body> res{static_cast<http::status>(out.status), req.version()};
      res.set(http::field::server, "cleversocks");
      res.set(http::field::content_type, out.content_type);
      res.set(http::field::cache_control, "no-store");
      res.keep_alive(req.keep_alive());
      res.body() = out.body;
      res.prepare_payload();
      auto [wec, written] = co_await http::async_write(stream, res, nothrow);
      if (wec || !res.keep_alive()) {
        break;
      }
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
};

http_server::http_server(asio::io_context& ctx, const tcp::endpoint& ep, std::vector<route> routes)
    : impl_(std::make_unique<impl>(ctx, ep, std::move(routes))) {}

http_server::~http_server() = default;

tcp::endpoint http_server::local_endpoint() const { return impl_->acceptor.local_endpoint(); }

void http_server::start() {
  asio::co_spawn(impl_->ctx, impl_->accept_loop(), asio::detached);
}

void http_server::stop() {
  impl_->stopped = true;
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
}

response http_server::dispatch(const request& r) const { return impl_->dispatch(r); }

}  // namespace cs::admin
