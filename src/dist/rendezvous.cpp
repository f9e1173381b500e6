#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "error.h"
#include "stop.h"
#include "watchdog.h"

namespace mnist {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kMagic[4] = {'M', 'N', 'R', 'Z'};
constexpr std::uint16_t kVersion = 2;
constexpr std::uint16_t kChallenge = 1;
constexpr std::uint16_t kHello = 2;
constexpr std::uint16_t kWelcome = 3;
constexpr std::uint16_t kRefused = 4;
constexpr std::size_t kHeaderBytes = 12;
constexpr std::size_t kMaxReason = 1024;
constexpr std::size_t kNonceBytes = 32;
constexpr std::size_t kIvBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kSealBytes = kIvBytes + kTagBytes;  // what SEAL adds to its plaintext
// The largest payload of any type: a hello's nonce, seal, three integers, the longest device list
// and configuration (a welcome's blob and a refusal's reason are smaller).
constexpr std::size_t kMaxPayload =
    kNonceBytes + kSealBytes + 12 + kMaxRendezvousDevices + kMaxRendezvousConfiguration;
static_assert(kMaxPayload > kSealBytes + kMaxRendezvousBlob &&
              kMaxPayload > kSealBytes + 4 + kMaxReason);

// How long a wait may go without looking at the stop request (src/stop.h promises about a second).
constexpr milliseconds kStopPollSlice{100};
// A connection rank 0 accepted must send its hello within this (a real peer does at once, after
// the challenge); connections still without one are dropped.
constexpr milliseconds kHelloWindow{5000};
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
  milliseconds left() const {
    return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(at - Clock::now()));
  }
  // What is left, at most `slice`, in whole milliseconds for poll().
  int poll_ms(milliseconds slice = kStopPollSlice) const {
    return static_cast<int>(std::min(left(), slice).count());
  }
  std::string describe() const {
    char text[48];
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(total.count()) / 1000.0);
    return text;
  }
};

// A pause of at most `pause` (cut short by the deadline), in slices that look at the stop request.
void pause_for(milliseconds pause, const Deadline& deadline, const std::string& what) {
  const Deadline until(std::min(pause, deadline.left()));
  while (!until.expired()) {
    throw_if_stop_requested(what);
    ::poll(nullptr, 0, until.poll_ms());
  }
}

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

std::string encode_header(std::uint16_t type, std::size_t length) {
  std::string header(kMagic, sizeof kMagic);
  put_u16(header, kVersion);
  put_u16(header, type);
  put_u32(header, static_cast<std::uint32_t>(length));
  return header;
}

struct Header {
  std::uint16_t version = 0;
  std::uint16_t type = 0;
  std::uint32_t length = 0;
};

Header decode_header(const char* bytes) {
  return {get_u16(bytes + 4), get_u16(bytes + 6), get_u32(bytes + 8)};
}

// Why a header cannot start a message of this protocol ("": it can).
std::string header_fault(const char* bytes) {
  const Header header = decode_header(bytes);
  if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0) return "not a rendezvous message";
  if (header.version != kVersion) {
    return "rendezvous protocol version " + std::to_string(header.version) + ", this binary's is " +
           std::to_string(kVersion) + " (another image? every pod must run the same one)";
  }
  if (header.type < kChallenge || header.type > kRefused) {
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

std::string join_lines(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : "\n") + item;
  return text;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> items;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = std::min(text.find('\n', begin), text.size());
    items.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return items;
}

// ---- Cryptography (OpenSSL's libcrypto) -------------------------------------------------------

std::string random_bytes(std::size_t count) {
  std::string bytes(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(count)) != 1) {
    throw Error(ExitCode::kDataUnavailable,
                "rendezvous: the system's random source failed (RAND_bytes)");
  }
  return bytes;
}

// A connection's key for one direction: HMAC-SHA256(secret, label | nonce0 | nonce1).
std::string derive_key(const std::string& secret, const char* label, const std::string& nonce0,
                       const std::string& nonce1) {
  const std::string data = label + nonce0 + nonce1;
  unsigned char key[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), key,
           &size) == nullptr) {
    throw Error(ExitCode::kInternal, "rendezvous: HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<char*>(key), size);
}

struct CipherContext {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx{EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free};
};

const unsigned char* bytes_of(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// AES-256-GCM: iv | ciphertext | tag, `aad` authenticated alongside.
std::string seal(const std::string& key, const std::string& aad, const std::string& plaintext) {
  const std::string iv = random_bytes(kIvBytes);
  std::string out = iv + std::string(plaintext.size() + kTagBytes, '\0');
  auto* cipher = reinterpret_cast<unsigned char*>(out.data() + kIvBytes);
  CipherContext c;
  int n = 0;
  const bool ok =
      c.ctx && EVP_EncryptInit_ex(c.ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kIvBytes, nullptr) == 1 &&
      EVP_EncryptInit_ex(c.ctx.get(), nullptr, nullptr, bytes_of(key), bytes_of(iv)) == 1 &&
      EVP_EncryptUpdate(c.ctx.get(), nullptr, &n, bytes_of(aad), static_cast<int>(aad.size())) ==
          1 &&
      EVP_EncryptUpdate(c.ctx.get(), cipher, &n, bytes_of(plaintext),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(c.ctx.get(), cipher + n, &n) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          cipher + plaintext.size()) == 1;
  if (!ok) throw Error(ExitCode::kInternal, "rendezvous: AES-256-GCM encryption failed");
  return out;
}

// The plaintext of a seal() by the same key and aad; nullopt when it does not open (another key,
// altered bytes, too short). GCM compares the tag in constant time.
std::optional<std::string> open_sealed(const std::string& key, const std::string& aad,
                                       const std::string& sealed) {
  if (sealed.size() < kSealBytes) return std::nullopt;
  const std::size_t length = sealed.size() - kSealBytes;
  std::string plaintext(length, '\0');
  std::string tag = sealed.substr(kIvBytes + length);
  CipherContext c;
  int n = 0;
  const bool ok =
      c.ctx && EVP_DecryptInit_ex(c.ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kIvBytes, nullptr) == 1 &&
      EVP_DecryptInit_ex(c.ctx.get(), nullptr, nullptr, bytes_of(key), bytes_of(sealed)) == 1 &&
      EVP_DecryptUpdate(c.ctx.get(), nullptr, &n, bytes_of(aad), static_cast<int>(aad.size())) ==
          1 &&
      EVP_DecryptUpdate(c.ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()), &n,
                        bytes_of(sealed) + kIvBytes, static_cast<int>(length)) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(c.ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()) + n,
                          &n) == 1;
  if (!ok) return std::nullopt;
  return plaintext;
}

// One connection's two keys (the header's "hello key" and "answer key").
struct SessionKeys {
  std::string hello, answer;
  SessionKeys(const std::string& secret, const std::string& nonce0, const std::string& nonce1)
      : hello(derive_key(secret, "MNRZ2 hello key", nonce0, nonce1)),
        answer(derive_key(secret, "MNRZ2 answer key", nonce0, nonce1)) {}
};

// A whole message whose payload is SEAL(key; plaintext), the header authenticated with it.
std::string sealed_message(std::uint16_t type, const std::string& key, const std::string& plaintext,
                           const std::string& clear_prefix = "") {
  const std::string header =
      encode_header(type, clear_prefix.size() + plaintext.size() + kSealBytes);
  return header + clear_prefix + seal(key, header, plaintext);
}

std::string refused_message(const std::string& key, ExitCode code, const std::string& reason) {
  std::string plaintext;
  put_u32(plaintext, static_cast<std::uint32_t>(code));
  return sealed_message(kRefused, key, plaintext + reason.substr(0, kMaxReason));
}

// What a hello says, once opened.
struct HelloContent {
  std::uint32_t rank = 0, world = 0;
  std::vector<std::string> devices;
  std::string configuration;
};

std::string hello_plaintext(const RendezvousOptions& options) {
  const std::string devices = join_lines(options.devices);
  std::string plaintext;
  put_u32(plaintext, static_cast<std::uint32_t>(options.rank));
  put_u32(plaintext, static_cast<std::uint32_t>(options.world_size));
  put_u32(plaintext, static_cast<std::uint32_t>(devices.size()));
  return plaintext + devices + options.configuration;
}

std::optional<HelloContent> parse_hello(const std::string& plaintext) {
  if (plaintext.size() < 12) return std::nullopt;
  HelloContent hello;
  hello.rank = get_u32(plaintext.data());
  hello.world = get_u32(plaintext.data() + 4);
  const std::uint32_t devices = get_u32(plaintext.data() + 8);
  if (devices > kMaxRendezvousDevices || devices > plaintext.size() - 12) return std::nullopt;
  hello.devices = split_lines(plaintext.substr(12, devices));
  hello.configuration = plaintext.substr(12 + devices);
  if (hello.configuration.size() > kMaxRendezvousConfiguration) return std::nullopt;
  return hello;
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

// The addresses `host:port` resolves to, for a stream socket (passive: to listen on; every
// interface when `host` is empty).
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
  // Listening on a named host takes every address it resolves to, configured here or not (the
  // bind says which are this machine's); connecting takes those this machine can reach.
  hints.ai_flags = passive ? (host.empty() ? AI_PASSIVE : 0) : AI_ADDRCONFIG;
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
// `why` is the last failure so far (a connection rank 0 closed at once), for the deadline's
// message.
Socket connect_with_retries(const Endpoint& rank0, const Deadline& deadline, std::string why) {
  const std::string what = "connecting to rank 0 at " + to_string(rank0);
  milliseconds backoff = kFirstBackoff;
  if (why.empty()) why = "no attempt made";
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
    pause_for(backoff, deadline, "while " + what);
    if (deadline.expired()) {
      throw Error(ExitCode::kDataUnavailable, "rendezvous: rank 0 at " + to_string(rank0) +
                                                  " unreachable within " + deadline.describe() +
                                                  " (" + std::to_string(attempt) +
                                                  " attempts; last: " + why + ")");
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

// "ADDRESS:PORT" of a connected socket's other end, for messages about it; `source` gets the
// address alone (what the bounds on pending connections count by).
std::string peer_name(int fd, std::string* source = nullptr) {
  sockaddr_storage address{};
  socklen_t size = sizeof address;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) return "?";
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&address), size, host, sizeof host, port,
                    sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  if (source) *source = host;
  return (address.ss_family == AF_INET6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" +
         port;
}

// ---- Rank 0 -----------------------------------------------------------------------------------

// A connection accepted but not yet a peer: its challenge, and its bytes until a whole hello is in.
struct Pending {
  Socket socket;
  std::string from;    // ADDRESS:PORT
  std::string source;  // ADDRESS
  std::string nonce0;
  std::string inbox;
  Clock::time_point hello_by;
};

// A peer that proved the secret, said hello and waits for the blob.
struct Peer {
  Socket socket;
  std::string from;
  std::string answer_key;
  std::vector<std::string> devices;
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

  // Hands every peer the blob, sealed with its own answer key.
  void welcome(const std::string& blob) {
    for (std::size_t rank = 1; rank < peers_.size(); ++rank) {
      write_all(
          peers_[rank]->socket.fd(), sealed_message(kWelcome, peers_[rank]->answer_key, blob),
          deadline_,
          "while handing out the id to rank " + std::to_string(rank) + " at " + peers_[rank]->from);
    }
  }

  // Tells every authenticated peer why the rendezvous failed (best effort: nobody waits for it).
  void refuse_all(const Refusal& refusal) {
    for (auto& peer : peers_) {
      if (!peer) continue;
      send_now(peer->socket.fd(),
               refused_message(peer->answer_key, refusal.code,
                               "rendezvous aborted by rank 0: " + refusal.reason));
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

  // Accepts every connection waiting in the backlog (the listener is non-blocking), within the
  // bounds on pending connections, and challenges each.
  void accept_all() {
    for (;;) {
      Socket socket(::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!socket.valid()) return;  // EAGAIN: none left (or a transient error: next round)
      std::string source;
      std::string from = peer_name(socket.fd(), &source);
      if (pending_from(source) >= kMaxPendingPerSource) {
        note_dropped(from + ": one of more than " + std::to_string(kMaxPendingPerSource) +
                     " connections at once from " + source);
        continue;
      }
      if (pending_.size() >= kMaxPending && !displace_one()) {
        note_dropped(from + ": one of more than " + std::to_string(kMaxPending) +
                     " connections at once");
        continue;
      }
      std::string nonce0 = random_bytes(kNonceBytes);
      send_now(socket.fd(), encode_header(kChallenge, kNonceBytes) + nonce0);
      pending_.push_back({std::move(socket), std::move(from), std::move(source), std::move(nonce0),
                          "", Clock::now() + kHelloWindow});
    }
  }

  std::size_t pending_from(const std::string& source) const {
    return static_cast<std::size_t>(std::count_if(
        pending_.begin(), pending_.end(), [&](const Pending& p) { return p.source == source; }));
  }

  // At the global bound: drops the oldest silent connection of the source holding the most
  // pending connections, if it holds more than one. False when there is none such (a connection
  // that sent bytes, or a source's only one, may be a real peer's handshake).
  bool displace_one() {
    std::map<std::string, std::size_t> counts;
    for (const Pending& p : pending_) ++counts[p.source];
    const auto most =
        std::max_element(counts.begin(), counts.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    if (most == counts.end() || most->second < 2) return false;
    const auto silent = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
      return p.source == most->first && p.inbox.empty();
    });
    if (silent == pending_.end()) return false;
    note_dropped(silent->from + ": silent, displaced to make room for a newer connection");
    pending_.erase(silent);
    return true;
  }

  // Reads what a pending connection sent. False when it is dropped; true while its hello is
  // incomplete, or once it became a peer (its socket moved out). Throws Refusal for an
  // authenticated hello rank 0 must refuse.
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
      const std::string fault = header_fault(pending.inbox.data());
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

  // Opens and checks a whole hello: the connection becomes the peer of its rank (true), is
  // dropped as unauthenticated or malformed (false), or is refused (throws Refusal).
  bool accept_hello(Pending& pending) {
    const std::string header = pending.inbox.substr(0, kHeaderBytes);
    const std::string payload = pending.inbox.substr(kHeaderBytes);
    if (payload.size() < kNonceBytes + kSealBytes) {
      note_dropped(pending.from + ": a hello of " + std::to_string(payload.size()) + " bytes");
      return false;
    }
    const SessionKeys keys(options_.secret, pending.nonce0, payload.substr(0, kNonceBytes));
    const std::optional<std::string> plaintext =
        open_sealed(keys.hello, header, payload.substr(kNonceBytes));
    if (!plaintext) {
      note_dropped(pending.from +
                   ": a hello that fails authentication (not this Job's secret, "
                   "--rendezvous_secret_file)");
      return false;
    }
    const std::optional<HelloContent> hello = parse_hello(*plaintext);
    if (!hello) {
      note_dropped(pending.from + ": an authenticated hello rank 0 cannot read");
      return false;
    }
    // Authenticated from here on: what is wrong now is the Job's own configuration.
    Peer peer{std::move(pending.socket), pending.from, keys.answer, hello->devices};
    const std::uint32_t rank = hello->rank;
    const std::string who = "rank " + std::to_string(rank) + " (" + peer.from + "): ";
    if (hello->world != static_cast<std::uint32_t>(options_.world_size)) {
      refuse(peer, ExitCode::kBadArguments,
             who + "its world size is " + std::to_string(hello->world) + ", rank 0's " +
                 std::to_string(options_.world_size));
    }
    if (rank == 0 || rank >= static_cast<std::uint32_t>(options_.world_size)) {
      refuse(peer, ExitCode::kBadArguments,
             who + "out of range, peers are ranks 1.." + std::to_string(options_.world_size - 1));
    }
    if (hello->configuration != options_.configuration) {
      refuse(peer, ExitCode::kBadArguments,
             who + "its configuration differs from rank 0's; " +
                 describe_difference(options_.configuration, hello->configuration));
    }
    check_devices(peer, static_cast<int>(rank), who);
    if (peers_[rank]) {
      // A replaced pod: the Job creates a replacement once the old pod is gone, whose connection
      // may outlive it. The newer connection takes the rank.
      send_now(peers_[rank]->socket.fd(),
               refused_message(peers_[rank]->answer_key, ExitCode::kDataUnavailable,
                               "rank 0 gave rank " + std::to_string(rank) +
                                   " to a newer connection from " + peer.from +
                                   " (a replaced pod, or two pods with one "
                                   "JOB_COMPLETION_INDEX)"));
      note_dropped("rank " + std::to_string(rank) + " (" + peers_[rank]->from +
                   "): taken over by a newer connection from " + peer.from);
      peers_[rank].reset();
      --joined_;
    }
    peers_[rank] = std::move(peer);
    ++joined_;
    return true;
  }

  // A device of the peer that rank 0 or another peer uses too: refused, naming both ranks.
  void check_devices(Peer& peer, int rank, const std::string& who) {
    for (const std::string& device : peer.devices) {
      int other = -1;
      if (std::find(options_.devices.begin(), options_.devices.end(), device) !=
          options_.devices.end())
        other = 0;
      for (std::size_t r = 1; other < 0 && r < peers_.size(); ++r) {
        if (static_cast<int>(r) == rank || !peers_[r]) continue;
        const auto& theirs = peers_[r]->devices;
        if (std::find(theirs.begin(), theirs.end(), device) != theirs.end())
          other = static_cast<int>(r);
      }
      if (other >= 0) {
        refuse(peer, ExitCode::kBadArguments,
               who + "rank " + std::to_string(rank) + " and rank " + std::to_string(other) +
                   " both use the GPU " + printable(device, 200) +
                   ": each rank needs a GPU of its own (check nvidia.com/gpu, --gpus and "
                   "CUDA_VISIBLE_DEVICES)");
      }
    }
  }

  // Tells this authenticated peer why it is refused, then ends the rendezvous for everyone.
  [[noreturn]] void refuse(const Peer& peer, ExitCode code, const std::string& reason) {
    const std::string sentence = "rank 0 refused " + reason;
    send_now(peer.socket.fd(), refused_message(peer.answer_key, code, sentence));
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

// Reads one whole message from rank 0: its header and payload. nullopt when rank 0 closed the
// connection before its first byte; Error(kDataUnavailable) for anything garbled. Never exit 2:
// nothing read here is authenticated yet.
std::optional<std::pair<std::string, std::string>> read_message(int fd, const Deadline& deadline,
                                                                const std::string& where,
                                                                const std::string& what) {
  if (!wait_ready(fd, POLLIN, deadline, what)) {
    throw Error(ExitCode::kDataUnavailable,
                "rendezvous: timed out (" + deadline.describe() + ") " + what);
  }
  char byte = 0;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) return std::nullopt;
  const std::string header = read_exact(fd, kHeaderBytes, deadline, what);
  const std::string fault = header_fault(header.data());
  if (!fault.empty()) {
    throw Error(ExitCode::kDataUnavailable,
                "rendezvous: " + where + " answered with " + fault +
                    (std::memcmp(header.data(), kMagic, sizeof kMagic) != 0
                         ? ": is something else listening there?"
                         : ""));
  }
  const std::string payload = read_exact(fd, decode_header(header.data()).length, deadline, what);
  return std::make_pair(header, payload);
}

// Rank 0's challenge on a fresh connection: its nonce, or nullopt when rank 0 closed the
// connection first (busy: the peer tries again).
std::optional<std::string> read_challenge(const Socket& socket, const Deadline& deadline,
                                          const std::string& where) {
  const auto message =
      read_message(socket.fd(), deadline, where, "while waiting for " + where + "'s challenge");
  if (!message) return std::nullopt;
  const Header header = decode_header(message->first.data());
  if (header.type != kChallenge || message->second.size() != kNonceBytes) {
    throw Error(ExitCode::kDataUnavailable, "rendezvous: " + where +
                                                " opened with a malformed challenge (type " +
                                                std::to_string(header.type) + ", " +
                                                std::to_string(message->second.size()) + " bytes)");
  }
  return message->second;
}

// Reads rank 0's answer: the blob, or throws what rank 0 refused with. Only an answer that opens
// with this connection's answer key counts: anything else is not this Job's rank 0.
std::string read_answer(const Socket& socket, const RendezvousOptions& options,
                        const SessionKeys& keys, const Deadline& deadline) {
  const std::string where = "rank 0 at " + to_string(options.rank0);
  const std::string what = "while waiting for " + where + " to hand out the id";
  const auto message = read_message(socket.fd(), deadline, where, what);
  if (!message) {
    throw Error(ExitCode::kDataUnavailable,
                "rendezvous: " + where +
                    " closed the connection after this rank's hello without an answer: it could "
                    "not authenticate it (is --rendezvous_secret_file the same Secret on every "
                    "pod?), or it stopped");
  }
  const auto& [header, payload] = *message;
  const Header decoded = decode_header(header.data());
  const std::optional<std::string> plaintext = decoded.type == kWelcome || decoded.type == kRefused
                                                   ? open_sealed(keys.answer, header, payload)
                                                   : std::nullopt;
  if (!plaintext) {
    throw Error(ExitCode::kDataUnavailable,
                "rendezvous: " + where + " answered with a message (type " +
                    std::to_string(decoded.type) + ", " + std::to_string(payload.size()) +
                    " bytes) that fails authentication: not this Job's rank 0, or another "
                    "--rendezvous_secret_file");
  }
  if (decoded.type == kWelcome) {
    if (options.blob_bytes != 0) check_rendezvous_blob(*plaintext, options.blob_bytes);
    return *plaintext;
  }
  if (plaintext->size() < 4) {
    throw Error(ExitCode::kDataUnavailable, "rendezvous: " + where + " sent an empty refusal");
  }
  const std::uint32_t code = get_u32(plaintext->data());
  const ExitCode exit_code = code == static_cast<std::uint32_t>(ExitCode::kBadArguments)
                                 ? ExitCode::kBadArguments
                                 : ExitCode::kDataUnavailable;
  throw Error(exit_code, "rendezvous: rank " + std::to_string(options.rank) + ": " +
                             printable(plaintext->substr(4), kMaxReason));
}

}  // namespace

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
  const std::size_t devices = join_lines(options.devices).size();
  if (devices > kMaxRendezvousDevices) {
    throw bad("a device list of " + std::to_string(devices) + " bytes (at most " +
              std::to_string(kMaxRendezvousDevices) + ")");
  }
  if (options.world_size > 1 && options.secret.size() < kMinRendezvousSecret) {
    throw bad("a world of several processes needs a shared secret of at least " +
              std::to_string(kMinRendezvousSecret) + " bytes (--rendezvous_secret_file)");
  }
  if (options.rank > 0 && (options.rank0.host.empty() || options.rank0.port == 0)) {
    throw bad("rank 0's address needs a host and a port");
  }
  if (options.timeout.count() <= 0) throw bad("the timeout must be positive");
}

std::string read_rendezvous_secret(const std::string& path) {
  const auto bad = [&](const std::string& why) {
    return Error(ExitCode::kBadArguments,
                 "--rendezvous_secret_file " + printable(path) + ": " + why +
                     " (every pod of the Job mounts the same Secret; docs/KUBERNETES.md: "
                     "\"Training on several nodes\")");
  };
  // open() follows symbolic links: Kubernetes mounts each key as a link into a hidden folder.
  // O_NONBLOCK: a FIFO given by mistake is refused below instead of blocking here.
  const Socket file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!file.valid()) throw bad(errno_text(errno));
  struct stat info {};
  if (::fstat(file.fd(), &info) != 0 || !S_ISREG(info.st_mode)) throw bad("not a regular file");
  std::string secret(kMaxRendezvousSecret + 1, '\0');
  std::size_t got = 0;
  while (got < secret.size()) {
    const ssize_t n = ::read(file.fd(), secret.data() + got, secret.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw bad(errno_text(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  secret.resize(got);
  if (got > kMaxRendezvousSecret) {
    OPENSSL_cleanse(secret.data(), secret.size());
    throw bad("larger than " + std::to_string(kMaxRendezvousSecret) + " bytes: not a secret");
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < kMinRendezvousSecret) {
    const std::size_t size = secret.size();
    OPENSSL_cleanse(secret.data(), secret.size());
    throw bad(std::to_string(size) + " bytes, fewer than " + std::to_string(kMinRendezvousSecret) +
              " (make one with: openssl rand -hex 32)");
  }
  return secret;
}

void check_rendezvous_blob(const std::string& blob, std::size_t bytes) {
  if (blob.size() != bytes) {
    throw Error(ExitCode::kDataUnavailable, "rendezvous: rank 0 handed out an id of " +
                                                std::to_string(blob.size()) + " bytes, not " +
                                                std::to_string(bytes) +
                                                ": another build of this program at rank 0?");
  }
}

namespace {

// One attempt at binding `host:port`; the socket, or `why` and whether a retry may pass (the name
// did not resolve, or resolved to no address of this machine).
Socket try_listen(const std::string& host, std::uint16_t port, std::string* why,
                  bool* may_pass_later, bool* not_local) {
  AddressList addresses;
  const std::string resolve_error = resolve(host, port, true, addresses);
  *may_pass_later = !resolve_error.empty();
  *not_local = false;
  *why = resolve_error.empty() ? "" : "cannot resolve " + host + ": " + resolve_error;
  // Every interface: IPv6's "::", which takes IPv4 connections too, before IPv4's.
  std::vector<const addrinfo*> order;
  for (const addrinfo* a = addresses.head; a; a = a->ai_next) {
    if (host.empty() && a->ai_family == AF_INET6)
      order.insert(order.begin(), a);
    else
      order.push_back(a);
  }
  for (const addrinfo* a : order) {
    Socket socket(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket.valid()) continue;
    const int on = 1;
    const int v6only = host.empty() ? 0 : 1;
    ::setsockopt(socket.fd(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (a->ai_family == AF_INET6)
      ::setsockopt(socket.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    if (::bind(socket.fd(), a->ai_addr, a->ai_addrlen) != 0 ||
        ::listen(socket.fd(), SOMAXCONN) != 0) {
      const int error = errno;
      if (error == EADDRNOTAVAIL) {
        *may_pass_later = *not_local = true;
        *why = host +
               " resolves to no address of this machine (--rendezvous must name rank 0's "
               "own pod)";
      } else if (!*not_local) {
        *why = errno_text(error);
      }
      continue;
    }
    return socket;
  }
  return {};
}

}  // namespace

Listener::Listener(const std::string& host, std::uint16_t port, std::chrono::milliseconds wait) {
  const Deadline deadline(wait);
  const std::string where = to_string({host.empty() ? "*" : host, port});
  std::string why;
  bool may_pass_later = false;
  bool not_local = false;
  for (milliseconds backoff = kFirstBackoff;; backoff = std::min(backoff * 2, kMaxBackoff)) {
    socket_ = try_listen(host, port, &why, &may_pass_later, &not_local);
    if (socket_.valid()) break;
    if (!may_pass_later || deadline.expired()) {
      throw Error(
          not_local || !may_pass_later ? ExitCode::kBadArguments : ExitCode::kDataUnavailable,
          "rendezvous: rank 0 cannot listen on " + where + ": " + why);
    }
    pause_for(backoff, deadline, "while rank 0 waited to listen on " + where);
  }
  sockaddr_storage bound{};
  socklen_t size = sizeof bound;
  ::getsockname(socket_.fd(), reinterpret_cast<sockaddr*>(&bound), &size);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
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
  const std::string where = "rank 0 at " + to_string(options.rank0);
  std::string why;
  for (milliseconds backoff = kFirstBackoff;; backoff = std::min(backoff * 2, kMaxBackoff)) {
    const Socket socket = connect_with_retries(options.rank0, deadline, why);
    const std::optional<std::string> nonce0 = read_challenge(socket, deadline, where);
    if (nonce0) {
      const std::string nonce1 = random_bytes(kNonceBytes);
      const SessionKeys keys(options.secret, *nonce0, nonce1);
      write_all(socket.fd(), sealed_message(kHello, keys.hello, hello_plaintext(options), nonce1),
                deadline, "while saying hello to " + where);
      return read_answer(socket, options, keys, deadline);
    }
    // Turned away before the challenge (rank 0 bounds its pending connections): try again.
    why = "rank 0 closed the connection before its challenge (busy with other connections?)";
    pause_for(backoff, deadline, "while connecting to " + where);
  }
}

std::string rendezvous(const RendezvousOptions& options, const std::string& blob) {
  validate_rendezvous_options(options);
  if (options.world_size == 1) return blob;
  heartbeat("rendezvous");  // bounded by options.timeout, which the watchdog allows for
  if (options.rank > 0) return join_rendezvous(options);
  const Deadline deadline(options.timeout);
  Listener listener(options.rank0.host, options.rank0.port, options.timeout);
  RendezvousOptions rest = options;  // the time the address took comes off the rendezvous's
  rest.timeout = std::max(milliseconds(1), deadline.left());
  serve_rendezvous(listener, rest, blob);
  return blob;
}

}  // namespace mnist
