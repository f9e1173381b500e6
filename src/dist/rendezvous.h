// The rendezvous of a run over several processes (a Kubernetes Indexed Job, one pod per rank):
// every process learns its rank and the world size, and rank 0 hands every other rank an opaque
// blob (NCCL's unique id, later) once all of them have come with the same configuration. Only
// the Job's own ranks take part: every rank holds a shared secret (--rendezvous_secret_file, a
// Kubernetes Secret), proves it without sending it, and the blob travels encrypted. Plain POSIX
// TCP and OpenSSL's libcrypto, deadlines everywhere: a peer that never comes, comes twice, or
// comes with another configuration is a clear Error with an exit code, never a hang. Host code
// only; knows no NCCL and no CUDA.
//
// Protocol, version 2 (every integer big-endian). A message is a 12-byte header
//   magic "MNRZ" (4 bytes) | version u16 | type u16 | payload length u32 (at most kMaxPayload)
// and its payload:
//   kChallenge 1  rank 0 -> peer  nonce0 (32 random bytes, fresh for each connection)
//   kHello     2  peer -> rank 0  nonce1 (32 random bytes) | SEAL(hello key; rank u32 |
//                                 world size u32 | devices length u32 | devices | configuration)
//   kWelcome   3  rank 0 -> peer  SEAL(answer key; the blob)
//   kRefused   4  rank 0 -> peer  SEAL(answer key; exit code u32 | reason, printable text)
// SEAL(k; p) is AES-256-GCM: iv (12 random bytes) | ciphertext of p | tag (16 bytes), with the
// message's header as additional authenticated data. Each connection has two keys:
//   hello key  = HMAC-SHA256(secret, "MNRZ2 hello key"  | nonce0 | nonce1)
//   answer key = HMAC-SHA256(secret, "MNRZ2 answer key" | nonce0 | nonce1)
// so a hello that opens proves its sender holds the secret and is fresh (nonce0 is rank 0's,
// new for this connection: a recorded hello never opens again), and an answer that opens proves
// the same of rank 0 (nonce1 is the peer's): the authentication is mutual. The secret never
// crosses the network, and neither the configuration nor the blob does in the clear.
//
// Rank 0 listens on the address --rendezvous names (its host resolved; never every interface)
// and sends a challenge on every connection it accepts. A peer connects (retrying with back-off
// until the deadline: rank 0's pod may start later, or turn it away while busy), reads the
// challenge, sends one kHello and waits for one answer. Rank 0 answers every peer with kWelcome
// once all world_size - 1 of them have said hello, or every authenticated peer with kRefused when
// the rendezvous fails. A peer that disconnects before that frees its rank for a replacement pod.
//
// Strangers. Whatever does not open as a hello of this Job (a port scanner, a stray client, bad
// magic, another protocol version, oversized, truncated, silent, a hello sealed with another
// secret) is dropped without an answer and without ending the rendezvous; rank 0's timeout names
// the first few dropped. Nothing rank 0 knows (its configuration, world size, blob) reaches a
// connection that has not authenticated. Pending connections are bounded: at most
// kMaxPendingPerSource from one source address and kMaxPending in all; at the global bound a new
// connection may only displace a silent one from the source that holds the most (more than one),
// else it is closed: a connection that has sent bytes, or a source's only connection (a real
// peer's), is never displaced.
//
// The Job's own ranks. An authenticated hello with another world size, a rank out of range,
// another configuration (which holds the program's version) or a GPU another rank already uses
// is a misconfigured Job: rank 0 refuses it with the difference and ends the rendezvous for every
// peer (exit 2). An authenticated hello for a rank already held is a replaced pod (the Job creates
// one only once the old pod is gone, whose connection may linger): the newer connection takes the
// rank, the older one is refused with exit 3. Another protocol version (another image) cannot be
// authenticated, so it is dropped like a stranger's bytes: rank 0 times out naming "protocol
// version N" among the dropped (exit 3), and a peer that meets another version exits 3 saying so.
// A peer never exits 2 on bytes that did not authenticate (a fake rank 0 cannot fail the Job).
//
// Exit codes (README's exit-code table; the Job's podFailurePolicy keys on them). No new code: the
// two existing ones already say what a Job should do.
//   kBadArguments (2)     the Job is misconfigured, and a retry would meet the same: an
//                         authenticated peer's configuration, world size or GPU differing from
//                         rank 0's (or clashing), a rank out of range, a missing or short secret,
//                         a --rendezvous host that is not rank 0's own address, a bad
//                         JOB_COMPLETION_INDEX, address or option. The Job fails at once.
//   kDataUnavailable (3)  a dependency did not answer in time, as with an unreachable mirror: a
//                         peer that never came, rank 0 unreachable, silent, garbled or failing
//                         authentication, a connection lost mid-way, a rank taken over by a newer
//                         connection, an id of the wrong size. Pods not yet scheduled, a node lost
//                         or a network hiccup pass on a retry, so the Job counts it towards
//                         backoffLimit.
//   kTerminated (143) / kInterrupted (130)  a stop request while waiting (src/stop.h).
// A peer refused by rank 0 exits with the code rank 0 gives in kRefused (2 or 3; anything else
// reads as 3), so every pod of a misconfigured Job fails with 2, not only rank 0.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mnist {

// Bounds that keep every message small, so hostile input costs rank 0 a few KiB at most.
constexpr std::size_t kMaxRendezvousConfiguration = 4096;  // bytes of a configuration string
constexpr std::size_t kMaxRendezvousDevices = 4096;        // bytes of a rank's device list
constexpr std::size_t kMaxRendezvousBlob = 4096;           // NCCL's unique id is 128 bytes
constexpr int kMaxWorldSize = 4096;
// The shared secret: at least 256 bits of it (`openssl rand -hex 32` gives 64 characters), and a
// file larger than kMaxRendezvousSecret is no secret file.
constexpr std::size_t kMinRendezvousSecret = 32;
constexpr std::size_t kMaxRendezvousSecret = 4096;
// Connections accepted but not yet a peer: from one source address, and in all.
constexpr std::size_t kMaxPendingPerSource = 8;
constexpr std::size_t kMaxPending = 64;

// A file descriptor that closes itself; move-only.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(other.release()) {}
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { reset(); }

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

// Where rank 0 listens: a host name or address and a TCP port.
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
};

// Parses "HOST:PORT" ("mnist-train-0.mnist-train:29400", "10.0.0.7:29400", "[fd00::7]:29400");
// Error(kBadArguments) naming the text when it is anything else or the port is not 1..65535.
Endpoint parse_endpoint(const std::string& text);

// "HOST:PORT", IPv6 addresses in brackets: how errors name an endpoint.
std::string to_string(const Endpoint& endpoint);

// This process's rank in an Indexed Job: JOB_COMPLETION_INDEX, a decimal integer in
// [0, world_size). Unset is rank 0 when world_size is 1; otherwise, like a malformed or
// out-of-range value, Error(kBadArguments).
int rank_from_environment(int world_size);

// The shared secret in the file at `path` (symbolic links followed, as Kubernetes mounts a
// Secret; its permissions are the mount's business): its bytes without trailing newlines.
// Error(kBadArguments) naming the path, never the content, when it cannot be read, is not a
// regular file, holds fewer than kMinRendezvousSecret bytes or more than kMaxRendezvousSecret.
std::string read_rendezvous_secret(const std::string& path);

// Error(kDataUnavailable) unless `blob` holds exactly `bytes` bytes: what a peer checks before
// the id reaches the library that parses it (NCCL's unique id is 128 bytes).
void check_rendezvous_blob(const std::string& blob, std::size_t bytes);

struct RendezvousOptions {
  int rank = 0;
  int world_size = 1;
  Endpoint rank0;             // where rank 0 listens (its port) and the others connect
  std::string configuration;  // what must be identical on every rank (e.g. the training flags)
  std::string secret;         // the Job's shared secret (read_rendezvous_secret), every rank's
  // This rank's devices, each named so that two ranks using one device name it alike (a GPU's
  // PCI bus id and its host): rank 0 refuses a world where two ranks share one.
  std::vector<std::string> devices;
  std::size_t blob_bytes = 0;  // the size every peer checks the blob against; 0: any
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // the whole rendezvous, each rank
};

// Error(kBadArguments) naming the field when an option is out of range (rank, world size, an
// oversized configuration or device list, a secret shorter than kMinRendezvousSecret in a world
// of several, a peer without rank 0's port, a timeout that is not positive).
void validate_rendezvous_options(const RendezvousOptions& options);

// Rank 0's listening socket: bound and listening from construction, so peers that come before
// rank 0 starts waiting queue in the backlog. `host` empty: every interface (IPv6 and IPv4), for
// tests only; otherwise the first address `host` resolves to, and no other. Port 0: an ephemeral
// port (tests). While `host` does not resolve, or resolves to no address of this machine (a
// replaced pod's name still pointing at the old pod), it retries for up to `wait`; then
// Error(kBadArguments) for an address that is not this machine's or a port in use,
// Error(kDataUnavailable) for a name that never resolved.
class Listener {
 public:
  Listener(const std::string& host, std::uint16_t port,
           std::chrono::milliseconds wait = std::chrono::milliseconds::zero());
  std::uint16_t port() const { return port_; }
  int fd() const { return socket_.fd(); }

 private:
  Socket socket_;
  std::uint16_t port_ = 0;
};

// Rank 0: waits for every other rank's hello on `listener`, checks each, then hands each `blob`.
// Throws (see the exit codes above) when a peer is refused, one is missing at the deadline, or a
// stop is requested; every authenticated peer is told why before it returns.
void serve_rendezvous(Listener& listener, const RendezvousOptions& options,
                      const std::string& blob);

// Ranks 1..world_size-1: connects to rank 0, proves the secret, says hello, returns the blob rank
// 0 hands out (checked against options.blob_bytes).
std::string join_rendezvous(const RendezvousOptions& options);

// Either side, by options.rank: rank 0 listens at options.rank0 (its host resolved, that address
// only) and hands out `blob` (returned as is); the others return what rank 0 handed out. A world
// of one returns `blob` without touching the network.
std::string rendezvous(const RendezvousOptions& options, const std::string& blob);

}  // namespace mnist
