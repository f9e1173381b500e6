#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "error.h"
#include "stop.h"

namespace mnist {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kMagic[4] = {'M', 'N', 'R', 'Z'};
constexpr std::uint16_t kVersion = 1;
constexpr std::uint16_t kHello = 1;
constexpr std::uint16_t kWelcome = 2;
constexpr std::uint16_t kRefused = 3;
constexpr std::size_t kHeaderBytes = 12;
constexpr std::size_t kMaxReason = 1024;
// The largest payload of any type: a hello's two integers and the longest configuration.
constexpr std::size_t kMaxPayload = 8 + std::max(kMaxRendezvousConfiguration, kMaxRendezvousBlob);

// How long a wait may go without looking at the stop request (src/stop.h promises about a second).
constexpr milliseconds kStopPollSlice{100};
// A connection rank 0 accepted must say hello within this (a real peer does at once); connections
// still silent are dropped, and at most kMaxPending wait at a time (a new one drops the oldest),
// so strays can neither exhaust file descriptors nor lock real peers out.
constexpr milliseconds kHelloWindow{5000};
constexpr std::size_t kMaxPending = 64;
// Connect attempts: back-off from the first to the last pause, doubling; each attempt lasts at
// most kMaxConnectAttempt (then the name is resolved again), at least kMinConnectAttempt.
constexpr milliseconds kFirstBackoff{50};
constexpr milliseconds kMaxBackoff{1000};
constexpr milliseconds kMinConnectAttempt{100};
constexpr milliseconds kMaxConnectAttempt{2000};

// The rendezvous's one deadline, and how errors name it.
struct Deadline {
  Clock::time_point at;
  milliseconds total;

  explicit Deadline(milliseconds timeout) : at(Clock::now() + timeout), total(timeout) {}
  bool expired() const { return Clock::now() >= at; }
  // What is left, at most `slice`, in whole milliseconds for poll().
  int poll_ms(milliseconds slice = kStopPollSlice) const {
    const auto left = std::chrono::duration_cast<milliseconds>(at - Clock::now());
    return static_cast<int>(std::clamp(left, milliseconds(0), slice).count());
  }
  std::string describe() const {
    char text[48];
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(total.count()) / 1000.0);
    return text;
  }
};

// ---- Encoding ---------------------------------------------------------------------------------

void put_u16(std::string& out, std::uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xff));
}

void put_u32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

std::uint32_t get_u32(const char* bytes) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::uint16_t get_u16(const char* bytes) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(bytes[0]) << 8) |
                                    static_cast<unsigned char>(bytes[1]));
}

std::string encode(std::uint16_t type, const std::string& payload) {
  std::string message(kMagic, sizeof kMagic);
  put_u16(message, kVersion);
  put_u16(message, type);
  put_u32(message, static_cast<std::uint32_t>(payload.size()));
  return message + payload;
}

std::string encode_hello(const RendezvousOptions& options) {
  std::string payload;
  put_u32(payload, static_cast<std::uint32_t>(options.rank));
  put_u32(payload, static_cast<std::uint32_t>(options.world_size));
  return encode(kHello, payload + options.configuration);
}

std::string encode_refused(ExitCode code, const std::string& reason) {
  std::string payload;
  put_u32(payload, static_cast<std::uint32_t>(code));
  return encode(kRefused, payload + reason.substr(0, kMaxReason));
}

struct Header {
  std::uint16_t version = 0;
  std::uint16_t type = 0;
  std::uint32_t length = 0;
};

Header decode_header(const char* bytes) {
  return {get_u16(bytes + 4), get_u16(bytes + 6), get_u32(bytes + 8)};
}

// Why a header cannot start a message of this protocol ("": it can). A right magic with another
// version is kBadArguments (another image), told apart by the caller through `other_version`.
std::string header_fault(const char* bytes, bool* other_version) {
  const Header header = decode_header(bytes);
  *other_version = false;
  if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0) return "not a rendezvous message";
  if (header.version != kVersion) {
    *other_version = true;
    return "rendezvous protocol version " + std::to_string(header.version) + ", this binary's is " +
           std::to_string(kVersion) + ": every pod must run the same image";
  }
  if (header.type < kHello || header.type > kRefused) {
    return "unknown message type " + std::to_string(header.type);
  }
  if (header.length > kMaxPayload) {
    return "a payload of " + std::to_string(header.length) + " bytes (at most " +
           std::to_string(kMaxPayload) + ")";
  }
  return "";
}

// Text from the other side, safe to print: non-printable bytes as \xNN, cut after `limit` bytes.
std::string printable(const std::string& text, std::size_t limit = 80) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  if (text.size() > limit) out += "...";
  return out;
}

// Where two configurations first differ, with a little of each around it.
std::string describe_difference(const std::string& ours, const std::string& theirs) {
  const auto first = std::mismatch(ours.begin(), ours.end(), theirs.begin(), theirs.end());
  const std::size_t at = static_cast<std::size_t>(first.first - ours.begin());
  const std::size_t from = at > 20 ? at - 20 : 0;
  return "they first differ at byte " + std::to_string(at) + ": rank 0 has \"" +
         printable(ours.substr(from), 60) + "\", the peer \"" + printable(theirs.substr(from), 60) +
         "\"";
}

// ---- Sockets ----------------------------------------------------------------------------------

std::string errno_text(int error) { return std::strerror(error); }

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Waits until `fd` is ready for `events` or the deadline passes, looking at the stop request
// every slice: true when ready (or in error: the next call says which), false at the deadline.
bool wait_ready(int fd, short events, const Deadline& deadline, const std::string& what) {
  for (;;) {
    throw_if_stop_requested(what);
    if (deadline.expired()) return false;
    pollfd entry{fd, events, 0};
    const int ready = ::poll(&entry, 1, deadline.poll_ms());
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) {
      throw Error(ExitCode::kDataUnavailable,
                  "rendezvous: poll failed " + what + ": " + errno_text(errno));
    }
  }
}

// Sends all of `bytes` before the deadline; Error(kDataUnavailable) naming `what` otherwise.
void write_all(int fd, const std::string& bytes, const Deadline& deadline,
               const std::string& what) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    if (!wait_ready(fd, POLLOUT, deadline, what)) {
      throw Error(ExitCode::kDataUnavailable,
                  "rendezvous: timed out (" + deadline.describe() + ") " + what);
    }
    const ssize_t n =
        ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      throw Error(ExitCode::kDataUnavailable, "rendezvous: " + what + ": " + errno_text(errno));
    }
  }
}

// Reads exactly `count` bytes before the deadline; Error(kDataUnavailable) naming `what` when the
// deadline passes or the other side closes or fails first.
std::string read_exact(int fd, std::size_t count, const Deadline& deadline,
                       const std::string& what) {
  std::string bytes(count, '\0');
  std::size_t got = 0;
  while (got < count) {
    if (!wait_ready(fd, POLLIN, deadline, what)) {
      throw Error(ExitCode::kDataUnavailable,
                  "rendezvous: timed out (" + deadline.describe() + ") " + what);
    }
    const ssize_t n = ::recv(fd, bytes.data() + got, count - got, MSG_DONTWAIT);
    if (n == 0) {
      throw Error(ExitCode::kDataUnavailable, "rendezvous: connection closed " + what + " (after " +
                                                  std::to_string(got) + " of " +
                                                  std::to_string(count) + " bytes)");
    }
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      throw Error(ExitCode::kDataUnavailable, "rendezvous: " + what + ": " + errno_text(errno));
    }
  }
  return bytes;
}

// Sends a short message without waiting: for telling peers why the rendezvous failed, where a
// peer that cannot take a few hundred bytes at once is not worth waiting for.
void send_now(int fd, const std::string& bytes) {
  [[maybe_unused]] const ssize_t n =
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// The addresses `host:port` resolves to, for a stream socket (passive: to listen on).
struct AddressList {
  addrinfo* head = nullptr;
  AddressList(const AddressList&) = delete;
  AddressList& operator=(const AddressList&) = delete;
  AddressList() = default;
  ~AddressList() {
    if (head) ::freeaddrinfo(head);
  }
};

// Resolves; returns getaddrinfo's error text, or "" when `list` holds at least one address.
std::string resolve(const std::string& host, std::uint16_t port, bool passive, AddressList& list) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  const std::string service = std::to_string(port);
  const int status =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list.head);
  return status == 0 ? "" : ::gai_strerror(status);
}

// One non-blocking connect attempt to one address, bounded by `limit`; the socket or "" + why.
Socket try_connect(const addrinfo& address, const Deadline& limit, const std::string& what,
                   std::string* why) {
  Socket socket(::socket(address.ai_family, address.ai_socktype | SOCK_CLOEXEC, 0));
  if (!socket.valid()) {
    *why = errno_text(errno);
    return {};
  }
  set_nonblocking(socket.fd());
  if (::connect(socket.fd(), address.ai_addr, address.ai_addrlen) == 0) return socket;
  if (errno != EINPROGRESS) {
    *why = errno_text(errno);
    return {};
  }
  if (!wait_ready(socket.fd(), POLLOUT, limit, what)) {
    *why = "connect timed out";
    return {};
  }
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &size);
  if (error != 0) {
    *why = errno_text(error);
    return {};
  }
  return socket;
}

// Connects to rank 0, retrying with back-off until the deadline (its pod may not be scheduled,
// its name not yet in DNS, its port not yet open). Stops on a stop request. The one wait not
// bounded here is getaddrinfo's: the resolver's own timeout (resolv.conf; seconds) can delay the
// deadline or a stop by that much, but never forever.
Socket connect_with_retries(const Endpoint& rank0, const Deadline& deadline) {
  const std::string what = "connecting to rank 0 at " + to_string(rank0);
  milliseconds backoff = kFirstBackoff;
  std::string why = "no attempt made";
  for (int attempt = 1;; ++attempt) {
    throw_if_stop_requested("while " + what);
    AddressList addresses;
    const std::string resolve_error = resolve(rank0.host, rank0.port, false, addresses);
    if (!resolve_error.empty()) why = "cannot resolve " + rank0.host + ": " + resolve_error;
    for (const addrinfo* a = addresses.head; a; a = a->ai_next) {
      // Each attempt bounded, so a pod replaced under a new address is resolved again; and given
      // a moment even at the deadline, so the last attempt's error is a real one, not the clock's.
      const Deadline attempt_limit(
          std::clamp(std::chrono::duration_cast<milliseconds>(deadline.at - Clock::now()),
                     kMinConnectAttempt, kMaxConnectAttempt));
      Socket socket = try_connect(*a, attempt_limit, "while " + what, &why);
      if (socket.valid()) return socket;
    }
    // The pause between attempts (cut short by the deadline), in slices that look at the stop
    // request; no attempt starts after the deadline, so `why` is a real attempt's.
    const Deadline pause(
        std::min(backoff, std::chrono::duration_cast<milliseconds>(deadline.at - Clock::now())));
    while (!pause.expired()) {
      throw_if_stop_requested("while " + what);
      ::poll(nullptr, 0, pause.poll_ms());
    }
    if (deadline.expired()) {
      throw Error(ExitCode::kDataUnavailable, "rendezvous: rank 0 at " + to_string(rank0) +
                                                  " unreachable within " + deadline.describe() +
                                                  " (" + std::to_string(attempt) +
                                                  " attempts; last: " + why + ")");
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

// "ADDRESS:PORT" of a connected socket's other end, for messages about it.
std::string peer_name(int fd) {
  sockaddr_storage address{};
  socklen_t size = sizeof address;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) return "?";
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&address), size, host, sizeof host, port,
                    sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return std::string(host) + ":" + port;
}

// ---- Rank 0 -----------------------------------------------------------------------------------

// A connection accepted but not yet a peer: its bytes so far, until a whole hello is in.
struct Pending {
  Socket socket;
  std::string from;
  std::string inbox;
  Clock::time_point hello_by;
};

// A peer that said hello and waits for the blob.
struct Peer {
  Socket socket;
  std::string from;
};

// Thrown inside the serve loop when the rendezvous ends for everyone: a peer refused, a timeout.
struct Refusal {
  ExitCode code;
  std::string reason;  // a sentence that starts with a lower-case letter
};

// Rank 0's side of the rendezvous: the listener, the connections, and what was dropped.
class Server {
 public:
  Server(Listener& listener, const RendezvousOptions& options)
      : listener_(listener),
        options_(options),
        deadline_(options.timeout),
        peers_(static_cast<std::size_t>(options.world_size)) {}

  // Waits until every rank has said hello; throws Refusal (or a stop) otherwise.
  void gather() {
    while (joined_ < options_.world_size - 1) {
      if (stop_requested()) {
        refuse_all({ExitCode::kDataUnavailable, "rank 0 was stopped"});
        throw_stopped("while rank 0 waited in the rendezvous for " + missing_ranks());
      }
      if (deadline_.expired()) throw Refusal{ExitCode::kDataUnavailable, timeout_reason()};
      poll_once();
    }
  }

  // Hands every peer the blob.
  void welcome(const std::string& blob) {
    const std::string message = encode(kWelcome, blob);
    for (std::size_t rank = 1; rank < peers_.size(); ++rank) {
      write_all(
          peers_[rank]->socket.fd(), message, deadline_,
          "while handing out the id to rank " + std::to_string(rank) + " at " + peers_[rank]->from);
    }
  }

  // Tells every connected peer why the rendezvous failed (best effort: nobody waits for it).
  void refuse_all(const Refusal& refusal) {
    const std::string message =
        encode_refused(refusal.code, "rendezvous aborted by rank 0: " + refusal.reason);
    for (auto& peer : peers_) {
      if (peer) send_now(peer->socket.fd(), message);
    }
  }

 private:
  // One poll over the listener, the pending connections and the peers; handles what is ready.
  void poll_once() {
    std::vector<pollfd> fds{{listener_.fd(), POLLIN, 0}};
    for (const auto& p : pending_) fds.push_back({p.socket.fd(), POLLIN, 0});
    std::vector<int> peer_ranks;
    for (std::size_t rank = 0; rank < peers_.size(); ++rank) {
      if (!peers_[rank]) continue;
      fds.push_back({peers_[rank]->socket.fd(), POLLIN, 0});
      peer_ranks.push_back(static_cast<int>(rank));
    }
    if (::poll(fds.data(), fds.size(), deadline_.poll_ms()) <= 0) return;  // EINTR: next round
    // Departures first, so a replacement pod's hello in this same round finds its rank free.
    for (std::size_t i = 0; i < peer_ranks.size(); ++i) {
      if (fds[1 + pending_.size() + i].revents) check_departure(peer_ranks[i]);
    }
    std::vector<Pending> still_pending;
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      Pending& pending = pending_[i];
      if (fds[1 + i].revents && !read_hello(pending)) continue;  // dropped
      if (!pending.socket.valid()) continue;                     // became a peer
      if (Clock::now() >= pending.hello_by) {
        note_dropped(pending.from + ": no hello within " + std::to_string(kHelloWindow.count()) +
                     " ms");
        continue;
      }
      still_pending.push_back(std::move(pending));
    }
    pending_ = std::move(still_pending);
    if (fds[0].revents) accept_all();
  }

  // Accepts every connection waiting in the backlog (the listener is non-blocking).
  void accept_all() {
    for (;;) {
      Socket socket(::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!socket.valid()) return;  // EAGAIN: none left (or a transient error: next round)
      std::string from = peer_name(socket.fd());
      if (pending_.size() >= kMaxPending) {  // the oldest goes: a flood cannot lock peers out
        note_dropped(pending_.front().from + ": one of too many connections without a hello");
        pending_.erase(pending_.begin());
      }
      pending_.push_back({std::move(socket), std::move(from), "", Clock::now() + kHelloWindow});
    }
  }

  // Reads what a pending connection sent. False when it is dropped; true while its hello is
  // incomplete, or once it became a peer (its socket moved out). Throws Refusal for a hello rank 0
  // must refuse.
  bool read_hello(Pending& pending) {
    const std::size_t want = wanted_bytes(pending.inbox);
    if (want == 0) return false;  // already judged malformed
    std::string chunk(want - pending.inbox.size(), '\0');
    const ssize_t n = ::recv(pending.socket.fd(), chunk.data(), chunk.size(), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      note_dropped(pending.from + ": closed after " + std::to_string(pending.inbox.size()) +
                   " bytes, before a whole hello");
      return false;
    }
    if (n < 0) return true;
    pending.inbox.append(chunk.data(), static_cast<std::size_t>(n));
    if (pending.inbox.size() >= kHeaderBytes) {
      bool other_version = false;
      const std::string fault = header_fault(pending.inbox.data(), &other_version);
      if (other_version) {
        refuse(pending, ExitCode::kBadArguments,
               "a peer (" + pending.from + "): it speaks " + fault);
      }
      if (!fault.empty() || decode_header(pending.inbox.data()).type != kHello) {
        note_dropped(pending.from + ": " + (fault.empty() ? "not a hello" : fault));
        return false;
      }
    }
    if (pending.inbox.size() < wanted_bytes(pending.inbox)) return true;
    return accept_hello(pending);
  }

  // How many bytes the message in `inbox` has in all (the header's, until the header is in).
  static std::size_t wanted_bytes(const std::string& inbox) {
    if (inbox.size() < kHeaderBytes) return kHeaderBytes;
    const std::uint32_t length = decode_header(inbox.data()).length;
    return length > kMaxPayload ? 0 : kHeaderBytes + length;
  }

  // Checks a whole hello: the connection becomes the peer of its rank (true), is dropped as
  // malformed (false), or is refused (throws Refusal).
  bool accept_hello(Pending& pending) {
    const std::string payload = pending.inbox.substr(kHeaderBytes);
    if (payload.size() < 8 || payload.size() > 8 + kMaxRendezvousConfiguration) {
      note_dropped(pending.from + ": a hello of " + std::to_string(payload.size()) + " bytes");
      return false;
    }
    const std::uint32_t rank = get_u32(payload.data());
    const std::uint32_t world = get_u32(payload.data() + 4);
    const std::string configuration = payload.substr(8);
    const std::string who = "rank " + std::to_string(rank) + " (" + pending.from + "): ";
    if (world != static_cast<std::uint32_t>(options_.world_size)) {
      refuse(pending, ExitCode::kBadArguments,
             who + "its world size is " + std::to_string(world) + ", rank 0's " +
                 std::to_string(options_.world_size));
    }
    if (rank == 0 || rank >= static_cast<std::uint32_t>(options_.world_size)) {
      refuse(pending, ExitCode::kBadArguments,
             who + "out of range, peers are ranks 1.." + std::to_string(options_.world_size - 1));
    }
    if (configuration != options_.configuration) {
      refuse(pending, ExitCode::kBadArguments,
             who + "its configuration differs from rank 0's; " +
                 describe_difference(options_.configuration, configuration));
    }
    if (peers_[rank]) {
      // An Indexed Job runs one pod per index, except for a moment when a lost pod's connection
      // outlives it and its replacement comes: a retry passes, so exit 3, not 2.
      refuse(pending, ExitCode::kDataUnavailable,
             who + "rank " + std::to_string(rank) + " is held by " + peers_[rank]->from +
                 " already (a lost pod's connection, or two pods with one JOB_COMPLETION_INDEX)");
    }
    peers_[rank] = Peer{std::move(pending.socket), pending.from};
    ++joined_;
    return true;
  }

  // Tells this connection why it is refused, then ends the rendezvous for everyone.
  [[noreturn]] void refuse(Pending& pending, ExitCode code, const std::string& reason) {
    const std::string sentence = "rank 0 refused " + reason;
    send_now(pending.socket.fd(), encode_refused(code, sentence));
    throw Refusal{code, sentence};
  }

  // A peer's socket became readable before the welcome: it left (its rank is free again) or sent
  // more than its hello (dropped likewise).
  void check_departure(int rank) {
    char byte = 0;
    const ssize_t n = ::recv(peers_[rank]->socket.fd(), &byte, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    note_dropped("rank " + std::to_string(rank) + " (" + peers_[rank]->from + "): " +
                 (n > 0 ? "sent more than a hello" : "left before the rendezvous completed"));
    peers_[rank].reset();
    --joined_;
  }

  void note_dropped(const std::string& what) {
    ++dropped_count_;
    if (dropped_.size() < 3) dropped_.push_back(what);
  }

  std::string missing_ranks() const {
    std::string ranks;
    int missing = 0;
    for (int rank = 1; rank < options_.world_size; ++rank) {
      if (peers_[rank]) continue;
      if (++missing <= 16) ranks += (ranks.empty() ? "" : ", ") + std::to_string(rank);
    }
    if (missing > 16) ranks += ", ...";
    return std::to_string(missing) + " of " + std::to_string(options_.world_size - 1) +
           " peers (rank" + (missing == 1 ? " " : "s ") + ranks + ")";
  }

  std::string timeout_reason() const {
    std::string reason = missing_ranks() + " did not join within " + deadline_.describe() +
                         " (rank 0 listening on port " + std::to_string(listener_.port()) + ")";
    if (dropped_count_ > 0) {
      reason += "; dropped " + std::to_string(dropped_count_) + " connection(s) that were not a " +
                "valid hello: ";
      for (std::size_t i = 0; i < dropped_.size(); ++i) reason += (i ? "; " : "") + dropped_[i];
    }
    return reason;
  }

  Listener& listener_;
  const RendezvousOptions& options_;
  Deadline deadline_;
  std::vector<Pending> pending_;
  std::vector<std::optional<Peer>> peers_;  // by rank; [0] stays empty
  int joined_ = 0;
  int dropped_count_ = 0;
  std::vector<std::string> dropped_;  // the first few, for the timeout's message
};

// ---- Peers ------------------------------------------------------------------------------------

// Reads rank 0's answer: the blob, or throws what rank 0 refused with.
std::string read_answer(const Socket& socket, const RendezvousOptions& options,
                        const Deadline& deadline) {
  const std::string where = "rank 0 at " + to_string(options.rank0);
  const std::string what = "while waiting for " + where + " to hand out the id";
  const std::string header = read_exact(socket.fd(), kHeaderBytes, deadline, what);
  bool other_version = false;
  const std::string fault = header_fault(header.data(), &other_version);
  if (!fault.empty()) {
    throw Error(other_version ? ExitCode::kBadArguments : ExitCode::kDataUnavailable,
                "rendezvous: " + where + " answered with " + fault +
                    (other_version ? "" : ": is something else listening there?"));
  }
  const Header decoded = decode_header(header.data());
  std::string payload = read_exact(socket.fd(), decoded.length, deadline, what);
  if (decoded.type == kWelcome && payload.size() <= kMaxRendezvousBlob) return payload;
  if (decoded.type != kRefused || payload.size() < 4) {
    throw Error(ExitCode::kDataUnavailable, "rendezvous: " + where +
                                                " answered with a malformed message (type " +
                                                std::to_string(decoded.type) + ", " +
                                                std::to_string(payload.size()) + " bytes)");
  }
  const std::uint32_t code = get_u32(payload.data());
  const ExitCode exit_code = code == static_cast<std::uint32_t>(ExitCode::kBadArguments)
                                 ? ExitCode::kBadArguments
                                 : ExitCode::kDataUnavailable;
  throw Error(exit_code, "rendezvous: rank " + std::to_string(options.rank) + ": " +
                             printable(payload.substr(4), kMaxReason));
}

}  // namespace

// ---- Public -------------------------------------------------------------------------------------

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

int Socket::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void Socket::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Endpoint parse_endpoint(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Error(ExitCode::kBadArguments,
                 "rendezvous address \"" + printable(text) + "\": " + why + " (want HOST:PORT)");
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw bad("no host and port");
  std::string host = text.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = text.substr(colon + 1);
  if (host.empty() || host.find_first_of("[]/ \t") != std::string::npos) throw bad("bad host");
  if (host.find(':') != std::string::npos && text.front() != '[') {
    throw bad("an IPv6 address goes in brackets");
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535) {
    throw bad("the port must be 1..65535");
  }
  return {host, static_cast<std::uint16_t>(std::stoi(port))};
}

std::string to_string(const Endpoint& endpoint) {
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  return (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

int rank_from_environment(int world_size) {
  const char* value = std::getenv("JOB_COMPLETION_INDEX");
  if (value == nullptr) {
    if (world_size == 1) return 0;
    throw Error(ExitCode::kBadArguments,
                "JOB_COMPLETION_INDEX is not set: a run over " + std::to_string(world_size) +
                    " processes needs an Indexed Job (completionMode: Indexed)");
  }
  const std::string text = value;
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string::npos || std::stoi(text) >= world_size) {
    throw Error(ExitCode::kBadArguments,
                "JOB_COMPLETION_INDEX \"" + printable(text) + "\" is not a rank in 0.." +
                    std::to_string(world_size - 1) + " (completions must equal the world size)");
  }
  return std::stoi(text);
}

void validate_rendezvous_options(const RendezvousOptions& options) {
  const auto bad = [](const std::string& why) {
    return Error(ExitCode::kBadArguments, "rendezvous: " + why);
  };
  if (options.world_size < 1 || options.world_size > kMaxWorldSize) {
    throw bad("world size " + std::to_string(options.world_size) + " is not in 1.." +
              std::to_string(kMaxWorldSize));
  }
  if (options.rank < 0 || options.rank >= options.world_size) {
    throw bad("rank " + std::to_string(options.rank) + " is not in 0.." +
              std::to_string(options.world_size - 1));
  }
  if (options.configuration.size() > kMaxRendezvousConfiguration) {
    throw bad("a configuration of " + std::to_string(options.configuration.size()) +
              " bytes (at most " + std::to_string(kMaxRendezvousConfiguration) + ")");
  }
  if (options.rank > 0 && (options.rank0.host.empty() || options.rank0.port == 0)) {
    throw bad("rank 0's address needs a host and a port");
  }
  if (options.timeout.count() <= 0) throw bad("the timeout must be positive");
}

Listener::Listener(const std::string& host, std::uint16_t port) {
  AddressList addresses;
  const std::string resolve_error = resolve(host, port, true, addresses);
  std::string why = resolve_error;
  // Passive addresses come IPv4 first; prefer IPv6's "::", which takes IPv4 connections too.
  std::vector<const addrinfo*> order;
  for (const addrinfo* a = addresses.head; a; a = a->ai_next) {
    if (a->ai_family == AF_INET6)
      order.insert(order.begin(), a);
    else
      order.push_back(a);
  }
  for (const addrinfo* a : order) {
    Socket socket(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket.valid()) continue;
    const int on = 1;
    const int off = 0;
    ::setsockopt(socket.fd(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (a->ai_family == AF_INET6)
      ::setsockopt(socket.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    if (::bind(socket.fd(), a->ai_addr, a->ai_addrlen) != 0 ||
        ::listen(socket.fd(), SOMAXCONN) != 0) {
      why = errno_text(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t size = sizeof bound;
    ::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&bound), &size);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    socket_ = std::move(socket);
    return;
  }
  throw Error(ExitCode::kBadArguments, "rendezvous: rank 0 cannot listen on " +
                                           to_string({host.empty() ? "*" : host, port}) + ": " +
                                           why);
}

void serve_rendezvous(Listener& listener, const RendezvousOptions& options,
                      const std::string& blob) {
  validate_rendezvous_options(options);
  if (options.rank != 0)
    throw Error(ExitCode::kInternal, "serve_rendezvous on a rank other than 0");
  if (blob.size() > kMaxRendezvousBlob) {
    throw Error(ExitCode::kInternal, "rendezvous: a blob of " + std::to_string(blob.size()) +
                                         " bytes (at most " + std::to_string(kMaxRendezvousBlob) +
                                         ")");
  }
  Server server(listener, options);
  try {
    server.gather();
  } catch (const Refusal& refusal) {
    server.refuse_all(refusal);
    throw Error(refusal.code, "rendezvous: " + refusal.reason);
  }
  server.welcome(blob);
}

std::string join_rendezvous(const RendezvousOptions& options) {
  validate_rendezvous_options(options);
  if (options.rank == 0) throw Error(ExitCode::kInternal, "join_rendezvous on rank 0");
  const Deadline deadline(options.timeout);
  const Socket socket = connect_with_retries(options.rank0, deadline);
  write_all(socket.fd(), encode_hello(options), deadline,
            "while saying hello to rank 0 at " + to_string(options.rank0));
  return read_answer(socket, options, deadline);
}

std::string rendezvous(const RendezvousOptions& options, const std::string& blob) {
  validate_rendezvous_options(options);
  if (options.world_size == 1) return blob;
  if (options.rank > 0) return join_rendezvous(options);
  Listener listener("", options.rank0.port);
  serve_rendezvous(listener, options, blob);
  return blob;
}

}  // namespace mnist
