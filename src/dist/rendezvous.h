// The rendezvous of a run over several processes (a Kubernetes Indexed Job, one pod per rank):
// every process learns its rank and the world size, and rank 0 hands every other rank an opaque
// blob (NCCL's unique id, later) once all of them have come with the same configuration. Plain
// POSIX TCP, deadlines everywhere: a peer that never comes, comes twice, or comes with another
// configuration is a clear Error with an exit code, never a hang. Host code only; knows no NCCL.
//
// Protocol, version 1 (every integer big-endian). A message is a 12-byte header
//   magic "MNRZ" (4 bytes) | version u16 | type u16 | payload length u32 (at most kMaxPayload)
// and its payload:
//   kHello    peer -> rank 0  rank u32 | world size u32 | configuration (the rest)
//   kWelcome  rank 0 -> peer  the blob (the rest)
//   kRefused  rank 0 -> peer  exit code u32 | reason (the rest, printable text)
// A peer connects (retrying with back-off until the deadline: rank 0's pod may start later), sends
// one kHello and waits for one answer. Rank 0 answers every peer with kWelcome once all
// world_size - 1 of them have said hello, or every connected peer with kRefused when the
// rendezvous fails. A peer that disconnects before that frees its rank for a replacement pod.
// Input rank 0 cannot read as a hello (a port scanner, a stray client: bad magic, oversized,
// truncated, silent) is dropped without ending the rendezvous; a timeout names what was dropped.
//
// Exit codes (README's table; the Job's podFailurePolicy keys on them). No new code: the two
// existing ones already say what a Job should do.
//   kBadArguments (2)     the Job is misconfigured, and a retry would meet the same: a
//                         configuration or world size differing from rank 0's, a rank out of
//                         range, another protocol version (another image), a bad
//                         JOB_COMPLETION_INDEX, address or option. The Job fails at once.
//   kDataUnavailable (3)  a dependency did not answer in time, as with an unreachable mirror: a
//                         peer that never came, rank 0 unreachable or silent, a connection lost or
//                         garbled mid-way, a rank claimed while a lost pod's connection still
//                         holds it. Pods not yet scheduled, a node lost or a network
//                         hiccup pass on a retry, so the Job counts it towards backoffLimit.
//   kTerminated (143) / kInterrupted (130)  a stop request while waiting (src/stop.h).
// A peer refused by rank 0 exits with the code rank 0 gives in kRefused (2 or 3; anything else
// reads as 3), so every pod of a misconfigured Job fails with 2, not only rank 0.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mnist {

// Bounds that keep every message small, so hostile input costs rank 0 a few KiB at most.
constexpr std::size_t kMaxRendezvousConfiguration = 4096;  // bytes of a configuration string
constexpr std::size_t kMaxRendezvousBlob = 4096;           // NCCL's unique id is 128 bytes
constexpr int kMaxWorldSize = 4096;

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

struct RendezvousOptions {
  int rank = 0;
  int world_size = 1;
  Endpoint rank0;             // where rank 0 listens (its port) and the others connect
  std::string configuration;  // what must be identical on every rank (e.g. the training flags)
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // the whole rendezvous, each rank
};

// Error(kBadArguments) naming the field when an option is out of range (rank, world size, an
// oversized configuration, a peer without rank 0's port, a timeout that is not positive).
void validate_rendezvous_options(const RendezvousOptions& options);

// Rank 0's listening socket: bound and listening from construction, so peers that come before
// rank 0 starts waiting queue in the backlog. `host` empty: every interface (IPv6 and IPv4);
// port 0: an ephemeral port (tests). Error(kBadArguments) when it cannot bind (port in use).
class Listener {
 public:
  Listener(const std::string& host, std::uint16_t port);
  std::uint16_t port() const { return port_; }
  int fd() const { return socket_.fd(); }

 private:
  Socket socket_;
  std::uint16_t port_ = 0;
};

// Rank 0: waits for every other rank's hello on `listener`, checks each, then hands each `blob`.
// Throws (see the exit codes above) when a peer is refused, one is missing at the deadline, or a
// stop is requested; every connected peer is told why before it returns.
void serve_rendezvous(Listener& listener, const RendezvousOptions& options,
                      const std::string& blob);

// Ranks 1..world_size-1: connects to rank 0, says hello, returns the blob rank 0 hands out.
std::string join_rendezvous(const RendezvousOptions& options);

// Either side, by options.rank: rank 0 listens on every interface at options.rank0.port and hands
// out `blob` (returned as is); the others return what rank 0 handed out. A world of one returns
// `blob` without touching the network.
std::string rendezvous(const RendezvousOptions& options, const std::string& blob);

}  // namespace mnist
