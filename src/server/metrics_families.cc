// The server's metric families (docs/metrics.md lists them; a test checks
// the two agree). Each collector reads counters that their owners keep with
// relaxed atomics; none of this runs on a command's path.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/allocator.h"
#include "common/version.h"
#include "server/server.h"

namespace levee::server {
namespace {

using observe::Family;
using observe::Labels;
using observe::SampleWriter;
using observe::Type;

Family Simple(std::string name, std::string help, Type type, std::function<double()> read) {
  return Family{std::move(name), std::move(help), type, {},
                [read = std::move(read)](SampleWriter& w) { w.Value({}, read()); }};
}

struct ProcStat {
  double cpu_seconds = 0, start_seconds = 0, virtual_bytes = 0, resident_bytes = 0;
};

ProcStat ReadProcStat() {
  ProcStat p;
  std::ifstream f("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return p;
  std::istringstream rest(all.substr(close + 2));
  std::vector<std::string> fld((std::istream_iterator<std::string>(rest)), std::istream_iterator<std::string>());
  // Fields after the command name, 0-based from "state" (field 3 in proc(5)).
  if (fld.size() < 22) return p;
  double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  p.cpu_seconds = (std::stod(fld[11]) + std::stod(fld[12])) / tck;
  p.virtual_bytes = std::stod(fld[20]);
  p.resident_bytes = std::stod(fld[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
  std::ifstream up("/proc/uptime");
  double uptime = 0;
  up >> uptime;
  double boot = static_cast<double>(std::time(nullptr)) - uptime;
  p.start_seconds = boot + std::stod(fld[19]) / tck;
  return p;
}

double OpenFds() {
  double n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) n++;
    closedir(d);
    n -= 3;  // ".", ".." and the directory's own descriptor
  }
  return n;
}

// Rows of LevelDB's "leveldb.stats": level, files, size MB, time s, read MB, write MB.
std::vector<std::array<double, 6>> LevelStats(const storage::Engine& engine) {
  std::vector<std::array<double, 6>> rows;
  std::istringstream in(engine.Property("leveldb.stats"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream cols(line);
    std::array<double, 6> r;
    if (cols >> r[0] >> r[1] >> r[2] >> r[3] >> r[4] >> r[5]) rows.push_back(r);
  }
  return rows;
}

}  // namespace

void Server::RegisterMetrics() {
  auto& reg = registry_;
  auto open = [this] { return data_open_.load(std::memory_order_acquire); };

  reg.Register(Family{"levee_build_info", "levee's version; the value is always 1.", Type::kGauge, {},
                      [](SampleWriter& w) { w.Value({{"version", kVersion}}, 1); }});

  // Commands.
  auto per_command = [this](auto value) {
    return [this, value](SampleWriter& w) {
      for (const auto& [name, spec] : table_.all()) {
        const observe::CommandCell& c = command_stats_->cell(spec.id);
        if (c.calls.load(std::memory_order_relaxed) == 0 && c.rejected.load(std::memory_order_relaxed) == 0) continue;
        value(w, Labels{{"command", name}}, c);
      }
    };
  };
  reg.Register(Family{"levee_commands_total", "Commands executed, by command (refused ones not included).",
                      Type::kCounter, {},
                      per_command([](SampleWriter& w, const Labels& l, const observe::CommandCell& c) {
                        w.Value(l, static_cast<double>(c.calls.load(std::memory_order_relaxed)));
                      })});
  reg.Register(Family{"levee_command_errors_total",
                      "Commands that replied an error, or were refused before running (wrong arity, not "
                      "authenticated), by command.",
                      Type::kCounter, {},
                      per_command([](SampleWriter& w, const Labels& l, const observe::CommandCell& c) {
                        w.Value(l, static_cast<double>(c.failed.load(std::memory_order_relaxed) +
                                                       c.rejected.load(std::memory_order_relaxed)));
                      })});
  reg.Register(Family{"levee_command_duration_seconds",
                      "Time executing a command, by command; for writes, excluding the wait for the group "
                      "commit (see levee_write_commit_duration_seconds).",
                      Type::kHistogram, observe::LatencyBounds(),
                      per_command([](SampleWriter& w, const Labels& l, const observe::CommandCell& c) {
                        w.Histogram(l, c.latency.Snapshot());
                      })});
  reg.Register(Family{"levee_error_replies_total", "Error replies sent, by error code (the reply's first word).",
                      Type::kCounter, {}, [this](SampleWriter& w) {
                        for (const auto& [code, n] : command_stats_->Errors()) {
                          w.Value({{"code", code}}, static_cast<double>(n));
                        }
                      }});

  // Clients and network.
  reg.Register(Simple("levee_connected_clients", "Client connections open now.", Type::kGauge,
                      [this] { return static_cast<double>(connected_.load()); }));
  reg.Register(Simple("levee_connections_received_total", "Client connections accepted or refused.",
                      Type::kCounter, [this] { return static_cast<double>(stats_.connections_received.load()); }));
  reg.Register(Simple("levee_rejected_connections_total", "Connections refused because maxclients was reached.",
                      Type::kCounter, [this] { return static_cast<double>(stats_.rejected_connections.load()); }));
  reg.Register(Simple("levee_denied_connections_total",
                      "Connections refused by protected mode (no password, client not on loopback).", Type::kCounter,
                      [this] { return static_cast<double>(stats_.denied_connections.load()); }));
  reg.Register(Simple("levee_auth_failures_total", "AUTH and HELLO AUTH attempts with a wrong password or user.",
                      Type::kCounter, [this] { return static_cast<double>(stats_.auth_failures.load()); }));
  reg.Register(Family{"levee_client_disconnects_total",
                      "Clients closed by levee, by reason: protocol_error, output_buffer_limit, query_buffer_limit.",
                      Type::kCounter, {}, [this](SampleWriter& w) {
                        w.Value({{"reason", "protocol_error"}}, static_cast<double>(stats_.protocol_errors.load()));
                        w.Value({{"reason", "output_buffer_limit"}},
                                static_cast<double>(stats_.output_limit_disconnects.load()));
                        w.Value({{"reason", "query_buffer_limit"}},
                                static_cast<double>(stats_.query_limit_disconnects.load()));
                      }});
  reg.Register(Simple("levee_net_input_bytes_total", "Bytes read from clients.", Type::kCounter,
                      [this] { return static_cast<double>(stats_.net_input_bytes.load()); }));
  reg.Register(Simple("levee_net_output_bytes_total", "Bytes written to clients.", Type::kCounter,
                      [this] { return static_cast<double>(stats_.net_output_bytes.load()); }));

  // Writer and log.
  auto writer_hist = [this, open](auto member) {
    return [this, open, member](SampleWriter& w) {
      if (open()) w.Histogram({}, (writer_->stats().*member).Snapshot());
    };
  };
  reg.Register(Family{"levee_write_groups_total", "Groups the writer thread committed.", Type::kCounter, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(writer_->stats().groups.load()));
                      }});
  reg.Register(Family{"levee_write_group_commands", "Commands per committed group (group commit size).",
                      Type::kHistogram, {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096},
                      writer_hist(&write::WriterStats::group_commands)});
  reg.Register(Family{"levee_write_commit_duration_seconds",
                      "Time to commit a group: log append, fsync (fsync always) and the LevelDB write.",
                      Type::kHistogram, observe::LatencyBounds(), writer_hist(&write::WriterStats::commit_seconds)});
  reg.Register(Family{"levee_wal_fsync_duration_seconds", "Time of each fsync of the write-ahead log.",
                      Type::kHistogram, observe::LatencyBounds(), writer_hist(&write::WriterStats::fsync_seconds)});
  reg.Register(Family{"levee_write_queue_jobs", "Write jobs waiting for the writer thread.", Type::kGauge, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(writer_->queued()));
                      }});
  reg.Register(Family{"levee_writer_failed",
                      "1 when writes are refused after a log fsync or LevelDB write failure (until restart).",
                      Type::kGauge, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, writer_->failure().empty() ? 0 : 1);
                      }});
  reg.Register(Family{"levee_wal_records_total", "Records appended to the write-ahead log.", Type::kCounter, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(writer_->stats().records.load()));
                      }});
  reg.Register(Family{"levee_wal_written_bytes_total", "Bytes appended to the write-ahead log.", Type::kCounter, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(writer_->stats().log_bytes.load()));
                      }});
  reg.Register(Family{"levee_wal_segments", "Write-ahead log segment files kept.", Type::kGauge, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(log_->Segments().size()));
                      }});
  reg.Register(Family{"levee_wal_bytes", "Bytes in write-ahead log segment files kept.", Type::kGauge, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(log_->total_bytes()));
                      }});
  reg.Register(Family{"levee_applied_sequence", "Log sequence of the last write applied to LevelDB.",
                      Type::kGauge, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->applied_sequence()));
                      }});

  // Keys.
  reg.Register(Family{"levee_keys",
                      "Keys stored: exact, kept with every write; includes keys whose expiry has passed but that "
                      "the expirer has not removed yet.",
                      Type::kGauge, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->key_count()));
                      }});
  reg.Register(Family{"levee_keys_with_expiry", "Keys that carry an expiry time.", Type::kGauge, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->expires_count()));
                      }});
  reg.Register(Simple("levee_expired_keys_total", "Keys deleted by the background expirer.", Type::kCounter,
                      [this] { return static_cast<double>(stats_.expired_keys.load()); }));

  // LevelDB.
  auto levels = [this, open](int column, double scale) {
    return [this, open, column, scale](SampleWriter& w) {
      if (!open()) return;
      for (const auto& r : LevelStats(*engine_)) {
        w.Value({{"level", std::to_string(static_cast<int>(r[0]))}}, r[column] * scale);
      }
    };
  };
  reg.Register(Family{"levee_leveldb_files", "LevelDB table files, by level.", Type::kGauge, {}, levels(1, 1)});
  reg.Register(Simple("levee_storage_corruption_errors_total",
                      "Damaged data LevelDB reported to reads and compactions since start (INFO levee names the file).",
                      Type::kCounter, [this] { return static_cast<double>(engine_->corruption().count()); }));
  reg.Register(Simple("levee_storage_corruption_marked",
                      "1 while the data directory is marked damaged (by this run or an earlier one) and no `levee "
                      "check` has passed since.",
                      Type::kGauge, [this] { return engine_->corruption().marked() ? 1.0 : 0.0; }));
  reg.Register(Family{"levee_leveldb_bytes", "Bytes in LevelDB table files, by level.", Type::kGauge, {},
                      levels(2, 1048576)});
  reg.Register(Family{"levee_leveldb_compaction_seconds_total", "Time LevelDB spent compacting into each level.",
                      Type::kCounter, {}, levels(3, 1)});
  reg.Register(Family{"levee_leveldb_compaction_read_bytes_total", "Bytes LevelDB compactions read, by level.",
                      Type::kCounter, {}, levels(4, 1048576)});
  reg.Register(Family{"levee_leveldb_compaction_written_bytes_total", "Bytes LevelDB compactions wrote, by level.",
                      Type::kCounter, {}, levels(5, 1048576)});
  reg.Register(Family{"levee_leveldb_write_stalls_total",
                      "LevelDB writes that took 1 ms or more: LevelDB slows or stops writes while compaction is "
                      "behind.",
                      Type::kCounter, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->write_stalls()));
                      }});
  reg.Register(Family{"levee_blob_bytes", "Bytes in blob files (values of blob-min-bytes or more).", Type::kGauge, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->blobs()->Stats().bytes));
                      }});
  reg.Register(Family{"levee_blob_garbage_bytes",
                      "Estimated bytes of dead records (overwritten or deleted values) in blob files.", Type::kGauge,
                      {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->blobs()->Stats().garbage));
                      }});
  reg.Register(Family{"levee_blob_files", "Blob files.", Type::kGauge, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->blobs()->Stats().files));
                      }});
  reg.Register(Family{"levee_blob_gc_reclaimed_bytes_total", "Bytes of blob files removed by the collector.",
                      Type::kCounter, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(blob_gc_->stats().bytes_reclaimed.load()));
                      }});
  reg.Register(Family{"levee_blob_gc_relocated_bytes_total",
                      "Bytes of live values the collector copied forward out of mostly-dead blob files.",
                      Type::kCounter, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(blob_gc_->stats().bytes_relocated.load()));
                      }});
  // The blob value cache, one family per BlobStats field.
  auto blob_cache = [&](const char* name, const char* help, Type type, uint64_t storage::BlobStats::*field) {
    reg.Register(Family{name, help, type, {}, [this, open, field](SampleWriter& w) {
                          if (open()) w.Value({}, static_cast<double>(engine_->blobs()->Stats().*field));
                        }});
  };
  blob_cache("levee_blob_cache_capacity_bytes", "Capacity of the blob value cache (blob-cache-mb).", Type::kGauge,
             &storage::BlobStats::cache_capacity);
  blob_cache("levee_blob_cache_bytes", "Bytes held in the blob value cache.", Type::kGauge,
             &storage::BlobStats::cache_bytes);
  blob_cache("levee_blob_cache_hits_total", "Reads of blob values answered from the value cache.", Type::kCounter,
             &storage::BlobStats::cache_hits);
  blob_cache("levee_blob_cache_misses_total", "Reads of blob values that went to a blob file.", Type::kCounter,
             &storage::BlobStats::cache_misses);
  // The row cache (storage/row_cache.h); zeros when it is off.
  auto row_cache = [&](const char* name, const char* help, Type type, auto value) {
    reg.Register(Family{name, help, type, {}, [this, open, value](SampleWriter& w) {
                          if (!open()) return;
                          const storage::RowCache* rows = engine_->rows();
                          w.Value({}, rows ? static_cast<double>(value(*rows)) : 0.0);
                        }});
  };
  row_cache("levee_row_cache_capacity_bytes", "Capacity of the row cache (row-cache-mb).", Type::kGauge,
            [](const storage::RowCache& r) { return r.capacity(); });
  row_cache("levee_row_cache_bytes", "Bytes held in the row cache.", Type::kGauge,
            [](const storage::RowCache& r) { return r.bytes(); });
  row_cache("levee_row_cache_hits_total", "Key lookups answered from the row cache.", Type::kCounter,
            [](const storage::RowCache& r) { return r.hits(); });
  // The key filter (storage/key_filter.h); zeros when it is off.
  auto key_filter = [&](const char* name, const char* help, Type type, auto value) {
    reg.Register(Family{name, help, type, {}, [this, open, value](SampleWriter& w) {
                          if (!open()) return;
                          const storage::KeyFilter* f = engine_->key_filter();
                          w.Value({}, f ? static_cast<double>(value(*f)) : 0.0);
                        }});
  };
  key_filter("levee_key_filter_ready", "1 when the key filter's scan has completed and it answers lookups.",
             Type::kGauge, [](const storage::KeyFilter& f) { return f.ready() ? 1 : 0; });
  key_filter("levee_key_filter_bytes", "Memory of the key filter (and of a scan underway).", Type::kGauge,
             [](const storage::KeyFilter& f) { return f.bytes(); });
  key_filter("levee_key_filter_absent_total", "Lookups the key filter answered as absent, without LevelDB.",
             Type::kCounter, [](const storage::KeyFilter& f) { return f.absent_answers(); });
  key_filter("levee_key_filter_scans_total", "Key filter scans completed (one at start, then one per rebuild).",
             Type::kCounter, [](const storage::KeyFilter& f) { return f.scans_completed(); });
  row_cache("levee_row_cache_misses_total", "Key lookups that went to LevelDB (absent keys included).",
            Type::kCounter, [](const storage::RowCache& r) { return r.misses(); });
  reg.Register(Family{"levee_leveldb_block_cache_hits_total", "LevelDB block cache lookups that hit.",
                      Type::kCounter, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->block_cache_hits()));
                      }});
  reg.Register(Family{"levee_leveldb_block_cache_misses_total", "LevelDB block cache lookups that missed.",
                      Type::kCounter, {}, [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->block_cache_misses()));
                      }});
  reg.Register(Family{"levee_leveldb_block_cache_bytes", "Bytes held in the LevelDB block cache.", Type::kGauge, {},
                      [this, open](SampleWriter& w) {
                        if (open()) w.Value({}, static_cast<double>(engine_->block_cache_bytes()));
                      }});
  reg.Register(Family{"levee_leveldb_memory_bytes", "LevelDB's estimate of its memory use (memtables, caches).",
                      Type::kGauge, {}, [this, open](SampleWriter& w) {
                        if (!open()) return;
                        std::string v = engine_->Property("leveldb.approximate-memory-usage");
                        if (!v.empty()) w.Value({}, std::stod(v));
                      }});

  reg.Register(Family{"levee_allocator_bytes",
                      "The memory allocator's own counts (jemalloc): state=allocated (handed to levee), active "
                      "(pages with live allocations), resident (kept in memory by the allocator).",
                      Type::kGauge, {}, [](SampleWriter& w) {
                        const AllocatorStats a = ReadAllocatorStats();
                        if (!a.known) return;
                        w.Value({{"state", "allocated"}}, static_cast<double>(a.allocated));
                        w.Value({{"state", "active"}}, static_cast<double>(a.active));
                        w.Value({{"state", "resident"}}, static_cast<double>(a.resident));
                      }});

  // Readiness, and the standard process metrics.
  reg.Register(Simple("levee_ready", "1 when the data is open and the log replayed (as GET /readyz).",
                      Type::kGauge, [this] { return ready_.load() ? 1.0 : 0.0; }));
  reg.Register(Simple("process_cpu_seconds_total", "User and system CPU time of the process.", Type::kCounter,
                      [] { return ReadProcStat().cpu_seconds; }));
  reg.Register(Simple("process_resident_memory_bytes", "Resident memory of the process.", Type::kGauge,
                      [] { return ReadProcStat().resident_bytes; }));
  reg.Register(Simple("process_virtual_memory_bytes", "Virtual memory of the process.", Type::kGauge,
                      [] { return ReadProcStat().virtual_bytes; }));
  reg.Register(Simple("process_start_time_seconds", "Start time of the process, seconds since the Unix epoch.",
                      Type::kGauge, [] { return ReadProcStat().start_seconds; }));
  reg.Register(Simple("process_open_fds", "Open file descriptors.", Type::kGauge, [] { return OpenFds(); }));
  reg.Register(Simple("process_max_fds", "Limit on open file descriptors.", Type::kGauge, [] {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    return static_cast<double>(rl.rlim_cur);
  }));
}

}  // namespace levee::server
