// The state of one client connection as the commands see it (ClientState),
// and the registry of open connections (CLIENT LIST/KILL, WATCH).
//
// Threads: a ClientState is changed by its connection's io thread, and by
// the writer while the connection waits for it (the hand-off through the
// writer's queue orders the two); other threads read it under mu or through
// its atomics. ClientRegistry: any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace levee::commands {

struct Spec;

// State a layer above commands keeps on a client (replication's handshake):
// owned by the client, read and written only by that layer.
struct ClientAttachment {
  virtual ~ClientAttachment() = default;
};

// Per-connection state. The owning io thread changes it; other threads (CLIENT
// LIST, the writer during EXEC) read it under mu or through atomics. While a
// connection waits for the writer, the writer may change it: the hand-off
// through the writer's queue orders the accesses.
struct ClientState {
  uint64_t id = 0;
  std::string addr, laddr;
  bool local = false;  // connected from a loopback address (server/connection.h IsLoopback)
  int64_t created_ms = 0;
  std::atomic<int64_t> last_active_ms{0};
  std::atomic<int> protocol{2};
  std::atomic<bool> authenticated{false};
  bool auth_failed = false;  // set by a failed AUTH/HELLO AUTH; the io layer then pauses the connection
  std::atomic<bool> close_after_reply{false};
  std::atomic<size_t> qbuf{0}, omem{0};
  std::atomic<uint64_t> commands{0};

  mutable std::mutex mu;
  std::string name;     // guarded by mu
  std::string lib_name, lib_ver;  // CLIENT SETINFO; guarded by mu
  std::atomic<const Spec*> last_cmd{nullptr};  // for CLIENT LIST; specs live as long as the table

  // MULTI state (io thread, or the writer while it runs EXEC).
  std::atomic<bool> in_multi{false};        // atomic: CLIENT LIST reads it from other threads
  bool multi_error = false;                 // a command failed to queue: EXEC aborts
  std::vector<std::vector<std::string>> queued;
  std::atomic<size_t> queued_count{0};      // queued.size(), for CLIENT LIST
  std::set<std::string> watched;
  std::atomic<bool> watch_dirty{false};

  // Closes the connection from any thread (set by the io layer).
  std::function<void()> kill;
  // Queues out-of-band bytes (a pub/sub message) for the client, from any
  // thread (set by the io layer).
  std::function<void(const std::string&)> deliver;

  // Pub/sub subscriptions; the sets are guarded by PubSub's lock, the counts
  // are readable anywhere (CLIENT LIST, CLIENT KILL TYPE pubsub).
  std::set<std::string> channels, patterns;
  std::atomic<size_t> sub_count{0}, psub_count{0};
  bool subscribed() const { return sub_count.load() + psub_count.load() > 0; }

  // Replication (writer thread while a job runs): the sequence of this
  // client's last logged write, for WAIT; a WAIT the writer must hold.
  uint64_t last_write_sequence = 0;
  bool in_exec = false;
  bool wait_pending = false;
  int64_t wait_replicas = 0, wait_timeout_ms = 0;
  // A replica's handshake (REPLCONF before PSYNC), kept by replication
  // (repl/handshake.h); its io thread only.
  std::unique_ptr<ClientAttachment> replica_handshake;
  // Set by PSYNC: the io layer hands the socket (and any input not yet
  // parsed) to replication once the replies before it are written.
  std::function<void(int fd, std::string unparsed)> handoff;
};

class ClientRegistry {
 public:
  void Add(const std::shared_ptr<ClientState>& c);
  void Remove(uint64_t id);
  std::vector<std::shared_ptr<ClientState>> Snapshot() const;
  size_t size() const;

  // WATCH bookkeeping: a write to a watched key makes its watchers' EXEC fail.
  void Watch(const std::shared_ptr<ClientState>& c, const std::string& key);
  void UnwatchAll(ClientState* c);
  void TouchKey(std::string_view key);
  void TouchAll();
  bool any_watched() const { return watched_count_.load(std::memory_order_acquire) > 0; }

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<ClientState>> clients_;
  std::map<std::string, std::vector<std::weak_ptr<ClientState>>, std::less<>> watches_;
  std::atomic<size_t> watched_count_{0};
};

}  // namespace levee::commands
