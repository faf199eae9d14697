// INFO: sections and field names as Redis users and tools (redis_exporter,
// Sentinel) read them, plus levee's own section.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/allocator.h"
#include "common/clock.h"
#include "common/version.h"
#include "observe/command_stats.h"
#include "server/server.h"

namespace levee::server {
namespace fs = std::filesystem;
namespace {


uint64_t ResidentBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string Human(uint64_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30)) std::snprintf(buf, sizeof(buf), "%.2fG", bytes / double(1ull << 30));
  else if (bytes >= (1ull << 20)) std::snprintf(buf, sizeof(buf), "%.2fM", bytes / double(1ull << 20));
  else if (bytes >= 1024) std::snprintf(buf, sizeof(buf), "%.2fK", bytes / 1024.0);
  else std::snprintf(buf, sizeof(buf), "%lluB", static_cast<unsigned long long>(bytes));
  return buf;
}

}  // namespace

std::string Server::Info(const std::vector<std::string>& req) {
  static const std::vector<std::string> kDefault = {"server", "clients", "memory", "persistence", "stats",
                                                    "replication", "cpu", "keyspace", "levee"};
  std::vector<std::string> sections;
  if (req.empty() || (req.size() == 1 && req[0] == "default")) {
    sections = kDefault;
  } else if (req.size() == 1 && (req[0] == "all" || req[0] == "everything")) {
    sections = kDefault;
    sections.push_back("commandstats");
    sections.push_back("errorstats");
  } else {
    sections = req;
  }
  std::string out;
  for (const auto& s : sections) {
    std::string body = InfoSection(s);
    if (body.empty()) continue;
    if (!out.empty()) out += "\r\n";
    out += body;
  }
  return out;
}

std::string Server::InfoSection(const std::string& name) {
  auto line = [](std::string& o, const std::string& k, const auto& v) {
    o += k;
    o += ':';
    if constexpr (std::is_convertible_v<decltype(v), std::string>) o += v;
    else o += std::to_string(v);
    o += "\r\n";
  };
  std::string o;
  int64_t now = NowMs();
  if (name == "server") {
    o = "# Server\r\n";
    line(o, "redis_version", std::string("7.0.0"));
    line(o, "levee_version", std::string(kVersion));
    line(o, "redis_mode", std::string("standalone"));
    line(o, "os", std::string("Linux"));
    line(o, "arch_bits", 64);
    line(o, "process_id", static_cast<int64_t>(getpid()));
    line(o, "run_id", run_id_);
    line(o, "tcp_port", static_cast<int64_t>(port_));
    line(o, "http_port", static_cast<int64_t>(http_port()));
    line(o, "uptime_in_seconds", (now - start_ms_) / 1000);
    line(o, "uptime_in_days", (now - start_ms_) / 86400000);
    line(o, "io_threads_active", static_cast<int64_t>(contexts_.size()));
    line(o, "usable_cpus", static_cast<int64_t>(cpus_.usable));
    line(o, "cpu_affinity_cpus", static_cast<int64_t>(cpus_.affinity));
    char limit[32];
    std::snprintf(limit, sizeof(limit), "%g", cpus_.limit);  // 0: no cgroup CPU limit
    line(o, "cpu_limit", std::string(limit));
    line(o, "executable", fs::read_symlink("/proc/self/exe").string());
    line(o, "config_file", config_file_);
  } else if (name == "clients") {
    o = "# Clients\r\n";
    line(o, "connected_clients", static_cast<uint64_t>(connected_.load()));
    line(o, "maxclients", static_cast<uint64_t>(maxclients_.load()));
    line(o, "blocked_clients", 0);
  } else if (name == "memory") {
    uint64_t rss = ResidentBytes();
    uint64_t leveldb_mem = 0;
    std::string m = engine_->Property("leveldb.approximate-memory-usage");
    if (!m.empty()) leveldb_mem = std::stoull(m);
    // used_memory is what the allocator has handed out, as in Redis; without
    // the allocator's counters (a libc build) it falls back to the RSS.
    const AllocatorStats alloc = ReadAllocatorStats();
    const uint64_t used = alloc.known ? alloc.allocated : rss;
    o = "# Memory\r\n";
    line(o, "used_memory", used);
    line(o, "used_memory_human", Human(used));
    line(o, "used_memory_rss", rss);
    line(o, "used_memory_rss_human", Human(rss));
    line(o, "mem_allocator", alloc.name);
    if (alloc.known) {
      line(o, "allocator_allocated", alloc.allocated);
      line(o, "allocator_active", alloc.active);
      line(o, "allocator_resident", alloc.resident);
      char ratio[32];
      std::snprintf(ratio, sizeof(ratio), "%.2f", used > 0 ? static_cast<double>(rss) / used : 0.0);
      line(o, "mem_fragmentation_ratio", std::string(ratio));
    }
    line(o, "leveldb_memory", leveldb_mem);
    line(o, "maxmemory", 0);
  } else if (name == "persistence") {
    const auto& ws = writer_->stats();
    o = "# Persistence\r\n";
    line(o, "loading", ready_.load() ? 0 : 1);
    line(o, "aof_enabled", 1);
    line(o, "aof_fsync", config_->GetString("fsync"));
    line(o, "wal_last_sequence", log_->last_sequence());
    line(o, "wal_fsyncs", ws.fsyncs.load());
    line(o, "wal_write_errors", ws.write_errors.load());
    std::string f = writer_->failure();
    line(o, "aof_last_write_status", std::string(f.empty() ? "ok" : "err"));
    line(o, "rdb_bgsave_in_progress", 0);
    line(o, "rdb_changes_since_last_save", 0);
  } else if (name == "stats") {
    o = "# Stats\r\n";
    line(o, "total_connections_received", stats_.connections_received.load());
    line(o, "total_commands_processed", stats_.commands_processed.load());
    line(o, "total_net_input_bytes", stats_.net_input_bytes.load());
    line(o, "total_net_output_bytes", stats_.net_output_bytes.load());
    line(o, "rejected_connections", stats_.rejected_connections.load());
    line(o, "expired_keys", stats_.expired_keys.load());
    line(o, "sync_full", repl_->stats().full_syncs.load());
    line(o, "sync_partial_ok", repl_->stats().partial_syncs.load());
    line(o, "sync_partial_err", repl_->stats().partial_syncs_err.load());
    line(o, "total_net_repl_input_bytes", repl_->stats().bytes_received.load());
    line(o, "total_net_repl_output_bytes", repl_->stats().bytes_sent.load());
    line(o, "sync_replica_rollbacks_refused", repl_->stats().rollbacks_refused.load());
    line(o, "sync_backfilled_records", repl_->stats().backfilled_records.load());
    line(o, "sync_replica_full", repl_->stats().replica_full_syncs.load());
    line(o, "sync_replica_partial", repl_->stats().replica_partial_syncs.load());
    line(o, "evicted_keys", 0);
    line(o, "total_error_replies", command_stats_->total_errors());
    line(o, "total_error_replies_protocol", stats_.protocol_errors.load());
    line(o, "client_output_buffer_limit_disconnections", stats_.output_limit_disconnects.load());
    line(o, "client_query_buffer_limit_disconnections", stats_.query_limit_disconnects.load());
    line(o, "denied_connections_protected_mode", stats_.denied_connections.load());
    line(o, "auth_failures", stats_.auth_failures.load());
  } else if (name == "replication") {
    return repl_->InfoSection();
  } else if (name == "cpu") {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char buf[64];
    o = "# CPU\r\n";
    std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(ru.ru_stime.tv_sec), static_cast<long>(ru.ru_stime.tv_usec));
    line(o, "used_cpu_sys", std::string(buf));
    std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(ru.ru_utime.tv_sec), static_cast<long>(ru.ru_utime.tv_usec));
    line(o, "used_cpu_user", std::string(buf));
  } else if (name == "keyspace") {
    // No waiting here: monitors (Sentinel, exporters) call INFO constantly,
    // and an io thread must not stall behind the key counter.
    o = "# Keyspace\r\n";
    uint64_t keys = engine_->key_count();
    if (keys > 0) {
      o += "db0:keys=" + std::to_string(keys) + ",expires=" + std::to_string(engine_->expires_count()) +
           ",avg_ttl=0\r\n";
    }
  } else if (name == "commandstats") {
    o = "# Commandstats\r\n";
    for (const auto& [cmd, spec] : table_.all()) {
      const observe::CommandCell& c = command_stats_->cell(spec.id);
      uint64_t calls = c.calls.load(), usec = c.usec.load(), failed = c.failed.load(), rejected = c.rejected.load();
      if (calls == 0 && rejected == 0) continue;
      char per[32];
      std::snprintf(per, sizeof(per), "%.2f", calls ? static_cast<double>(usec) / calls : 0.0);
      o += "cmdstat_" + cmd + ":calls=" + std::to_string(calls) + ",usec=" + std::to_string(usec) +
           ",usec_per_call=" + per + ",rejected_calls=" + std::to_string(rejected) +
           ",failed_calls=" + std::to_string(failed) + "\r\n";
    }
  } else if (name == "errorstats") {
    o = "# Errorstats\r\n";
    for (const auto& [code, n] : command_stats_->Errors()) {
      o += "errorstat_" + code + ":count=" + std::to_string(n) + "\r\n";
    }
  } else if (name == "levee") {
    const auto& ws = writer_->stats();
    auto segs = log_->Segments();
    o = "# Levee\r\n";
    line(o, "applied_sequence", engine_->applied_sequence());
    line(o, "wal_segments", static_cast<uint64_t>(segs.size()));
    line(o, "wal_bytes", log_->total_bytes());
    line(o, "wal_first_sequence", log_->first_sequence());
    line(o, "write_groups", ws.groups.load());
    line(o, "write_commands", ws.commands.load());
    line(o, "write_records", ws.records.load());
    line(o, "write_queue", writer_->queued());
    line(o, "writer_failure", writer_->failure());
    // Damage LevelDB reported (storage/corruption.h): this run's count, and
    // whether the directory is marked (by this run or an earlier one) until
    // `levee check` passes.
    line(o, "corruption_errors", engine_->corruption().count());
    line(o, "corruption_marked", engine_->corruption().marked() ? 1 : 0);
    line(o, "corruption_last_file", engine_->corruption().last_file());
    storage::BlobStats bs = engine_->blobs()->Stats();
    line(o, "blob_files", bs.files);
    line(o, "blob_bytes", bs.bytes);
    line(o, "blob_garbage_bytes", bs.garbage);
    line(o, "blob_cache_max_bytes", bs.cache_capacity);
    line(o, "blob_cache_bytes", bs.cache_bytes);
    line(o, "blob_cache_hits", bs.cache_hits);
    line(o, "blob_cache_misses", bs.cache_misses);
    const storage::RowCache* rows = engine_->rows();
    line(o, "row_cache_max_bytes", rows ? rows->capacity() : 0);
    line(o, "row_cache_bytes", rows ? rows->bytes() : 0);
    line(o, "row_cache_hits", rows ? rows->hits() : 0);
    line(o, "row_cache_misses", rows ? rows->misses() : 0);
    const storage::KeyFilter* filter = engine_->key_filter();
    line(o, "key_filter_ready", filter && filter->ready() ? 1 : 0);
    line(o, "key_filter_bytes", filter ? filter->bytes() : 0);
    line(o, "key_filter_capacity", filter ? filter->capacity() : 0);
    line(o, "key_filter_absent", filter ? filter->absent_answers() : 0);
    line(o, "key_filter_scans", filter ? filter->scans_completed() : 0);
    line(o, "blob_gc_files_removed", blob_gc_->stats().files_removed.load());
    line(o, "blob_gc_bytes_reclaimed", blob_gc_->stats().bytes_reclaimed.load());
    line(o, "blob_gc_bytes_relocated", blob_gc_->stats().bytes_relocated.load());
    line(o, "blob_gc_surveys", blob_gc_->stats().surveys.load());
    line(o, "leveldb_approximate_bytes", engine_->ApproximateSize());
    // leveldb.stats: a table of "level files size(MB) time read write" rows.
    std::istringstream stats(engine_->Property("leveldb.stats"));
    std::string row;
    while (std::getline(stats, row)) {
      std::istringstream cols(row);
      int level;
      long files;
      double size_mb;
      if (cols >> level >> files >> size_mb) {
        line(o, "leveldb_level" + std::to_string(level) + "_files", static_cast<int64_t>(files));
        line(o, "leveldb_level" + std::to_string(level) + "_bytes", static_cast<uint64_t>(size_mb * 1048576.0));
      }
    }
  }
  return o;
}

}  // namespace levee::server
