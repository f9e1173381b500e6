// The multi-process rendezvous (src/dist/rendezvous.h) over loopback: ranks as threads and as
// forked processes, every failure its header promises (a missing peer, another configuration, a
// rank claimed twice or out of range, rank 0 absent, silent or garbled, a stop request), and stray
// clients that must neither crash rank 0 nor end its rendezvous. The protocol's bytes are written
// here from the header's description, not with the library's encoder, so the two are checked
// against each other. Timeouts are 1-2 s where a test waits for one, 10-30 s where it must not.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <future>
#include <string>
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

// ---- Raw bytes, as the header describes them --------------------------------------------------

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

// A message: "MNRZ", version, type, payload length (the payload's unless `length` says otherwise).
std::string frame(std::uint16_t type, const std::string& payload, std::uint16_t version = 1,
                  std::int64_t length = -1) {
  std::string out = "MNRZ";
  put_u16(out, version);
  put_u16(out, type);
  put_u32(out, static_cast<std::uint32_t>(length >= 0 ? length : std::int64_t(payload.size())));
  return out + payload;
}

std::string hello(std::uint32_t rank, std::uint32_t world, const std::string& configuration) {
  std::string payload;
  put_u32(payload, rank);
  put_u32(payload, world);
  return frame(1, payload + configuration);
}

// A blocking loopback connection, as a stray client makes one.
Socket raw_connect(std::uint16_t port) {
  Socket s(::socket(AF_INET, SOCK_STREAM, 0));
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

// Rank 0 impostor: accepts one connection on `listener`, reads the whole hello, sends `answer` and
// ends its side, then waits for the peer to hang up (so the answer is never cut short by a reset).
std::future<void> fake_rank0(Listener& listener, std::string answer) {
  return std::async(std::launch::async, [&listener, answer] {
    pollfd entry{listener.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&entry, 1, 10000), 1);
    Socket s(::accept(listener.fd(), nullptr, nullptr));
    ASSERT_TRUE(s.valid());
    std::string header(12, '\0');
    ASSERT_EQ(::recv(s.fd(), header.data(), 12, MSG_WAITALL), 12);
    std::string payload(get_u32(header, 8), '\0');
    ASSERT_EQ(::recv(s.fd(), payload.data(), payload.size(), MSG_WAITALL),
              static_cast<ssize_t>(payload.size()));
    raw_send(s, answer);
    ::shutdown(s.fd(), SHUT_WR);
    read_until_closed(s);
  });
}

class Rendezvous : public ::testing::Test {
 protected:
  void TearDown() override { set_stop_signal_for_testing(0); }
  Listener listener_{"127.0.0.1", 0};
};

// ---- Success ------------------------------------------------------------------------------------

TEST_F(Rendezvous, WorldOfOneNeedsNoPeer) {
  RendezvousOptions o = options(0, 1, 0);
  o.rank0 = {"", 0};
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
      peers.push_back(join_async(options(rank, world, listener.port())));
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

// rendezvous() as a pod calls it: rank 0 listens on every interface (IPv6 "::" taking IPv4 too,
// or IPv4 alone where IPv6 is off) at the port of the address the peers are given.
TEST_F(Rendezvous, TopLevelCallListensOnEveryInterface) {
  std::uint16_t port = 0;
  {
    const DeadPort free_port;  // a port nobody holds once this closes it
    port = free_port.port;
  }
  auto rank1 = std::async(std::launch::async, [port] {
    return outcome_of([port] { return rendezvous(options(1, 2, port), ""); });
  });
  const Outcome rank0 = outcome_of([port] { return rendezvous(options(0, 2, port), test_blob()); });
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  EXPECT_EQ(rank0.blob, test_blob());
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
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

// ---- Rank 0 refuses ---------------------------------------------------------------------------

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

// A rank claimed twice: in an Indexed Job, a lost pod's connection outliving it while its
// replacement comes; a retry passes, so exit 3 everywhere.
TEST_F(Rendezvous, DuplicateRankFailsEveryone) {
  auto first = join_async(options(1, 3, listener_.port()));
  auto second = join_async(options(1, 3, listener_.port()));
  const Outcome rank0 = serve(listener_, options(0, 3, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kDataUnavailable);
  EXPECT_NE(rank0.message.find("rank 1 is held by 127.0.0.1:"), std::string::npos) << rank0.message;
  // One is refused, the other told the rendezvous was aborted: both exit 3, neither hangs.
  for (auto* peer : {&first, &second}) {
    const Outcome got = peer->get();
    EXPECT_EQ(got.code, ExitCode::kDataUnavailable) << got.message;
    EXPECT_NE(got.message.find("rank 1 is held by"), std::string::npos) << got.message;
    EXPECT_LT(got.seconds, 15.0);
  }
}

TEST_F(Rendezvous, RankOutOfRangeIsRefused) {
  for (const std::uint32_t rank : {0u, 2u, 0xffffffffu}) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    Listener listener("127.0.0.1", 0);
    const Socket stray = raw_connect(listener.port());
    raw_send(stray, hello(rank, 2, kConfiguration));
    const Outcome rank0 = serve(listener, options(0, 2, listener.port()), test_blob());
    EXPECT_EQ(rank0.code, ExitCode::kBadArguments);
    EXPECT_NE(rank0.message.find("out of range, peers are ranks 1..1"), std::string::npos)
        << rank0.message;
    // The refusal, as the header describes it: type 3, exit code 2, a reason.
    const std::string answer = read_until_closed(stray);
    ASSERT_GE(answer.size(), 16u);
    EXPECT_EQ(answer.substr(0, 4), "MNRZ");
    EXPECT_EQ(get_u32(answer, 4), (1u << 16) | 3u);  // version 1, type kRefused
    EXPECT_EQ(get_u32(answer, 8), answer.size() - 12);
    EXPECT_EQ(get_u32(answer, 12), 2u);
    EXPECT_NE(answer.find("out of range"), std::string::npos);
  }
}

TEST_F(Rendezvous, OtherProtocolVersionIsRefused) {
  const Socket stray = raw_connect(listener_.port());
  raw_send(stray, frame(1, std::string(8, '\0'), 2));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kBadArguments);
  EXPECT_NE(rank0.message.find("protocol version 2, this binary's is 1"), std::string::npos)
      << rank0.message;
}

// ---- Stray and hostile clients at rank 0 -------------------------------------------------------

// Input that is not a hello is dropped and counted; it never ends the rendezvous.
TEST_F(Rendezvous, Rank0DropsMalformedConnectionsAndNamesThem) {
  std::vector<Socket> strays;
  const std::vector<std::string> inputs = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",        // not the protocol
      frame(1, "", 1, 0xffffffffLL),              // 4 GiB payload announced
      hello(1, 2, kConfiguration).substr(0, 20),  // truncated, then closed
      frame(1, "abc"),                            // a hello too short to hold ranks
      frame(9, "x"),                              // unknown type
      frame(2, test_blob()),                      // a welcome, sent to rank 0
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
  // Every stray was closed (none got an answer: rank 0 speaks only to peers).
  for (const auto& stray : strays) EXPECT_EQ(read_until_closed(stray), "");
}

TEST_F(Rendezvous, StraysDoNotStopPeersJoining) {
  std::vector<Socket> strays;
  for (int i = 0; i < 70; ++i) strays.push_back(raw_connect(listener_.port()));  // silent flood
  raw_send(strays[0], std::string(1 << 20, 'x'));  // a megabyte of junk: rank 0 reads 12 bytes
  raw_send(strays[1], hello(1, 2, kConfiguration).substr(0, 30));  // stalls mid-hello
  auto rank1 = join_async(options(1, 2, listener_.port()));
  const Outcome rank0 = serve(listener_, options(0, 2, listener_.port()), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kOk) << rank0.message;
  const Outcome got = rank1.get();
  EXPECT_EQ(got.code, ExitCode::kOk) << got.message;
  EXPECT_EQ(got.blob, test_blob());
}

// A peer that leaves before the rendezvous completes frees its rank (a replacement pod may come).
TEST_F(Rendezvous, PeerThatLeavesIsNotCounted) {
  {
    const Socket leaver = raw_connect(listener_.port());
    raw_send(leaver, hello(1, 3, kConfiguration));
  }
  const Outcome rank0 = serve(listener_, options(0, 3, listener_.port(), 1500ms), test_blob());
  EXPECT_EQ(rank0.code, ExitCode::kDataUnavailable);
  EXPECT_NE(rank0.message.find("2 of 2 peers (ranks 1, 2) did not join"), std::string::npos)
      << rank0.message;
  EXPECT_NE(rank0.message.find("left before the rendezvous completed"), std::string::npos)
      << rank0.message;
}

// ---- Rank 0 absent, silent or garbled -----------------------------------------------------------

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

TEST_F(Rendezvous, PeerRejectsGarbledAnswers) {
  struct Case {
    std::string answer;
    ExitCode code;
    std::string says;
  };
  std::string refused_payload;
  put_u32(refused_payload, 77);  // not a code rank 0 sends: read as 3
  const std::vector<Case> cases = {
      {"HTTP/1.1 400 Bad Request\r\n\r\n", ExitCode::kDataUnavailable, "not a rendezvous message"},
      {frame(2, "", 1, 0x7fffffff), ExitCode::kDataUnavailable, "a payload of 2147483647 bytes"},
      {frame(2, "", 1, 200) + "short", ExitCode::kDataUnavailable, "connection closed"},
      {frame(2, test_blob(), 7), ExitCode::kBadArguments, "protocol version 7"},
      {frame(3, "ab"), ExitCode::kDataUnavailable, "malformed message"},
      {frame(3, refused_payload + "go away\x01"), ExitCode::kDataUnavailable, "go away\\x01"},
      {frame(1, "hello?"), ExitCode::kDataUnavailable, "malformed message (type 1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.says);
    Listener fake("127.0.0.1", 0);
    auto impostor = fake_rank0(fake, c.answer);
    const Outcome got = join(options(1, 2, fake.port(), 10s));
    impostor.get();
    EXPECT_EQ(got.code, c.code) << got.message;
    EXPECT_NE(got.message.find(c.says), std::string::npos) << got.message;
    EXPECT_LT(got.seconds, 8.0);
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
}

}  // namespace
}  // namespace mnist
