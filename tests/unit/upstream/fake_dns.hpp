#pragma once
// A minimal authoritative DNS responder on 127.0.0.1:0 for resolver tests.
// Answers A/AAAA from an in-memory zone with a TTL, NXDOMAIN for unknown
// names, a chosen RCODE (e.g. SERVFAIL) per name, or nothing at all ("drop",
// to make a lookup hang). Runs on the test's io_context; counts queries.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <array>
#include <cctype>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cs::test {

class fake_dns {
 public:
  using udp = boost::asio::ip::udp;
  static constexpr std::uint16_t type_a = 1;
  static constexpr std::uint16_t type_aaaa = 28;
  static constexpr std::uint8_t rcode_servfail = 2;
  static constexpr std::uint8_t rcode_nxdomain = 3;

  struct record {
    std::vector<boost::asio::ip::address> addresses;  ///< both families; A/AAAA pick theirs
    std::uint32_t ttl = 60;
    std::uint8_t rcode = 0;  ///< non-zero: answer with this RCODE, no records
    bool drop = false;       ///< never answer
  };

  explicit fake_dns(boost::asio::io_context& io)
      : sock_(io, udp::endpoint(boost::asio::ip::address_v4::loopback(), 0)) {
    receive();
  }

  udp::endpoint endpoint() const { return sock_.local_endpoint(); }

  /// Zone: lower-case names without the trailing dot.
  std::map<std::string, record> zone;

  /// Queries seen, by (name, qtype).
  int queries(const std::string& name, std::uint16_t qtype) const {
    const auto it = seen_.find({name, qtype});
    return it == seen_.end() ? 0 : it->second;
  }
  int queries_for(const std::string& name) const { return queries(name, type_a) + queries(name, type_aaaa); }
  int total_queries() const { return total_; }

 private:
  void receive() {
    sock_.async_receive_from(boost::asio::buffer(buf_), from_, [this](boost::system::error_code ec, std::size_t n) {
      if (ec) {
        return;  // closed
      }
      handle(n);
      receive();
    });
  }

  void handle(std::size_t n) {
    if (n < 12) {
      return;
    }
    // Question: QNAME labels, QTYPE, QCLASS.
    std::size_t pos = 12;
    std::string name;
    while (pos < n && buf_[pos] != 0) {
      const std::size_t len = buf_[pos];
      if (len > 63 || pos + 1 + len > n) {
        return;
      }
      if (!name.empty()) {
        name += '.';
      }
      for (std::size_t i = 0; i < len; ++i) {
        name += static_cast<char>(std::tolower(buf_[pos + 1 + i]));
      }
      pos += 1 + len;
    }
    if (pos + 5 > n) {
      return;
    }
    ++pos;  // root label
    const std::uint16_t qtype = static_cast<std::uint16_t>(buf_[pos] << 8 | buf_[pos + 1]);
    pos += 4;
    const std::size_t question_end = pos;
    ++seen_[{name, qtype}];
    ++total_;

    std::uint8_t rcode = rcode_nxdomain;
    std::vector<std::vector<std::uint8_t>> rdatas;
    std::uint32_t ttl = 0;
    if (const auto it = zone.find(name); it != zone.end()) {
      if (it->second.drop) {
        return;
      }
      rcode = it->second.rcode;
      ttl = it->second.ttl;
      if (rcode == 0) {
        for (const auto& a : it->second.addresses) {
          if (qtype == type_a && a.is_v4()) {
            const auto raw = a.to_v4().to_bytes();
            rdatas.emplace_back(raw.begin(), raw.end());
          } else if (qtype == type_aaaa && a.is_v6()) {
            const auto raw = a.to_v6().to_bytes();
            rdatas.emplace_back(raw.begin(), raw.end());
          }
        }
      }
    }

    std::vector<std::uint8_t> out;
    auto put16 = [&](std::uint16_t v) {
      out.push_back(static_cast<std::uint8_t>(v >> 8));
      out.push_back(static_cast<std::uint8_t>(v & 0xFF));
    };
    out.push_back(buf_[0]);  // ID
    out.push_back(buf_[1]);
    // QR=1, opcode 0, AA=1, RD copied; RA=1, RCODE.
    out.push_back(static_cast<std::uint8_t>(0x84 | (buf_[2] & 0x01)));
    out.push_back(static_cast<std::uint8_t>(0x80 | rcode));
    put16(1);                                         // QDCOUNT
    put16(static_cast<std::uint16_t>(rdatas.size()));  // ANCOUNT
    put16(0);                                         // NSCOUNT
    put16(0);                                         // ARCOUNT
    out.insert(out.end(), buf_.begin() + 12, buf_.begin() + static_cast<long>(question_end));
    for (const auto& rd : rdatas) {
      put16(0xC00C);  // pointer to the question name
      put16(qtype);
      put16(1);  // IN
      put16(static_cast<std::uint16_t>(ttl >> 16));
      put16(static_cast<std::uint16_t>(ttl & 0xFFFF));
      put16(static_cast<std::uint16_t>(rd.size()));
      out.insert(out.end(), rd.begin(), rd.end());
    }
    boost::system::error_code ignored;
    sock_.send_to(boost::asio::buffer(out), from_, 0, ignored);
  }

  udp::socket sock_;
  std::array<std::uint8_t, 1500> buf_{};
  udp::endpoint from_;
  std::map<std::pair<std::string, std::uint16_t>, int> seen_;
  int total_ = 0;
};

}  // namespace cs::test
