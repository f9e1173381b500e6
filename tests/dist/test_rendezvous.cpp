// The multi-process rendezvous (src/dist/rendezvous.h) over loopback: ranks as threads and as
// forked processes, every failure its header promises (a missing peer, another configuration, a
// rank out of range, a GPU shared by two ranks, rank 0 absent, silent, garbled or fake, a stop
// request), a replaced pod, and strangers that must neither join, learn anything, nor end the
// rendezvous (another version, hellos without the secret, floods, an eavesdropping relay). The
// protocol's bytes and its cryptography are written here from the header's description with
// OpenSSL, not with the library's code, so the two are checked against each other. Timeouts are
// 1-2 s where a test waits for one, 10-30 s where it must not.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/rendezvous.h"
#include "error.h"
#include "stop.h"

namespace mnist {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::string kConfiguration = "--model=mlp --batch_size=100 --learning_rate=0.001 --seed=1";
const std::string kSecret = "3f1c0e9a5b7d2468ace13579bdf02468ace13579bdf02468ace13579bdf0246a";
const std::string kOtherSecret = "0000000000000000000000000000000000000000000000000000000000000000";

// An NCCL-sized unique id with every byte value a string could trip on (zeros included).
std::string test_blob() {
  std::string blob(128, '\0');
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 37 + 11);
  blob[5] = '\0';
  return blob;
}

RendezvousOptions options(int rank, int world_size, std::uint16_t port, milliseconds timeout = 20s,
                          const std::string& configuration = kConfiguration) {
  RendezvousOptions o;
  o.rank = rank;
  o.world_size = world_size;
  o.rank0 = {"127.0.0.1", port};
  o.configuration = configuration;
  o.secret = kSecret;
  o.timeout = timeout;
  return o;
}
// What one rank ended with: the blob, or the error's code and message.
struct Outcome {
  ExitCode code = ExitCode::kOk;
  std::string blob;
  std::string message;
  double seconds = 0;
};

template <typename Body>
Outcome outcome_of(Body body) {
  const auto start = Clock::now();
  Outcome outcome;
  try {
    outcome.blob = body();
  } catch (const Error& e) {
    outcome.code = e.code();
    outcome.message = e.what();
  }
  outcome.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return outcome;
}

Outcome serve(Listener& listener, const RendezvousOptions& o, const std::string& blob) {
  return outcome_of([&] {
    serve_rendezvous(listener, o, blob);
    return blob;
  });
}

Outcome join(const RendezvousOptions& o) {
  return outcome_of([&] { return join_rendezvous(o); });
}

std::future<Outcome> join_async(const RendezvousOptions& o) {
  return std::async(std::launch::async, [o] { return join(o); });
}

// ---- Raw bytes and their cryptography, as the header describes them ----------------------------

constexpr std::uint16_t kChallenge = 1, kHello = 2, kWelcome = 3, kRefused = 4;

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}
void put_u32(std::string& out, std::uint32_t v) {
  put_u16(out, static_cast<std::uint16_t>(v >> 16));
  put_u16(out, static_cast<std::uint16_t>(v));
}
std::uint32_t get_u32(const std::string& bytes, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = at; i < at + 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

std::string header_of(std::uint16_t type, std::size_t length, std::uint16_t version = 2) {
  std::string out = "MNRZ";
  put_u16(out, version);
  put_u16(out, type);
  put_u32(out, static_cast<std::uint32_t>(length));
  return out;
}

// A message: header (the payload's length unless `length` says otherwise) and payload.
std::string frame(std::uint16_t type, const std::string& payload, std::uint16_t version = 2,
                  std::int64_t length = -1) {
  return header_of(type,
                   static_cast<std::size_t>(length >= 0 ? length : std::int64_t(payload.size())),
                   version) +
         payload;
}

// Version 1's hello (rank, world size, configuration in the clear): what a stranger who read the
// Job's public args, or an image of before version 2, would send.
std::string v1_hello(std::uint32_t rank, std::uint32_t world, const std::string& configuration) {
  std::string payload;
  put_u32(payload, rank);
  put_u32(payload, world);
  return frame(1, payload + configuration, 1);
}

std::string random_string(std::size_t n) {
  std::string s(n, '\0');
  EXPECT_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n)), 1);
  return s;
}

std::string key_of(const std::string& secret, const std::string& label, const std::string& nonce0,
                   const std::string& nonce1) {
  const std::string data = label + nonce0 + nonce1;
  unsigned char out[32];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
  return std::string(reinterpret_cast<char*>(out), size);
}

const unsigned char* u(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// iv | AES-256-GCM ciphertext | tag, `aad` authenticated.
std::string seal(const std::string& key, const std::string& aad, const std::string& plaintext) {
  const std::string iv = random_string(12);
  std::string out(plaintext.size() + 16, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int n = 0;
  EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), nullptr, u(key), u(iv));
  EVP_EncryptUpdate(c, nullptr, &n, u(aad), static_cast<int>(aad.size()));
  EVP_EncryptUpdate(c, o, &n, u(plaintext), static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(c, o + n, &n);
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, o + plaintext.size());
  EVP_CIPHER_CTX_free(c);
  return iv + out;
}

// The plaintext, or "<does not open>".
std::string open_sealed(const std::string& key, const std::string& aad, const std::string& sealed) {
  if (sealed.size() < 28) return "<does not open>";
  std::string plain(sealed.size() - 28, '\0');
  std::string tag = sealed.substr(sealed.size() - 16);
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int n = 0;
  EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), nullptr, u(key), u(sealed));
  EVP_DecryptUpdate(c, nullptr, &n, u(aad), static_cast<int>(aad.size()));
  EVP_DecryptUpdate(c, reinterpret_cast<unsigned char*>(plain.data()), &n, u(sealed) + 12,
                    static_cast<int>(plain.size()));
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag.data());
  const bool ok =
      EVP_DecryptFinal_ex(c, reinterpret_cast<unsigned char*>(plain.data()) + n, &n) == 1;
  EVP_CIPHER_CTX_free(c);
  return ok ? plain : "<does not open>";
}

// A whole sealed message of `type`: header | clear prefix | SEAL(key; plaintext).
std::string sealed_frame(std::uint16_t type, const std::string& key, const std::string& plaintext,
                         const std::string& prefix = "") {
  const std::string header = header_of(type, prefix.size() + plaintext.size() + 28);
  return header + prefix + seal(key, header, plaintext);
}

struct Keys {
  std::string hello, answer;
};
Keys keys_of(const std::string& secret, const std::string& nonce0, const std::string& nonce1) {
  return {key_of(secret, "MNRZ2 hello key", nonce0, nonce1),
          key_of(secret, "MNRZ2 answer key", nonce0, nonce1)};
}

// A kHello's payload before sealing.
std::string hello_plaintext(std::uint32_t rank, std::uint32_t world,
                            const std::string& configuration, const std::string& devices = "") {
  std::string p;
  put_u32(p, rank);
  put_u32(p, world);
  put_u32(p, static_cast<std::uint32_t>(devices.size()));
  return p + devices + configuration;
}

// A blocking loopback connection to 127.0.0.1, from `source` (another loopback address: another
// source for rank 0's bounds).
Socket raw_connect(std::uint16_t port, const char* source = nullptr) {
  Socket s(::socket(AF_INET, SOCK_STREAM, 0));
  if (source) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    EXPECT_EQ(::bind(s.fd(), reinterpret_cast<sockaddr*>(&from), sizeof from), 0) << source;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(s.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  return s;
}

// Sends what the socket buffer takes at once, never blocking (nobody may be reading yet); the
// other side may also have closed on the first bad byte, which is fine here.
void raw_send(const Socket& s, const std::string& bytes) {
  ::send(s.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Exactly `n` bytes (within 10 s), or fewer when the other side closes first.
std::string read_n(const Socket& s, std::size_t n) {
  std::string got;
  const auto deadline = Clock::now() + 10s;
  while (got.size() < n && Clock::now() < deadline) {
    pollfd entry{s.fd(), POLLIN, 0};
    if (::poll(&entry, 1, 100) <= 0) continue;
    std::string buffer(n - got.size(), '\0');
    const ssize_t r = ::recv(s.fd(), buffer.data(), buffer.size(), 0);
    if (r <= 0) break;
    got.append(buffer.data(), static_cast<std::size_t>(r));
  }
  return got;
}

// Everything the other side sends until it closes (at most 64 KiB, within 10 s).
std::string read_until_closed(const Socket& s) {
  std::string got;
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline && got.size() < 65536) {
    pollfd entry{s.fd(), POLLIN, 0};
    if (::poll(&entry, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::recv(s.fd(), buffer, sizeof buffer, 0);
    if (n <= 0) return got;
    got.append(buffer, static_cast<std::size_t>(n));
  }
  ADD_FAILURE() << "the other side did not close within 10 s";
  return got;
}

// Rank 0's challenge on a fresh connection: its nonce ("" when it is not one).
std::string read_challenge(const Socket& s) {
  const std::string c = read_n(s, 44);
  if (c.size() != 44 || c.substr(0, 12) != header_of(kChallenge, 32)) return "";
  return c.substr(12);
}

// A peer written from the header: reads the challenge, sends a hello sealed with `secret`.
struct RawPeer {
  Socket socket;
  Keys keys;

  RawPeer(std::uint16_t port, const std::string& secret, const char* source = nullptr)
      : socket(raw_connect(port, source)) {
    const std::string nonce0 = read_challenge(socket);
    EXPECT_EQ(nonce0.size(), 32u) << "no challenge";
    const std::string nonce1 = random_string(32);
    keys = keys_of(secret, nonce0, nonce1);
    nonce1_ = nonce1;
  }
  std::string hello(std::uint32_t rank, std::uint32_t world, const std::string& configuration,
                    const std::string& devices = "") const {
    return sealed_frame(kHello, keys.hello, hello_plaintext(rank, world, configuration, devices),
                        nonce1_);
  }
  // Rank 0's answer, opened: type and plaintext.
  std::pair<std::uint16_t, std::string> answer() const {
    const std::string header = read_n(socket, 12);
    if (header.size() != 12) return {0, "<closed>"};
    const std::string payload = read_n(socket, get_u32(header, 8));
    return {static_cast<std::uint16_t>(get_u32(header, 4) & 0xffff),
            open_sealed(keys.answer, header, payload)};
  }

 private:
  std::string nonce1_;
};

// A port where nothing listens: bound (so no other test takes it) but never listening.
struct DeadPort {
  Socket socket{::socket(AF_INET, SOCK_STREAM, 0)};
  std::uint16_t port = 0;
  DeadPort() {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    EXPECT_EQ(::bind(socket.fd(), reinterpret_cast<sockaddr*>(&address), size), 0);
    ::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&address), &size);
    port = ntohs(address.sin_port);
  }
};

// Rank 0 impostor: accepts one connection on `listener`, sends `challenge` (a real one when
// empty), reads the whole hello, sends what `answer` makes of (nonce0, nonce1) and ends its side,
// then waits for the peer to hang up (so the answer is never cut short by a reset).
using Answer = std::function<std::string(const std::string& nonce0, const std::string& nonce1)>;
std::future<void> fake_rank0(Listener& listener, Answer answer, std::string challenge = "") {
  return std::async(std::launch::async, [&listener, answer, challenge] {
    pollfd entry{listener.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&entry, 1, 10000), 1);
    Socket s(::accept(listener.fd(), nullptr, nullptr));
    ASSERT_TRUE(s.valid());
    const std::string nonce0 = random_string(32);
    raw_send(s, challenge.empty() ? frame(kChallenge, nonce0) : challenge);
    std::string nonce1;
    if (challenge.empty()) {
      const std::string header = read_n(s, 12);
      ASSERT_EQ(header.size(), 12u);
      const std::string payload = read_n(s, get_u32(header, 8));
      ASSERT_GE(payload.size(), 32u);
      nonce1 = payload.substr(0, 32);
    }
    raw_send(s, answer(nonce0, nonce1));
    ::shutdown(s.fd(), SHUT_WR);
    read_until_closed(s);
  });
}

// Forwards bytes both ways between a peer and rank 0, keeping a copy: what an eavesdropper on
// the pod network sees.
class Relay {
 public:
  explicit Relay(std::uint16_t rank0_port) : listener_("127.0.0.1", 0) {
    thread_ = std::thread([this, rank0_port] { run(rank0_port); });
  }
  ~Relay() { thread_.join(); }
  std::uint16_t port() const { return listener_.port(); }
  std::string seen() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }

 private:
  void run(std::uint16_t rank0_port) {
    pollfd entry{listener_.fd(), POLLIN, 0};
    if (::poll(&entry, 1, 20000) != 1) return;
    Socket peer(::accept(listener_.fd(), nullptr, nullptr));
    Socket rank0 = raw_connect(rank0_port);
    bool open[2] = {true, true};
    const auto deadline = Clock::now() + 20s;
    while ((open[0] || open[1]) && Clock::now() < deadline) {
      pollfd fds[2] = {{peer.fd(), POLLIN, 0}, {rank0.fd(), POLLIN, 0}};
      if (::poll(fds, 2, 100) <= 0) continue;
      for (int side = 0; side < 2; ++side) {
        if (!open[side] || !fds[side].revents) continue;
        char buffer[4096];
        const ssize_t n = ::recv(fds[side].fd, buffer, sizeof buffer, 0);
        const int to = side == 0 ? rank0.fd() : peer.fd();
        if (n <= 0) {
          open[side] = false;
          ::shutdown(to, SHUT_WR);
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mutex_);
          seen_.append(buffer, static_cast<std::size_t>(n));
        }
        ::send(to, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL);
      }
    }
  }

  Listener listener_;
  std::mutex mutex_;
  std::string seen_;
  std::thread thread_;
};

class Rendezvous : public ::testing::Test {
 protected:
  void TearDown() override { set_stop_signal_for_testing(0); }
  Listener listener_{"127.0.0.1", 0};
};

// Rank 0 serving in the background: raw peers need its challenge before they can say hello.
std::future<Outcome> serve_async(Listener& listener, const RendezvousOptions& o,
                                 const std::string& blob) {
  return std::async(std::launch::async, [&listener, o, blob] { return serve(listener, o, blob); });
}

// ---- Success ------------------------------------------------------------------------------------

TEST_F(Rendezvous, WorldOfOneNeedsNoPeer) {
  RendezvousOptions o = options(0, 1, 0);
  o.rank0 = {"", 0};
  o.secret.clear();  // one process meets nobody: no secret needed
  EXPECT_EQ(rendezvous(o, test_blob()), test_blob());
  const Outcome rank0 = serve(listener_, options(0, 1, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
}

TEST_F(Rendezvous, EveryRankGetsTheBlob) {
  for (const int world : {2, 4}) {
    SCOPED_TRACE("world size " + std::to_string(world));
    Listener listener("127.0.0.1", 0);
    std::vector<std::future<Outcome>> peers;
    for (int rank = 1; rank < world; ++rank) {
      RendezvousOptions o = options(rank, world, listener.port());
      o.blob_bytes = 128;
      peers.push_back(join_async(o));
    }
    const Outcome rank0 = serve(listener, options(0, world, listener.port()), test_blob());
    EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
    for (auto& peer : peers) {
      const Outcome got = peer.get();
      EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
      EXPECT_EQ(got.blob, test_blob());
    }
  }
}

// Peers that start before rank 0 listens retry until it does.
TEST_F(Rendezvous, PeersWaitForRank0ToListen) {
  DeadPort placeholder;
  const std::uint16_t port = placeholder.port;
  auto peer = join_async(options(1, 2, port));
  // The peer is refused at least once (or is still resolving); then rank 0 takes the port.
  placeholder.socket.reset();
  Listener late("127.0.0.1", port);
  const Outcome rank0 = serve(late, options(0, 2, port), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  const Outcome got = peer.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
}

bool connects(int family, const char* address, std::uint16_t port) {
  Socket s(::socket(family, SOCK_STREAM, 0));
  if (!s.valid()) return false;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, address, &a.sin_addr);
    return ::connect(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  ::inet_pton(AF_INET6, address, &a.sin6_addr);
  return ::connect(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

// rendezvous() as a pod calls it: rank 0 listens on the address --rendezvous names, and on no
// other (127.0.0.2 and ::1 reach this machine too, but not the rendezvous).
TEST_F(Rendezvous, TopLevelCallListensOnlyOnTheRendezvousAddress) {
  std::uint16_t port = 0;
  {
    const DeadPort free_port;  // a port nobody holds once this closes it
    port = free_port.port;
  }
  auto rank0 = std::async(std::launch::async, [port] {
    return outcome_of([port] { return rendezvous(options(0, 2, port), test_blob()); });
  });
  // Listening once a stray gets a challenge at 127.0.0.1 (it is dropped later, harmlessly).
  bool listening = false;
  for (int i = 0; i < 200 && !listening; ++i) {
    listening = connects(AF_INET, "127.0.0.1", port);
    if (!listening) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(listening);
  EXPECT_FALSE(connects(AF_INET, "127.0.0.2", port));
  EXPECT_FALSE(connects(AF_INET6, "::1", port));
  const Outcome got = outcome_of([port] { return rendezvous(options(1, 2, port), ""); });
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
  const Outcome served = rank0.get();
  EXPECT_EQ(served.code, ExitCode::kOk) << served.message;
  EXPECT_EQ(served.blob, test_blob());
}

// A --rendezvous host that is not this machine's: rank 0 waits for it to become one (a replaced
// pod's stale name), then exits 2.
TEST_F(Rendezvous, Rank0RefusesAnAddressThatIsNotItsOwn) {
  RendezvousOptions o = options(0, 2, 29400, 1500ms);
  o.rank0.host = "192.0.2.1";  // TEST-NET-1: nobody's
  const Outcome got = outcome_of([&] { return rendezvous(o, test_blob()); });
  EXPECT_EQ(got.code, ExitCode::kBadArguments) << got.message;
  EXPECT_NE(got.message.find("192.0.2.1 resolves to no address of this machine"), std::string::npos)
      << got.message;
  EXPECT_GE(got.seconds, 1.4);
}

// Ranks as separate processes, as pods are: each child exits 0 when it got rank 0's blob.
TEST_F(Rendezvous, ForkedProcessesJoin) {
  constexpr int kWorld = 4;
  std::vector<pid_t> children;
  for (int rank = 1; rank < kWorld; ++rank) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int status = 10;
      try {
        status = join_rendezvous(options(rank, kWorld, listener_.port())) == test_blob() ? 0 : 11;
      } catch (const Error& e) {
        status = static_cast<int>(e.code());
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  const Outcome rank0 = serve(listener_, options(0, kWorld, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  for (const pid_t pid : children) {
    int status = -1;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child " << pid;
  }
}

// ---- Rank 0 refuses the Job's own ranks ---------------------------------------------------------

TEST_F(Rendezvous, MissingPeerTimesOutNamingIt) {
  auto rank1 = join_async(options(1, 3, listener_.port(), 30s));
  const Outcome rank0 = serve(listener_, options(0, 3, listener_.port(), 2s), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kDataUnavailable);
  EXPECT_NE(rank0.message.find("1 of 2 peers (rank 2) did not join within 2.0 s"),
            std::string::npos)
      << rank0.message;
  EXPECT_GE(rank0.seconds, 2.0);
  EXPECT_LT(rank0.seconds, 15.0);
  // The peer that came hears why at once, instead of waiting out its own 30 s.
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kDataUnavailable);
  EXPECT_NE(got.message.find("aborted by rank 0"), std::string::npos) << got.message;
  EXPECT_NE(got.message.find("(rank 2) did not join"), std::string::npos) << got.message;
  EXPECT_LT(got.seconds, 15.0);
}

TEST_F(Rendezvous, OtherConfigurationFailsBothSides) {
  auto rank1 = join_async(options(1, 2, listener_.port(), 20s,
                                  "--model=mlp --batch_size=200 --learning_rate=0.001 --seed=1"));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  const Outcome got = rank1.get();
  for (const Outcome* side : {&rank0, &got}) {
    EXPECT_EQ(side->code, ExitCode::kBadArguments);
    EXPECT_NE(side->message.find("rank 1 (127.0.0.1:"), std::string::npos) << side->message;
    EXPECT_NE(side->message.find("configuration differs from rank 0's"), std::string::npos)
        << side->message;
    EXPECT_NE(side->message.find("batch_size=100"), std::string::npos) << side->message;
    EXPECT_NE(side->message.find("batch_size=200"), std::string::npos) << side->message;
    EXPECT_LT(side->seconds, 15.0);
  }
}

TEST_F(Rendezvous, OtherWorldSizeFailsBothSides) {
  auto rank1 = join_async(options(1, 3, listener_.port()));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  const Outcome got = rank1.get();
  EXPECT_EQ(rank0.code, ExitCode::kBadArguments);
  EXPECT_NE(rank0.message.find("its world size is 3, rank 0's 2"), std::string::npos)
      << rank0.message;
  EXPECT_EQ(got.code, ExitCode::kBadArguments);
  EXPECT_NE(got.message.find("its world size is 3"), std::string::npos) << got.message;
}

// Two ranks on one GPU (the same bus id on the same host): a misconfigured Job, exit 2 on both,
// naming both ranks and the GPU, before NCCL ever sees it.
TEST_F(Rendezvous, GpuSharedByTwoRanksFailsBothSides) {
  RendezvousOptions peer = options(1, 2, listener_.port());
  peer.devices = {"0000:1b:00.0 on host A", "0000:3b:00.0 on host A"};
  auto rank1 = join_async(peer);
  RendezvousOptions o = options(0, 2, listener_.port());
  o.devices = {"0000:3b:00.0 on host A"};
  const Outcome rank0 = serve(listener_, o, test_blob());
  const Outcome got = rank1.get();
  for (const Outcome* side : {&rank0, &got}) {
    EXPECT_EQ(side->code, ExitCode::kBadArguments);
    EXPECT_NE(side->message.find("rank 1 and rank 0 both use the GPU 0000:3b:00.0 on host A"),
              std::string::npos)
        << side->message;
  }
}

// The same bus id on two hosts is two GPUs.
TEST_F(Rendezvous, SameBusIdOnOtherHostsIsFine) {
  RendezvousOptions peer = options(1, 2, listener_.port());
  peer.devices = {"0000:3b:00.0 on host B"};
  auto rank1 = join_async(peer);
  RendezvousOptions o = options(0, 2, listener_.port());
  o.devices = {"0000:3b:00.0 on host A"};
  EXPECT_EQ(serve(listener_, o, test_blob()).code, ExitCode::kOk);
  EXPECT_EQ(rank1.get().code, ExitCode::kOk);
}

// A rank held already, claimed again by an authenticated peer: a replaced pod. The newer
// connection takes the rank; the older one hears why (exit 3), and the rendezvous goes on.
TEST_F(Rendezvous, ReplacedPodTakesItsRank) {
  auto served = serve_async(listener_, options(0, 3, listener_.port()), test_blob());
  RawPeer old_pod(listener_.port(), kSecret);
  raw_send(old_pod.socket, old_pod.hello(1, 3, kConfiguration));
  RawPeer new_pod(listener_.port(), kSecret);
  raw_send(new_pod.socket, new_pod.hello(1, 3, kConfiguration));
  auto rank2 = join_async(options(2, 3, listener_.port()));
  const Outcome rank0 = served.get();
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  EXPECT_EQ(rank2.get().code, ExitCode::kOk);
  const auto [old_type, old_answer] = old_pod.answer();
  EXPECT_EQ(old_type, kRefused);
  ASSERT_GE(old_answer.size(), 4u) << old_answer;
  EXPECT_EQ(get_u32(old_answer, 0), 3u);
  EXPECT_NE(old_answer.find("gave rank 1 to a newer connection"), std::string::npos) << old_answer;
  EXPECT_EQ(new_pod.answer(), std::make_pair(kWelcome, test_blob()));
}

TEST_F(Rendezvous, RankOutOfRangeIsRefused) {
  for (const std::uint32_t rank : {0u, 2u, 0xffffffffu}) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    Listener listener("127.0.0.1", 0);
    auto served = serve_async(listener, options(0, 2, listener.port()), test_blob());
    RawPeer peer(listener.port(), kSecret);
    raw_send(peer.socket, peer.hello(rank, 2, kConfiguration));
    const Outcome rank0 = served.get();
    EXPECT_EQ(rank0.code, ExitCode::kBadArguments);
    EXPECT_NE(rank0.message.find("out of range, peers are ranks 1..1"), std::string::npos)
        << rank0.message;
    // The refusal, as the header describes it: type 4, sealed with the answer key: exit code 2, a
    // reason.
    const auto [type, answer] = peer.answer();
    EXPECT_EQ(type, kRefused);
    ASSERT_GE(answer.size(), 4u) << answer;
    EXPECT_EQ(get_u32(answer, 0), 2u);
    EXPECT_NE(answer.find("out of range"), std::string::npos);
  }
}

// ---- Strangers at rank 0 ------------------------------------------------------------------------

// What rank 0 sent a stranger: only its challenge, then it closed.
void expect_only_a_challenge(const Socket& stranger) {
  const std::string got = read_until_closed(stranger);
  EXPECT_EQ(got.size(), 44u);
  EXPECT_EQ(got.substr(0, 12), header_of(kChallenge, 32));
  EXPECT_EQ(got.find(test_blob()), std::string::npos);
  EXPECT_EQ(got.find("batch_size"), std::string::npos);
}

// Another protocol version cannot be authenticated: dropped like garbage, the Job goes on.
TEST_F(Rendezvous, AnotherProtocolVersionIsDroppedAndPeersJoin) {
  std::vector<Socket> strays;
  for (const std::uint16_t version : {1, 3, 0xffff}) {
    strays.push_back(raw_connect(listener_.port()));
    raw_send(strays.back(), frame(kHello, "", version));  // a bare 12-byte header
  }
  auto rank1 = join_async(options(1, 2, listener_.port()));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
  for (const auto& stray : strays) expect_only_a_challenge(stray);
}

// An old image's peer is named in rank 0's timeout: "protocol version 1".
TEST_F(Rendezvous, TimeoutNamesAnotherProtocolVersion) {
  const Socket old_image = raw_connect(listener_.port());
  raw_send(old_image, v1_hello(1, 2, kConfiguration));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port(), 1500ms), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kDataUnavailable);
  EXPECT_NE(rank0.message.find("rendezvous protocol version 1, this binary's is 2"),
            std::string::npos)
      << rank0.message;
}

// Hellos that do not open with the Job's secret, whatever they claim (another world size, a rank
// out of range, another configuration, or the right one), end nothing and get nothing.
TEST_F(Rendezvous, HellosWithoutTheSecretAreDroppedAndPeersJoin) {
  auto served = serve_async(listener_, options(0, 2, listener_.port()), test_blob());
  std::vector<Socket> strays;
  // As a stranger who read the Job's public args would write them in version 1.
  for (const auto& input : {v1_hello(1, 3, kConfiguration), v1_hello(7, 2, kConfiguration),
                            v1_hello(1, 2, "--model=softmax"), v1_hello(1, 2, kConfiguration)}) {
    strays.push_back(raw_connect(listener_.port()));
    raw_send(strays.back(), input);
  }
  // Version 2 hellos sealed with another secret.
  std::vector<RawPeer> impostors;
  for (const std::uint32_t world : {2u, 3u}) {
    impostors.emplace_back(listener_.port(), kOtherSecret);
    raw_send(impostors.back().socket, impostors.back().hello(1, world, kConfiguration));
  }
  // A well-formed hello whose seal is garbage.
  strays.push_back(raw_connect(listener_.port()));
  const std::string nonce0 = read_challenge(strays.back());
  raw_send(strays.back(), frame(kHello, random_string(32 + 28 + 12 + kConfiguration.size())));
  auto rank1 = join_async(options(1, 2, listener_.port()));
  const Outcome rank0 = served.get();
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
  for (std::size_t i = 0; i + 1 < strays.size(); ++i) expect_only_a_challenge(strays[i]);
  EXPECT_EQ(read_until_closed(strays.back()), "");  // its challenge was read above
  for (const auto& impostor : impostors) {
    EXPECT_EQ(impostor.answer(), std::make_pair(std::uint16_t{0}, std::string("<closed>")));
  }
}

// A peer of the Job with another secret (a Secret recreated between pods): dropped; it exits 3
// naming the secret as the likely cause, and the rendezvous goes on for the real peer.
TEST_F(Rendezvous, PeerWithAnotherSecretIsDroppedAndExits3) {
  auto served = std::async(std::launch::async, [&] {
    return serve(listener_, options(0, 2, listener_.port()), test_blob());
  });
  RendezvousOptions wrong = options(1, 2, listener_.port());
  wrong.secret = kOtherSecret;
  const Outcome dropped = join(wrong);
  EXPECT_EQ(dropped.code, ExitCode::kDataUnavailable) << dropped.message;
  EXPECT_NE(dropped.message.find("closed the connection after this rank's hello"),
            std::string::npos)
      << dropped.message;
  EXPECT_NE(dropped.message.find("--rendezvous_secret_file"), std::string::npos) << dropped.message;
  EXPECT_TRUE(dropped.blob.empty());
  const Outcome got = join(options(1, 2, listener_.port()));
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
  const Outcome rank0 = served.get();
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
}

// Input that is not a hello is dropped and counted; it never ends the rendezvous.
TEST_F(Rendezvous, Rank0DropsMalformedConnectionsAndNamesThem) {
  std::vector<Socket> strays;
  const std::vector<std::string> inputs = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",              // not the protocol
      frame(kHello, "", 2, 0xffffffffLL),               // 4 GiB payload announced
      frame(kHello, random_string(100)).substr(0, 20),  // truncated, then closed
      frame(kHello, "abc"),                             // a hello too short to hold a nonce
      frame(9, "x"),                                    // unknown type
      frame(kWelcome, test_blob()),                     // a welcome, sent to rank 0
  };
  for (const auto& input : inputs) {
    strays.push_back(raw_connect(listener_.port()));
    raw_send(strays.back(), input);
  }
  ::shutdown(strays[2].fd(), SHUT_WR);
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port(), 1500ms), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kDataUnavailable);
  EXPECT_NE(rank0.message.find("(rank 1) did not join"), std::string::npos) << rank0.message;
  EXPECT_NE(rank0.message.find("dropped 6 connection(s)"), std::string::npos) << rank0.message;
  // Every stray was closed after its challenge (rank 0 answers only authenticated peers).
  for (const auto& stray : strays) expect_only_a_challenge(stray);
}

TEST_F(Rendezvous, StraysDoNotStopPeersJoining) {
  std::vector<Socket> strays;
  for (int i = 0; i < 70; ++i) strays.push_back(raw_connect(listener_.port(), "127.0.0.2"));
  raw_send(strays[0], std::string(1 << 20, 'x'));  // a megabyte of junk: rank 0 reads 12 bytes
  raw_send(strays[1], frame(kHello, random_string(200)).substr(0, 30));  // stalls mid-hello
  auto rank1 = join_async(options(1, 2, listener_.port()));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
}

// A flood of silent connections from one source, queued before the real peer connects (every one
// of them reaches rank 0 first): at most kMaxPendingPerSource of them are kept, none displaces
// the peer, and the peer joins.
TEST_F(Rendezvous, FloodFromOneSourceCannotLockAPeerOut) {
  std::vector<Socket> flood;
  for (int i = 0; i < 300; ++i) flood.push_back(raw_connect(listener_.port(), "127.0.0.2"));
  auto rank1 = join_async(options(1, 2, listener_.port()));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
  // The source's first connections got a challenge; the rest were closed without one.
  std::size_t challenged = 0;
  for (const auto& s : flood) challenged += read_until_closed(s).size() == 44;
  EXPECT_EQ(challenged, kMaxPendingPerSource);
}

// A flood from many sources fills the global bound while a peer is mid-handshake (challenged,
// half of its hello sent): the peer is never displaced and completes.
TEST_F(Rendezvous, FloodFromManySourcesCannotDisplaceAPeerMidHandshake) {
  auto served = std::async(std::launch::async, [&] {
    return serve(listener_, options(0, 2, listener_.port()), test_blob());
  });
  RawPeer peer(listener_.port(), kSecret);  // its challenge read: rank 0 holds the connection
  const std::string hello = peer.hello(1, 2, kConfiguration);
  raw_send(peer.socket, hello.substr(0, 20));
  std::vector<Socket> flood;
  for (int source = 2; source < 42; ++source) {
    const std::string address = "127.0.0." + std::to_string(source);
    for (int i = 0; i < 4; ++i) flood.push_back(raw_connect(listener_.port(), address.c_str()));
  }
  // Every flood connection has been handled once its challenge or close arrived.
  for (const auto& s : flood) read_n(s, 44);
  raw_send(peer.socket, hello.substr(20));
  EXPECT_EQ(peer.answer(), std::make_pair(kWelcome, test_blob()));
  const Outcome rank0 = served.get();
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
}

// A peer that leaves before the rendezvous completes frees its rank (a replacement pod may come).
TEST_F(Rendezvous, PeerThatLeavesIsNotCounted) {
  auto served = std::async(std::launch::async, [&] {
    return serve(listener_, options(0, 3, listener_.port(), 1500ms), test_blob());
  });
  {
    RawPeer leaver(listener_.port(), kSecret);
    raw_send(leaver.socket, leaver.hello(1, 3, kConfiguration));
  }
  const Outcome rank0 = served.get();
  EXPECT_EQ(rank0.code, ExitCode::kDataUnavailable);
  EXPECT_NE(rank0.message.find("2 of 2 peers (ranks 1, 2) did not join"), std::string::npos)
      << rank0.message;
  EXPECT_NE(rank0.message.find("left before the rendezvous completed"), std::string::npos)
      << rank0.message;
}

// What crosses the network: an eavesdropper relaying every byte learns neither the secret, nor
// the id, nor the configuration.
TEST_F(Rendezvous, EavesdropperLearnsNeitherSecretNorIdNorConfiguration) {
  Relay relay(listener_.port());
  auto rank1 = join_async(options(1, 2, relay.port()));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
  const std::string seen = relay.seen();
  EXPECT_GT(seen.size(), 200u);  // the relay did carry the rendezvous
  EXPECT_EQ(seen.find(kSecret), std::string::npos);
  EXPECT_EQ(seen.find(kSecret.substr(0, 16)), std::string::npos);
  EXPECT_EQ(seen.find(test_blob().substr(0, 16)), std::string::npos);
  EXPECT_EQ(seen.find(test_blob().substr(64, 16)), std::string::npos);
  EXPECT_EQ(seen.find("batch_size"), std::string::npos);
}

// ---- Rank 0 absent, silent, garbled or fake -----------------------------------------------------

TEST_F(Rendezvous, PeerTimesOutWhenRank0NeverComes) {
  DeadPort dead;
  const Outcome got = join(options(1, 2, dead.port, 1s));
  EXPECT_EQ(got.code, ExitCode::kDataUnavailable);
  EXPECT_NE(got.message.find("rank 0 at 127.0.0.1:" + std::to_string(dead.port) +
                             " unreachable within 1.0 s"),
            std::string::npos)
      << got.message;
  EXPECT_NE(got.message.find("Connection refused"), std::string::npos) << got.message;
  EXPECT_EQ(got.message.find("(1 attempts"), std::string::npos) << "no retry: " << got.message;
  EXPECT_GE(got.seconds, 1.0);
  EXPECT_LT(got.seconds, 10.0);
}

TEST_F(Rendezvous, PeerTimesOutWhenRank0IsSilent) {
  // The listener's backlog completes the handshake; nobody ever answers.
  const Outcome got = join(options(1, 2, listener_.port(), 1s));
  EXPECT_EQ(got.code, ExitCode::kDataUnavailable);
  EXPECT_NE(got.message.find("timed out (1.0 s) while waiting for rank 0"), std::string::npos)
      << got.message;
  EXPECT_GE(got.seconds, 1.0);
  EXPECT_LT(got.seconds, 10.0);
}

// Whatever does not authenticate as this Job's rank 0 is exit 3, never 2 (a fake rank 0 must not
// fail the Job) and never an id.
TEST_F(Rendezvous, PeerRejectsGarbledOrFakeAnswers) {
  struct Case {
    std::string challenge;  // "": a real one
    Answer answer;
    std::string says;
  };
  const auto fixed = [](std::string bytes) {
    return [bytes](const std::string&, const std::string&) { return bytes; };
  };
  const auto with_key = [](std::string secret, std::uint16_t type, std::string plaintext) {
    return [=](const std::string& n0, const std::string& n1) {
      return sealed_frame(type, keys_of(secret, n0, n1).answer, plaintext);
    };
  };
  std::string refusal_2;
  put_u32(refusal_2, 2);
  refusal_2 += "go away";
  const std::vector<Case> cases = {
      {"HTTP/1.1 400 Bad Request\r\n\r\n", fixed(""), "not a rendezvous message"},
      {frame(kChallenge, "", 2, 0x7fffffff), fixed(""), "a payload of 2147483647 bytes"},
      {frame(kChallenge, random_string(32), 1), fixed(""), "protocol version 1"},
      {frame(kChallenge, "short"), fixed(""), "malformed challenge"},
      {frame(kWelcome, test_blob()), fixed(""), "malformed challenge (type 3"},
      {"", fixed(frame(kWelcome, test_blob())), "fails authentication"},
      {"", fixed(frame(kWelcome, "", 2, 200) + "short"), "connection closed"},
      {"", fixed(frame(kWelcome, test_blob(), 7)), "protocol version 7"},
      {"", with_key(kOtherSecret, kWelcome, test_blob()), "not this Job's rank 0"},
      {"", with_key(kOtherSecret, kRefused, refusal_2), "fails authentication"},
      {"", fixed(frame(kRefused, refusal_2)), "fails authentication"},
      {"", with_key(kSecret, kHello, test_blob()), "fails authentication"},
      {"", with_key(kSecret, kRefused, "ab"), "empty refusal"},
      {"", fixed(""), "closed the connection after this rank's hello"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.says);
    Listener fake("127.0.0.1", 0);
    auto impostor = fake_rank0(fake, c.answer, c.challenge);
    const Outcome got = join(options(1, 2, fake.port(), 10s));
    impostor.get();
    EXPECT_EQ(got.code, ExitCode::kDataUnavailable) << got.message;
    EXPECT_NE(got.message.find(c.says), std::string::npos) << got.message;
    EXPECT_TRUE(got.blob.empty());
    EXPECT_LT(got.seconds, 8.0);
  }
}

// Rank 0 that holds the secret refuses with its own exit code: 2 reaches the peer as 2, anything
// else as 3.
TEST_F(Rendezvous, AuthenticatedRefusalCarriesItsCode) {
  for (const std::uint32_t code : {2u, 3u, 77u}) {
    SCOPED_TRACE(code);
    std::string plaintext;
    put_u32(plaintext, code);
    plaintext += "no\x01";
    Listener fake("127.0.0.1", 0);
    auto impostor = fake_rank0(fake, [&](const std::string& n0, const std::string& n1) {
      return sealed_frame(kRefused, keys_of(kSecret, n0, n1).answer, plaintext);
    });
    const Outcome got = join(options(1, 2, fake.port(), 10s));
    impostor.get();
    EXPECT_EQ(got.code, code == 2 ? ExitCode::kBadArguments : ExitCode::kDataUnavailable);
    EXPECT_NE(got.message.find("no\\x01"), std::string::npos) << got.message;
  }
}

// An id of the wrong size never reaches NCCL: exit 3 from the peer's check.
TEST_F(Rendezvous, WelcomeWithAnIdOfTheWrongSizeIsExit3) {
  Listener fake("127.0.0.1", 0);
  auto impostor = fake_rank0(fake, [](const std::string& n0, const std::string& n1) {
    return sealed_frame(kWelcome, keys_of(kSecret, n0, n1).answer, test_blob().substr(0, 100));
  });
  RendezvousOptions o = options(1, 2, fake.port(), 10s);
  o.blob_bytes = 128;
  const Outcome got = join(o);
  impostor.get();
  EXPECT_EQ(got.code, ExitCode::kDataUnavailable) << got.message;
  EXPECT_NE(got.message.find("an id of 100 bytes, not 128"), std::string::npos) << got.message;
}

TEST(RendezvousBlob, SizeIsChecked) {
  EXPECT_NO_THROW(check_rendezvous_blob(test_blob(), 128));
  for (const std::size_t size : {0u, 127u, 129u, 4096u}) {
    SCOPED_TRACE(size);
    try {
      check_rendezvous_blob(std::string(size, 'x'), 128);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kDataUnavailable);
      EXPECT_NE(std::string(e.what()).find(std::to_string(size) + " bytes, not 128"),
                std::string::npos);
    }
  }
}

// ---- Stop requests ------------------------------------------------------------------------------

TEST_F(Rendezvous, StopRequestEndsRank0sWait) {
  auto rank0 = std::async(std::launch::async, [&] {
    return serve(listener_, options(0, 3, listener_.port(), 30s), test_blob());
  });
  set_stop_signal_for_testing(SIGTERM);
  const Outcome got = rank0.get();
  EXPECT_EQ(got.code, ExitCode::kTerminated);
  EXPECT_NE(got.message.find("stopped by SIGTERM while rank 0 waited in the rendezvous for 2 of 2"),
            std::string::npos)
      << got.message;
  EXPECT_LT(got.seconds, 10.0);
}

TEST_F(Rendezvous, StopRequestEndsAPeersRetries) {
  DeadPort dead;
  auto peer = join_async(options(1, 2, dead.port, 30s));
  set_stop_signal_for_testing(SIGINT);
  const Outcome got = peer.get();
  EXPECT_EQ(got.code, ExitCode::kInterrupted);
  EXPECT_NE(got.message.find("connecting to rank 0"), std::string::npos) << got.message;
  EXPECT_LT(got.seconds, 10.0);
}

TEST_F(Rendezvous, StopRequestEndsAPeersWaitForTheBlob) {
  auto peer = join_async(options(1, 2, listener_.port(), 30s));  // nobody serves: it waits
  set_stop_signal_for_testing(SIGTERM);
  const Outcome got = peer.get();
  EXPECT_EQ(got.code, ExitCode::kTerminated);
  EXPECT_LT(got.seconds, 10.0);
}

// ---- Addresses, ranks and options ---------------------------------------------------------------

TEST(RendezvousAddress, ParsesHostAndPort) {
  const Endpoint pod = parse_endpoint("mnist-train-0.mnist-train:29400");
  EXPECT_EQ(pod.host, "mnist-train-0.mnist-train");
  EXPECT_EQ(pod.port, 29400);
  const Endpoint v6 = parse_endpoint("[fd00::7]:1");
  EXPECT_EQ(v6.host, "fd00::7");
  EXPECT_EQ(v6.port, 1);
  EXPECT_EQ(to_string(v6), "[fd00::7]:1");
  EXPECT_EQ(to_string(pod), "mnist-train-0.mnist-train:29400");
  for (const char* bad :
       {"", "host", "host:", ":29400", "host:0", "host:65536", "host:-1", "host:29400x",
        "fd00::7:29400", "[]:1", "[fd00::7:1", "a b:1", "host:123456789012"}) {
    SCOPED_TRACE(bad);
    try {
      parse_endpoint(bad);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kBadArguments);
    }
  }
}

TEST(RendezvousAddress, RankComesFromTheIndexedJob) {
  ::unsetenv("JOB_COMPLETION_INDEX");
  EXPECT_EQ(rank_from_environment(1), 0);
  EXPECT_THROW(rank_from_environment(2), Error);
  ::setenv("JOB_COMPLETION_INDEX", "3", 1);
  EXPECT_EQ(rank_from_environment(4), 3);
  for (const char* bad : {"4", "-1", "", "1x", " 1", "99999999999"}) {
    SCOPED_TRACE(bad);
    ::setenv("JOB_COMPLETION_INDEX", bad, 1);
    try {
      rank_from_environment(4);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kBadArguments);
      EXPECT_NE(std::string(e.what()).find("JOB_COMPLETION_INDEX"), std::string::npos);
    }
  }
  ::unsetenv("JOB_COMPLETION_INDEX");
}

TEST(RendezvousAddress, OptionsAreChecked) {
  const auto code_of = [](const RendezvousOptions& o) {
    try {
      validate_rendezvous_options(o);
    } catch (const Error& e) {
      return e.code();
    }
    return ExitCode::kOk;
  };
  EXPECT_EQ(code_of(options(1, 2, 29400)), ExitCode::kOk);
  EXPECT_EQ(code_of(options(2, 2, 29400)), ExitCode::kBadArguments);
  EXPECT_EQ(code_of(options(0, 0, 29400)), ExitCode::kBadArguments);
  EXPECT_EQ(code_of(options(0, kMaxWorldSize + 1, 29400)), ExitCode::kBadArguments);
  EXPECT_EQ(code_of(options(1, 2, 0)), ExitCode::kBadArguments);
  EXPECT_EQ(code_of(options(1, 2, 29400, 0ms)), ExitCode::kBadArguments);
  EXPECT_EQ(code_of(options(1, 2, 29400, 1s, std::string(kMaxRendezvousConfiguration + 1, 'x'))),
            ExitCode::kBadArguments);
  RendezvousOptions no_secret = options(1, 2, 29400);
  no_secret.secret = std::string(kMinRendezvousSecret - 1, 's');
  EXPECT_EQ(code_of(no_secret), ExitCode::kBadArguments);
  no_secret.world_size = 1;
  no_secret.rank = 0;
  EXPECT_EQ(code_of(no_secret), ExitCode::kOk);  // a world of one meets nobody
  RendezvousOptions many_devices = options(1, 2, 29400);
  many_devices.devices = {std::string(kMaxRendezvousDevices + 1, 'd')};
  EXPECT_EQ(code_of(many_devices), ExitCode::kBadArguments);
}

// The secret file as Kubernetes mounts a Secret: a link to a file, mode 0644, a trailing newline
// (kubectl create secret --from-file keeps one).
class SecretFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/rendezvous-secret-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr);
    dir_ = name;
  }
  void TearDown() override { EXPECT_EQ(std::system(("rm -rf " + dir_).c_str()), 0); }
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    ::chmod(path.c_str(), 0644);
    return path;
  }
  static std::string refusal(const std::string& path) {
    try {
      read_rendezvous_secret(path);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kBadArguments);
      return e.what();
    }
    return "accepted";
  }
  std::string dir_;
};

TEST_F(SecretFile, IsReadThroughLinksWithoutItsTrailingNewline) {
  const std::string file = write("..data-secret", kSecret + "\n");
  const std::string link = dir_ + "/secret";
  ASSERT_EQ(::symlink(file.c_str(), link.c_str()), 0);
  EXPECT_EQ(read_rendezvous_secret(link), kSecret);
  EXPECT_EQ(read_rendezvous_secret(write("crlf", kSecret + "\r\n")), kSecret);
  EXPECT_EQ(read_rendezvous_secret(write("binary", std::string(32, '\0'))), std::string(32, '\0'));
}

TEST_F(SecretFile, RefusesWhatIsNoSecretWithoutShowingIt) {
  const std::string short_secret = std::string(31, 'k');
  std::string why = refusal(write("short", short_secret + "\n"));
  EXPECT_NE(why.find("31 bytes, fewer than 32"), std::string::npos) << why;
  EXPECT_NE(why.find("openssl rand -hex 32"), std::string::npos) << why;
  EXPECT_EQ(why.find(short_secret), std::string::npos) << why;
  EXPECT_NE(refusal(write("empty", "\n\n")).find("0 bytes"), std::string::npos);
  EXPECT_NE(refusal(write("big", std::string(kMaxRendezvousSecret + 1, 'k'))).find("larger than"),
            std::string::npos);
  EXPECT_NE(refusal(dir_ + "/missing").find("No such file"), std::string::npos);
  EXPECT_NE(refusal(dir_).find("not a regular file"), std::string::npos);
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(refusal(fifo).find("not a regular file"), std::string::npos);  // and no hang
  EXPECT_NE(refusal(dir_ + "/missing").find(dir_ + "/missing"), std::string::npos);
}

}  // namespace
}  // namespace mnist
