#include "upstream/connect.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>

namespace cs::upstream {

namespace asio = boost::asio;

std::vector<tcp::endpoint> order_candidates(std::span<const core::ip::address> addresses,
                                            std::uint16_t port, family_preference pref) {
  std::vector<tcp::endpoint> v4;
  std::vector<tcp::endpoint> v6;
  for (const auto& raw : addresses) {
    const auto a = core::unmap(raw);
    (a.is_v4() ? v4 : v6).emplace_back(a, port);
  }
  if (pref == family_preference::only_v4) {
    v6.clear();
  } else if (pref == family_preference::only_v6) {
    v4.clear();
  }
  const bool v6_first = pref != family_preference::prefer_v4 && pref != family_preference::only_v4;
  auto& first = v6_first ? v6 : v4;
  auto& second = v6_first ? v4 : v6;
  std::vector<tcp::endpoint> out;
  out.reserve(v4.size() + v6.size());
  for (std::size_t i = 0; i < std::max(first.size(), second.size()); ++i) {
    if (i < first.size()) {
      out.push_back(first[i]);
    }
    if (i < second.size()) {
      out.push_back(second[i]);
    }
  }
  return out;
}

namespace {

// Ranks errors so the client hears the most telling one: a refusal means the
// host is there; unreachable/timeout beats local failures.
int error_rank(const core::error_code& ec) {
  if (ec == asio::error::connection_refused) {
    return 4;
  }
  if (ec == asio::error::host_unreachable || ec == asio::error::timed_out) {
    return 3;
  }
  if (ec == asio::error::network_unreachable) {
    return 2;
  }
  return 1;
}

class connect_any : public std::enable_shared_from_this<connect_any> {
 public:
  connect_any(asio::io_context::executor_type ex, std::vector<tcp::endpoint> candidates,
              const connect_options& options, asio::any_completion_handler<connect_signature> handler)
      : ex_(ex), candidates_(std::move(candidates)), options_(options), delay_(ex),
        handler_(std::move(handler)) {
    sockets_.reserve(candidates_.size());
  }

  void start() {
    if (candidates_.empty()) {
      complete(asio::error::host_unreachable, tcp::socket(ex_), {});
      return;
    }
    auto slot = handler_.get_cancellation_slot();
    if (slot.is_connected()) {
      slot.assign([self = shared_from_this()](asio::cancellation_type) {
        self->complete(asio::error::operation_aborted, tcp::socket(self->ex_), {}, true);
      });
    }
    start_next();
  }

 private:
  void start_next() {
    while (next_ < candidates_.size()) {
      const std::size_t i = next_++;
      const auto& ep = candidates_[i];
      auto& sock = sockets_.emplace_back(ex_);
      core::error_code ec;
      sock.open(ep.protocol(), ec);
      if (!ec && ep.address().is_v4() && options_.bind_v4) {
        sock.bind(tcp::endpoint(*options_.bind_v4, 0), ec);
      } else if (!ec && ep.address().is_v6() && options_.bind_v6) {
        sock.bind(tcp::endpoint(*options_.bind_v6, 0), ec);
      }
      if (ec) {
        note_error(ec);
        continue;  // try the next candidate at once
      }
      ++outstanding_;
      sock.async_connect(ep, [self = shared_from_this(), i](core::error_code e) { self->on_connect(i, e); });
      if (next_ < candidates_.size()) {
        delay_.expires_after(options_.attempt_delay);
        delay_.async_wait([self = shared_from_this()](core::error_code e) {
          if (!e && !self->done_) {
            self->start_next();
          }
        });
      }
      return;
    }
    if (outstanding_ == 0) {
      complete(last_error_ ? last_error_ : core::error_code(asio::error::host_unreachable),
               tcp::socket(ex_), {});
    }
  }

  void on_connect(std::size_t i, core::error_code ec) {
    --outstanding_;
    if (done_) {
      return;
    }
    if (!ec) {
      tcp::socket winner = std::move(sockets_[i]);
      core::error_code ignored;
      winner.set_option(tcp::no_delay(true), ignored);
      complete({}, std::move(winner), candidates_[i]);
      return;
    }
    note_error(ec);
    sockets_[i].close(ec);
    delay_.cancel();  // RFC 8305: a failure starts the next attempt immediately
    start_next();
  }

  void note_error(const core::error_code& ec) {
    if (!last_error_ || error_rank(ec) >= error_rank(last_error_)) {
      last_error_ = ec;
    }
  }

  // `from_slot`: called by the cancellation handler itself, which must not
  // clear (destroy) the slot it is running from.
  void complete(core::error_code ec, tcp::socket sock, tcp::endpoint ep, bool from_slot = false) {
    if (done_) {
      return;
    }
    done_ = true;
    delay_.cancel();
    for (auto& s : sockets_) {
      core::error_code ignored;
      s.close(ignored);  // pending attempts finish with operation_aborted
    }
    auto slot = handler_.get_cancellation_slot();
    if (!from_slot && slot.is_connected()) {
      slot.clear();
    }
    asio::post(ex_, asio::append(std::move(handler_), ec, std::move(sock), ep));
  }

  asio::io_context::executor_type ex_;
  std::vector<tcp::endpoint> candidates_;
  connect_options options_;
  std::vector<tcp::socket> sockets_;
  asio::steady_timer delay_;
  asio::any_completion_handler<connect_signature> handler_;
  std::size_t next_ = 0;
  std::size_t outstanding_ = 0;
  core::error_code last_error_;
  bool done_ = false;
};

}  // namespace

namespace detail {
void start_connect_any(asio::io_context::executor_type ex, std::vector<tcp::endpoint> candidates,
                       const connect_options& options,
                       asio::any_completion_handler<connect_signature> handler) {
  std::make_shared<connect_any>(ex, std::move(candidates), options, std::move(handler))->start();
}
}  // namespace detail

}  // namespace cs::upstream
