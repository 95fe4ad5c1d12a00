// UDP sockets for the probe and reflector on Linux (issue 14). Node's dgram exposes neither
// socket options nor ancillary data; this does, and nothing more: DSCP marks (IP_TOS /
// IPV6_TCLASS, per socket or per datagram), the class each datagram arrived with
// (IP_RECVTOS / IPV6_RECVTCLASS), the kernel's receive time (SO_TIMESTAMPNS), and batches
// (recvmmsg / sendmmsg). Readiness comes from a uv_poll on each descriptor in Node's own loop (no
// threads). Datagrams and their metadata live in typed arrays that JavaScript allocates once and
// reads in place: no allocation per datagram. All measuring logic stays in TypeScript.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <cerrno>
#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <ctime>
#include <future>
#include <mutex>
#include <netinet/in.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

// Layout shared with agent/net/native-udp.ts.
constexpr int SLOT_BYTES = 2048;  // larger than any message (1500 B): longer ones are truncated
// socket id, length, source port, TOS (-1 unknown), arrival ms, the socket's receive-queue drops
// so far (SO_RXQ_OVFL; -1 unknown)
constexpr int RX_META = 6;
// socket id, length, destination port (0: connected), TOS (-1: socket's), the receive slot this
// answers (-1: none; on a wildcard socket the reply then leaves from the address it was sent to)
constexpr int TX_META = 5;
constexpr int ADDR_BYTES = 16;    // IPv6 address, or IPv4 in the first 4 bytes
constexpr int MAX_BATCHES_PER_WAKE = 16;
// Scheduled-send ring (agent/net/native-udp.ts): socket id, length, TOS (-1: the socket's), due ms
// (CLOCK_REALTIME), the datagram's offset in the data area, and — written by the sender thread —
// the time it was handed to the kernel (-1 if the kernel refused it).
constexpr int SCHED_META = 6;
constexpr int SCHED_DUE = 3;
constexpr int SCHED_OFFSET = 4;
constexpr int SCHED_SENT = 5;
constexpr int MAX_SCHED_BATCH = 64;
// The sender thread wakes early by the timer's recent least lateness, at most this (a spin's CPU).
constexpr double MAX_WAKE_LEAD_MS = 0.2;
constexpr size_t WAKE_HISTORY = 64;
// The fair scheduler's shortest slice (sched_setattr clamps sched_runtime to 0.1–100 ms).
constexpr uint64_t SHORT_SLICE_NS = 100000;

// struct sched_attr of sched_setattr(2), which glibc 2.36 does not declare.
struct SchedAttr {
  uint32_t size;
  uint32_t policy;
  uint64_t flags;
  int32_t nice;
  uint32_t priority;
  uint64_t runtime_ns;
  uint64_t deadline_ns;
  uint64_t period_ns;
};

double RealtimeMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Napi::Error ErrnoError(Napi::Env env, const char* what, int err) {
  const char* name = strerrorname_np(err);
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, name ? name : "EIO"));
  return e;
}

// Fills a sockaddr from (family, 16 address bytes, port); returns its length.
socklen_t ToSockaddr(int family, const uint8_t* addr, int port, sockaddr_storage* out) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(out);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    memcpy(&a->sin_addr, addr, 4);
    return sizeof *a;
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(out);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  memcpy(&a->sin6_addr, addr, 16);
  return sizeof *a;
}

bool ParseAddress(int family, const std::string& text, uint8_t* out) {
  memset(out, 0, ADDR_BYTES);
  return inet_pton(family, text.c_str(), out) == 1;
}

class UdpSet;

struct Socket {
  UdpSet* owner;
  int id;
  int fd;
  int family;
  bool drops_counted;  // SO_RXQ_OVFL on: no drop count on a datagram means none yet
  bool pktinfo;        // bound to the wildcard address: each datagram's destination is read
  uv_poll_t poll;
};

// Where a received datagram was sent to (IP_PKTINFO / IPV6_PKTINFO), to answer from there.
struct Destination {
  bool known;
  bool v4;  // IPv4 socket: addr's first 4 bytes; else IPv6 (or IPv4-mapped)
  uint8_t addr[16];
  int ifindex;
};

class UdpSet : public Napi::ObjectWrap<UdpSet> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = DefineClass(env, "UdpSet",
                                     {InstanceMethod("open", &UdpSet::Open),
                                      InstanceMethod("connect", &UdpSet::Connect),
                                      InstanceMethod("localPort", &UdpSet::LocalPort),
                                      InstanceMethod("setTos", &UdpSet::SetTos),
                                      InstanceMethod("send", &UdpSet::Send),
                                      InstanceMethod("startSender", &UdpSet::StartSender),
                                      InstanceMethod("enqueue", &UdpSet::Enqueue),
                                      InstanceMethod("sentCount", &UdpSet::SentCount),
                                      InstanceMethod("stopSender", &UdpSet::StopSender),
                                      InstanceMethod("close", &UdpSet::Close)});
    exports.Set("UdpSet", cls);
    exports.Set("nowMs", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                  return Napi::Number::New(info.Env(), RealtimeMs());
                }));
    exports.Set("SLOT_BYTES", Napi::Number::New(env, SLOT_BYTES));
    exports.Set("RX_META", Napi::Number::New(env, RX_META));
    exports.Set("TX_META", Napi::Number::New(env, TX_META));
    exports.Set("ADDR_BYTES", Napi::Number::New(env, ADDR_BYTES));
    exports.Set("SCHED_META", Napi::Number::New(env, SCHED_META));
    return exports;
  }

  // new UdpSet(slots, rxData: Uint8Array, rxMeta: Float64Array, rxAddr: Uint8Array,
  //            txData: Uint8Array, txMeta: Float64Array, txAddr: Uint8Array, onReceive(count))
  explicit UdpSet(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpSet>(info) {
    Napi::Env env = info.Env();
    slots_ = info[0].As<Napi::Number>().Int32Value();
    if (slots_ < 1 || slots_ > 1024 || !Take(info, 1, SLOT_BYTES, rx_data_) || !TakeF(info, 2, RX_META, rx_meta_) ||
        !Take(info, 3, ADDR_BYTES, rx_addr_) || !Take(info, 4, SLOT_BYTES, tx_data_) ||
        !TakeF(info, 5, TX_META, tx_meta_) || !Take(info, 6, ADDR_BYTES, tx_addr_) || !info[7].IsFunction()) {
      Napi::TypeError::New(env, "UdpSet: bad buffers").ThrowAsJavaScriptException();
      return;
    }
    on_receive_ = Napi::Persistent(info[7].As<Napi::Function>());
    loop_ = nullptr;
    napi_get_uv_event_loop(env, &loop_);
    rx_msgs_.resize(slots_);
    rx_iov_.resize(slots_);
    rx_names_.resize(slots_);
    rx_control_.resize(slots_ * CONTROL_BYTES);
    rx_dst_.resize(slots_);
    tx_msgs_.resize(slots_);
    tx_iov_.resize(slots_);
    tx_names_.resize(slots_);
    tx_control_.resize(slots_ * CONTROL_BYTES);
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  }

  ~UdpSet() override {
    napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
    StopThread();
    for (Socket* s : sockets_)
      if (s) Release(s);
  }

 private:
  static constexpr int CONTROL_BYTES = 192;  // stamp, class, destination and drop count fit

  // The environment goes away (process exit, worker end) before this object may be collected.
  static void OnEnvCleanup(void* self) { static_cast<UdpSet*>(self)->StopThread(); }

  bool Take(const Napi::CallbackInfo& info, int i, int stride, uint8_t*& out) {
    if (!info[i].IsTypedArray()) return false;
    auto a = info[i].As<Napi::Uint8Array>();
    if (a.TypedArrayType() != napi_uint8_array || a.ElementLength() < size_t(slots_) * stride) return false;
    refs_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    out = a.Data();
    return true;
  }
  bool TakeF(const Napi::CallbackInfo& info, int i, int stride, double*& out) {
    if (!info[i].IsTypedArray()) return false;
    auto a = info[i].As<Napi::Float64Array>();
    if (a.TypedArrayType() != napi_float64_array || a.ElementLength() < size_t(slots_) * stride) return false;
    refs_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    out = a.Data();
    return true;
  }

  Socket* Get(const Napi::CallbackInfo& info, int i) {
    int id = info[i].As<Napi::Number>().Int32Value();
    if (id < 0 || size_t(id) >= sockets_.size() || !sockets_[id]) {
      Napi::Error::New(info.Env(), "UdpSet: no such socket").ThrowAsJavaScriptException();
      return nullptr;
    }
    return sockets_[id];
  }

  // open(family 4|6, address, port) -> id. Marks readable on arrival and kernel receive times on.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int family = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
    std::string host = info[1].As<Napi::String>().Utf8Value();
    int port = info[2].As<Napi::Number>().Int32Value();
    uint8_t addr[ADDR_BYTES];
    if (!ParseAddress(family, host, addr)) {
      Napi::Error e = Napi::Error::New(env, "not an IP address: " + host);
      e.Set("code", Napi::String::New(env, "EINVAL"));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ErrnoError(env, "socket", errno).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int on = 1;
    // Failures here are not fatal: the datagram then carries no stamp/class and JS says so.
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &on, sizeof on);  // also for IPv4-mapped on IPv6 sockets
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &on, sizeof on);
    // A deep queue rides out a starved process: past rmem_max with CAP_NET_ADMIN, else what is allowed.
    int rcvbuf = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    // What overflowed the queue anyway: the socket's drop count rides on the next datagram.
    bool drops_counted = setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on) == 0;
    // A wildcard socket learns each datagram's destination address, so that its reply can leave
    // from it (on a multi-homed host the kernel's own choice may be another address).
    bool wildcard = true;
    for (int i = 0; i < ADDR_BYTES; i++) wildcard = wildcard && addr[i] == 0;
    bool pktinfo = wildcard && (family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on)
                                                  : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on)) == 0;
    sockaddr_storage sa;
    socklen_t len = ToSockaddr(family, addr, port, &sa);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) < 0) {
      int err = errno;
      close(fd);
      ErrnoError(env, "bind", err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto* s = new Socket{this, int(sockets_.size()), fd, family, drops_counted, pktinfo, {}};
    uv_poll_init(loop_, &s->poll, fd);
    s->poll.data = s;
    uv_poll_start(&s->poll, UV_READABLE, OnReadable);
    {
      std::lock_guard<std::mutex> lock(mu_);  // the sender thread reads sockets_
      sockets_.push_back(s);
    }
    Ref();  // alive while a socket is open
    return Napi::Number::New(env, s->id);
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Socket* s = Get(info, 0);
    if (!s) return env.Undefined();
    uint8_t addr[ADDR_BYTES];
    if (!ParseAddress(s->family, info[1].As<Napi::String>().Utf8Value(), addr)) {
      Napi::Error::New(env, "connect: not an address of the socket's family").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    sockaddr_storage sa;
    socklen_t len = ToSockaddr(s->family, addr, info[2].As<Napi::Number>().Int32Value(), &sa);
    if (connect(s->fd, reinterpret_cast<sockaddr*>(&sa), len) < 0)
      ErrnoError(env, "connect", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  Napi::Value LocalPort(const Napi::CallbackInfo& info) {
    Socket* s = Get(info, 0);
    if (!s) return info.Env().Undefined();
    sockaddr_storage sa;
    socklen_t len = sizeof sa;
    getsockname(s->fd, reinterpret_cast<sockaddr*>(&sa), &len);
    int port = sa.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&sa)->sin_port)
                                       : ntohs(reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port);
    return Napi::Number::New(info.Env(), port);
  }

  // setTos(id, tos): the class of everything the socket sends without a per-datagram TOS.
  Napi::Value SetTos(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Socket* s = Get(info, 0);
    if (!s) return env.Undefined();
    int tos = info[1].As<Napi::Number>().Int32Value();
    int rc = setsockopt(s->fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    if (s->family == AF_INET6) rc = setsockopt(s->fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
    if (rc < 0) ErrnoError(env, "setsockopt", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // send(count): the first `count` tx slots, each run of slots for one socket in one sendmmsg.
  // Returns how many the kernel took; a refused datagram (no route, ICMP error) is skipped.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    int count = info[0].As<Napi::Number>().Int32Value();
    if (count > slots_) count = slots_;
    int accepted = 0;
    int i = 0;
    while (i < count) {
      int id = int(tx_meta_[i * TX_META]);
      if (id < 0 || size_t(id) >= sockets_.size() || !sockets_[id]) {
        i++;
        continue;
      }
      Socket* s = sockets_[id];
      int n = 0;
      for (; i + n < count && int(tx_meta_[(i + n) * TX_META]) == id; n++) Prepare(s, i + n, n);
      int done = 0;
      while (done < n) {
        int r = sendmmsg(s->fd, tx_msgs_.data() + done, n - done, MSG_DONTWAIT);
        if (r > 0) {
          done += r;
          accepted += r;
        } else if (r < 0 && errno == EINTR) {
          continue;
        } else {
          done++;  // this datagram was refused: count it sent and lost
        }
      }
      i += n;
    }
    return Napi::Number::New(info.Env(), accepted);
  }

  // Fills tx_msgs_[k] from tx slot `slot`.
  void Prepare(Socket* s, int slot, int k) {
    const double* m = tx_meta_ + slot * TX_META;
    int answers = int(m[4]);
    const Destination* from = s->pktinfo && answers >= 0 && answers < slots_ ? &rx_dst_[answers] : nullptr;
    FillMessage(s->family, tx_data_ + size_t(slot) * SLOT_BYTES, int(m[1]), SLOT_BYTES, tx_addr_ + slot * ADDR_BYTES,
                int(m[2]), int(m[3]), from, tx_msgs_[k], tx_iov_[k], tx_names_[k], tx_control_.data() + k * CONTROL_BYTES);
  }

  // One outgoing message: `length` bytes of `data` to (addr, port) — port 0: the connected peer —
  // with TOS `tos` (-1: the socket's own), from the address `from` when given.
  static void FillMessage(int family, uint8_t* data, int length, int max_length, const uint8_t* addr, int port, int tos,
                          const Destination* from, mmsghdr& msg, iovec& iov, sockaddr_storage& name, uint8_t* control) {
    if (length < 0) length = 0;
    if (length > max_length) length = max_length;
    msghdr& h = msg.msg_hdr;
    memset(&h, 0, sizeof h);
    iov = {data, size_t(length)};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    bool v4 = family == AF_INET || (addr && IN6_IS_ADDR_V4MAPPED(reinterpret_cast<const in6_addr*>(addr)));
    if (port > 0) {
      h.msg_name = &name;
      h.msg_namelen = ToSockaddr(family, addr, port, &name);
    }
    size_t used = 0;
    auto add = [&](int level, int type, const void* value, size_t size) {
      auto* c = reinterpret_cast<cmsghdr*>(control + used);
      c->cmsg_level = level;
      c->cmsg_type = type;
      c->cmsg_len = CMSG_LEN(size);
      memcpy(CMSG_DATA(c), value, size);
      used += CMSG_SPACE(size);
    };
    // Per-datagram class: IP_TOS for IPv4 (and IPv4-mapped), IPV6_TCLASS for IPv6.
    if (tos >= 0) add(v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_TOS : IPV6_TCLASS, &tos, sizeof tos);
    if (from && from->known) {
      // The source address (the interface is the route's, except for an IPv6 link-local address).
      if (from->v4) {
        in_pktinfo p{};
        memcpy(&p.ipi_spec_dst, from->addr, 4);
        add(IPPROTO_IP, IP_PKTINFO, &p, sizeof p);
      } else {
        in6_pktinfo p{};
        memcpy(&p.ipi6_addr, from->addr, 16);
        if (IN6_IS_ADDR_LINKLOCAL(&p.ipi6_addr)) p.ipi6_ifindex = from->ifindex;
        add(IPPROTO_IPV6, IPV6_PKTINFO, &p, sizeof p);
      }
    }
    h.msg_control = used ? control : nullptr;
    h.msg_controllen = used;
    msg.msg_len = 0;
  }

  // startSender(data: Uint8Array, meta: Float64Array, slots) -> its scheduling: the scheduled-send ring
  // (entry k's SCHED_META fields at meta[k·SCHED_META], its datagram in `data` at its offset) and
  // the thread that sends each entry at its due time.
  Napi::Value StartSender(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int slots = info[2].As<Napi::Number>().Int32Value();
    if (sender_.joinable() || slots < 1 || slots > 65536 || !info[0].IsTypedArray() || !info[1].IsTypedArray()) {
      Napi::TypeError::New(env, "startSender: bad ring").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto data = info[0].As<Napi::Uint8Array>();
    auto meta = info[1].As<Napi::Float64Array>();
    if (data.TypedArrayType() != napi_uint8_array || meta.TypedArrayType() != napi_float64_array || meta.ElementLength() < size_t(slots) * SCHED_META) {
      Napi::TypeError::New(env, "startSender: bad ring").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    refs_.push_back(Napi::Persistent(info[0].As<Napi::Object>()));
    refs_.push_back(Napi::Persistent(info[1].As<Napi::Object>()));
    sched_data_ = data.Data();
    sched_meta_ = meta.Data();
    sched_slots_ = slots;
    sched_data_bytes_ = data.ElementLength();
    sched_head_.store(0);
    sched_tail_.store(0);
    sched_stop_ = false;
    sx_msgs_.resize(MAX_SCHED_BATCH);
    sx_iov_.resize(MAX_SCHED_BATCH);
    sx_names_.resize(MAX_SCHED_BATCH);
    sx_control_.resize(MAX_SCHED_BATCH * CONTROL_BYTES);
    std::promise<const char*> scheduling;
    auto taken = scheduling.get_future();
    sender_ = std::thread([this, &scheduling] {
      scheduling.set_value(TakeScheduling());
      SenderLoop();
    });
    return Napi::String::New(env, taken.get());
  }

  // The sender thread's name and scheduling, set by the thread itself: "fifo" — the lowest real-time
  // priority where allowed (root, CAP_SYS_NICE, or RLIMIT_RTPRIO ≥ 1: systemd's LimitRTPRIO=1), or
  // one level above a real-time process's own (chrt), whose event loop at the same priority would
  // otherwise hold the CPU past a due time; "short-slice" — else, as an ordinary user, a 0.1 ms
  // slice from the fair scheduler (sched_setattr's sched_runtime, Linux ≥ 6.12), so that its
  // wake-ups preempt what runs then instead of waiting out that task's slice; "fair" — neither.
  // On a busy host a sleeping thread otherwise waits for a CPU after its due time; this one runs
  // for microseconds per due time.
  static const char* TakeScheduling() {
    pthread_setname_np(pthread_self(), "voipready-send");  // as top -H and /proc show it
    int policy;
    sched_param param{};
    pthread_getschedparam(pthread_self(), &policy, &param);
    if (policy == SCHED_FIFO || policy == SCHED_RR) {
      if (param.sched_priority < sched_get_priority_max(policy)) {
        param.sched_priority++;
        pthread_setschedparam(pthread_self(), policy, &param);
      }
      return "fifo";
    }
    param.sched_priority = 1;
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0) return "fifo";
    SchedAttr attr{};
    attr.size = sizeof attr;
    attr.policy = SCHED_OTHER;
    attr.runtime_ns = SHORT_SLICE_NS;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) return "fair";
    // Kernels before 6.12 accept and ignore sched_runtime for fair tasks: read it back.
    SchedAttr now{};
    if (syscall(SYS_sched_getattr, 0, &now, sizeof now, 0) != 0 || now.runtime_ns != SHORT_SLICE_NS) return "fair";
    return "short-slice";
  }

  // enqueue(count): the next `count` ring slots (after those enqueued before) are written and due
  // no earlier than any enqueued before them.
  Napi::Value Enqueue(const Napi::CallbackInfo& info) {
    int count = info[0].As<Napi::Number>().Int32Value();
    uint64_t tail = sched_tail_.load(std::memory_order_relaxed);  // only this thread writes it
    if (!sender_.joinable() || count < 0 || tail + count - sched_head_.load() > uint64_t(sched_slots_)) {
      Napi::Error::New(info.Env(), "enqueue: the ring holds fewer free slots").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    sched_tail_.store(tail + count);  // publishes the entries written before
    if (sched_idle_.load()) Wake();
    return info.Env().Undefined();
  }

  // sentCount() -> how many enqueued entries the thread has handled (their SCHED_SENT is final).
  Napi::Value SentCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(sched_head_.load()));
  }

  Napi::Value StopSender(const Napi::CallbackInfo& info) {
    StopThread();
    return info.Env().Undefined();
  }

  void StopThread() {
    if (!sender_.joinable()) return;
    sched_stop_.store(true);
    Wake();
    sender_.join();
  }

  // The event loop and the sender thread share the ring without a lock (one writes the tail, the
  // other the head), so the thread never waits for an event loop that was preempted holding one.
  // It sleeps on a futex: Wake() bumps the word and wakes it; a wait for a word that has changed
  // since the thread looked returns at once, so no wake is lost.
  void Wake() {
    wake_word_.fetch_add(1);
    syscall(SYS_futex, &wake_word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  // Sleeps while the word is `seen`, until woken or CLOCK_REALTIME `untilMs` (< 0: no limit);
  // whether the time limit ended it.
  bool SleepUnless(uint32_t seen, double untilMs) {
    timespec at{};
    if (untilMs >= 0) {
      at.tv_sec = time_t(untilMs / 1e3);
      at.tv_nsec = long((untilMs - at.tv_sec * 1e3) * 1e6);
    }
    long r = syscall(SYS_futex, &wake_word_, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, seen,
                     untilMs >= 0 ? &at : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
    return r != 0 && errno == ETIMEDOUT;
  }

  double* SchedMeta(uint64_t entry) { return sched_meta_ + (entry % sched_slots_) * SCHED_META; }

  // The sender thread: waits for the head entry's due time (a futex wait with an absolute
  // CLOCK_REALTIME deadline — the same hrtimer as clock_nanosleep(TIMER_ABSTIME) — so that stop
  // wakes it at once), then sends every entry that is due. 1 ns of timer slack instead of 50 µs.
  // The timer fires late by a floor the host sets (≈ 0.08 ms in this project's VMs): the thread
  // asks to wake that much early — the least lateness of its recent wake-ups — and spins the rest.
  void SenderLoop() {
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    while (!sched_stop_.load()) {
      uint32_t seen = wake_word_.load();
      uint64_t head = sched_head_.load(std::memory_order_relaxed);  // only this thread writes it
      if (head == sched_tail_.load()) {
        sched_idle_.store(true);
        if (head == sched_tail_.load() && !sched_stop_.load()) SleepUnless(seen, -1);
        sched_idle_.store(false);
        continue;
      }
      double due = SchedMeta(head)[SCHED_DUE];
      double now = RealtimeMs();
      double wake = due - WakeLeadMs();
      if (wake > now) {
        if (SleepUnless(seen, wake)) NoteWakeLateness(RealtimeMs() - wake);
        continue;
      }
      // Spin the rest, at most MAX_WAKE_LEAD_MS — unless CLOCK_REALTIME is stepped back meanwhile
      // (NTP, an operator): then sleep again rather than spin at real-time priority for the step.
      while (now < due && due - now <= MAX_WAKE_LEAD_MS) now = RealtimeMs();
      if (now < due) continue;
      SendDue();
    }
  }

  // The least lateness of the last WAKE_HISTORY timed wake-ups, at most MAX_WAKE_LEAD_MS.
  double WakeLeadMs() const {
    double least = MAX_WAKE_LEAD_MS;
    for (double l : wake_lateness_) least = std::min(least, l);
    return least;
  }
  void NoteWakeLateness(double ms) { wake_lateness_[wake_count_++ % WAKE_HISTORY] = std::max(0.0, ms); }

  // Sends the entries due now (runs of one socket in one sendmmsg), each stamped with the clock
  // just before its system call. Holds mu_, so no socket closes meanwhile (the event loop takes it
  // only to open and close sockets).
  void SendDue() {
    std::lock_guard<std::mutex> lock(mu_);
    double now = RealtimeMs();
    uint64_t head = sched_head_.load(std::memory_order_relaxed);
    uint64_t tail = sched_tail_.load();
    int n = 0;
    while (head + n < tail && n < MAX_SCHED_BATCH && SchedMeta(head + n)[SCHED_DUE] <= now) n++;
    int i = 0;
    while (i < n) {
      double* m = SchedMeta(head + i);
      int id = int(m[0]);
      Socket* s = id >= 0 && size_t(id) < sockets_.size() ? sockets_[id] : nullptr;
      if (!s) {
        m[SCHED_SENT] = -1;
        i++;
        continue;
      }
      int run = 0;
      for (; i + run < n && int(SchedMeta(head + i + run)[0]) == id; run++) {
        const double* e = SchedMeta(head + i + run);
        size_t offset = e[SCHED_OFFSET] >= 0 ? size_t(e[SCHED_OFFSET]) : sched_data_bytes_;
        int room = offset < sched_data_bytes_ ? int(std::min(sched_data_bytes_ - offset, size_t(SLOT_BYTES))) : 0;
        FillMessage(s->family, sched_data_ + offset, int(e[1]), room, nullptr, 0, int(e[2]), nullptr, sx_msgs_[run], sx_iov_[run],
                    sx_names_[run], sx_control_.data() + run * CONTROL_BYTES);
      }
      int done = 0;
      while (done < run) {
        double t = RealtimeMs();
        int r = sendmmsg(s->fd, sx_msgs_.data() + done, run - done, MSG_DONTWAIT);
        if (r > 0) {
          for (int k = done; k < done + r; k++) SchedMeta(head + i + k)[SCHED_SENT] = t;
          done += r;
        } else if (r < 0 && errno == EINTR) {
          continue;
        } else {
          SchedMeta(head + i + done)[SCHED_SENT] = -1;  // refused: sent and lost
          done++;
        }
      }
      i += run;
    }
    sched_head_.store(head + n);  // publishes their SCHED_SENT
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Socket* s = Get(info, 0);
    if (s) {
      std::lock_guard<std::mutex> lock(mu_);  // not while the sender thread uses the descriptor
      sockets_[s->id] = nullptr;
      Release(s);
      Unref();
    }
    return info.Env().Undefined();
  }

  static void Release(Socket* s) {
    uv_poll_stop(&s->poll);
    close(s->fd);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
  }

  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* s = static_cast<Socket*>(handle->data);
    s->owner->Drain(s);
  }

  // Reads batches until the queue is empty (or a bound, so one flood cannot starve the loop),
  // handing each batch to JavaScript.
  void Drain(Socket* s) {
    Napi::Env env = Env();
    for (int batch = 0; batch < MAX_BATCHES_PER_WAKE && sockets_[s->id] == s; batch++) {
      for (int k = 0; k < slots_; k++) {
        rx_iov_[k] = {rx_data_ + size_t(k) * SLOT_BYTES, SLOT_BYTES};
        msghdr& h = rx_msgs_[k].msg_hdr;
        h.msg_name = &rx_names_[k];
        h.msg_namelen = sizeof rx_names_[k];
        h.msg_iov = &rx_iov_[k];
        h.msg_iovlen = 1;
        h.msg_control = rx_control_.data() + k * CONTROL_BYTES;
        h.msg_controllen = CONTROL_BYTES;
        h.msg_flags = 0;
      }
      int n = recvmmsg(s->fd, rx_msgs_.data(), slots_, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        // ICMP errors on a connected socket surface once each: read on past them.
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH || errno == EINTR) continue;
        return;
      }
      if (n == 0) return;
      double fallbackMs = -1;
      for (int k = 0; k < n; k++) {
        double* m = rx_meta_ + k * RX_META;
        const msghdr& h = rx_msgs_[k].msg_hdr;
        m[0] = s->id;
        m[1] = rx_msgs_[k].msg_len;
        m[3] = -1;
        m[4] = -1;
        m[5] = s->drops_counted ? 0 : -1;
        Destination& dst = rx_dst_[k];
        dst.known = false;
        uint8_t* addr = rx_addr_ + k * ADDR_BYTES;
        const sockaddr* sa = static_cast<const sockaddr*>(h.msg_name);
        if (sa->sa_family == AF_INET) {
          auto* a = reinterpret_cast<const sockaddr_in*>(sa);
          memset(addr, 0, ADDR_BYTES);
          memcpy(addr, &a->sin_addr, 4);
          m[2] = ntohs(a->sin_port);
        } else {
          auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
          memcpy(addr, &a->sin6_addr, 16);
          m[2] = ntohs(a->sin6_port);
        }
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            m[4] = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
          } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
            m[3] = *CMSG_DATA(c);
          } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
            int tclass;
            memcpy(&tclass, CMSG_DATA(c), sizeof tclass);
            m[3] = tclass & 0xff;
          } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t drops;
            memcpy(&drops, CMSG_DATA(c), sizeof drops);
            m[5] = drops;
          } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            in_pktinfo p;
            memcpy(&p, CMSG_DATA(c), sizeof p);
            dst = {true, true, {}, p.ipi_ifindex};
            memcpy(dst.addr, &p.ipi_addr, 4);
          } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            in6_pktinfo p;
            memcpy(&p, CMSG_DATA(c), sizeof p);
            dst = {true, false, {}, int(p.ipi6_ifindex)};
            memcpy(dst.addr, &p.ipi6_addr, 16);
          }
        }
        if (m[4] < 0) {
          if (fallbackMs < 0) fallbackMs = RealtimeMs();
          m[4] = fallbackMs;
        }
      }
      Napi::HandleScope scope(env);
      on_receive_.MakeCallback(Value(), {Napi::Number::New(env, n)});
      if (env.IsExceptionPending()) {
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
        return;
      }
      if (n < slots_) return;
    }
  }

  int slots_ = 0;
  uv_loop_t* loop_ = nullptr;
  uint8_t* rx_data_ = nullptr;
  double* rx_meta_ = nullptr;
  uint8_t* rx_addr_ = nullptr;
  uint8_t* tx_data_ = nullptr;
  double* tx_meta_ = nullptr;
  uint8_t* tx_addr_ = nullptr;
  std::vector<Napi::ObjectReference> refs_;
  Napi::FunctionReference on_receive_;
  std::vector<Socket*> sockets_;
  std::vector<mmsghdr> rx_msgs_, tx_msgs_;
  std::vector<iovec> rx_iov_, tx_iov_;
  std::vector<sockaddr_storage> rx_names_, tx_names_;
  std::vector<uint8_t> rx_control_, tx_control_;
  std::vector<Destination> rx_dst_;
  // The scheduled-send ring and its thread; head/tail count entries ever enqueued/handled.
  std::mutex mu_;
  std::thread sender_;
  uint8_t* sched_data_ = nullptr;
  double* sched_meta_ = nullptr;
  int sched_slots_ = 0;
  size_t sched_data_bytes_ = 0;
  std::atomic<uint64_t> sched_head_{0};
  std::atomic<uint64_t> sched_tail_{0};
  std::atomic<bool> sched_idle_{false};
  std::atomic<uint32_t> wake_word_{0};
  // Sender thread only: how late its recent timed wake-ups were (all 0 until WAKE_HISTORY are seen).
  std::array<double, WAKE_HISTORY> wake_lateness_{};
  uint64_t wake_count_ = 0;
  std::atomic<bool> sched_stop_{false};
  std::vector<mmsghdr> sx_msgs_;
  std::vector<iovec> sx_iov_;
  std::vector<sockaddr_storage> sx_names_;
  std::vector<uint8_t> sx_control_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) { return UdpSet::Init(env, exports); }

}  // namespace

NODE_API_MODULE(voipready_udp, Init)
