#include "repl/acks.h"

#include "resp/reply.h"

namespace levee::repl {

AckTracker::AckTracker(AckCounter* counter, std::function<int64_t()> now_ms)
    : counter_(counter), now_ms_(std::move(now_ms)) {}

void AckTracker::Configure(SyncSettings s) {
  replicas_ = s.replicas;
  timeout_ms_ = s.timeout_ms;
  fail_ = s.fail;
  std::lock_guard<std::mutex> l(prefixes_mu_);
  prefixes_ = std::move(s.prefixes);
}

bool AckTracker::IsSyncKey(std::string_view key) {
  if (replicas_.load() <= 0) return false;
  std::lock_guard<std::mutex> l(prefixes_mu_);
  if (prefixes_.empty()) return true;
  for (const auto& p : prefixes_) {
    if (key.substr(0, p.size()) == p) return true;
  }
  return false;
}

void AckTracker::HoldForAcks(std::unique_ptr<write::WriteJob> job, bool on_replica) {
  stats_.sync_writes++;
  int64_t now = now_ms_();
  Hold h{std::move(job), 0, replicas_.load(), now + timeout_ms_.load(), false, now};
  h.sequence = h.job->sync_sequence;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!on_replica && counter_->CountAcked(h.sequence) < h.replicas) {
      holds_.push_back(std::move(h));
      return;
    }
  }
  Release(h, on_replica);
}

void AckTracker::HoldForWait(std::unique_ptr<write::WriteJob> job, uint64_t sequence, int64_t replicas,
                             int64_t timeout_ms) {
  int64_t now = now_ms_();
  Hold h{std::move(job), sequence, replicas, timeout_ms == 0 ? 0 : now + timeout_ms, true, now};
  {
    std::lock_guard<std::mutex> l(mu_);
    if (counter_->CountAcked(sequence) < replicas) {
      holds_.push_back(std::move(h));
      return;
    }
  }
  Release(h, false);
}

void AckTracker::OnAck() { ReleaseReady(false); }

void AckTracker::Tick() { ReleaseReady(true); }

size_t AckTracker::held() {
  std::lock_guard<std::mutex> l(mu_);
  return holds_.size();
}

void AckTracker::ReleaseAll() {
  std::list<Hold> holds;
  {
    std::lock_guard<std::mutex> l(mu_);
    holds.swap(holds_);
  }
  for (auto& h : holds) Release(h, true);
}

void AckTracker::ReleaseReady(bool timeouts) {
  std::vector<std::pair<Hold, bool>> ready;
  int64_t now = now_ms_();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = holds_.begin(); it != holds_.end();) {
      bool acked = counter_->CountAcked(it->sequence) >= it->replicas;
      bool expired = timeouts && it->deadline_ms != 0 && now >= it->deadline_ms;
      if (acked || expired) {
        ready.emplace_back(std::move(*it), !acked);
        it = holds_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [h, timed_out] : ready) Release(h, timed_out);
}

void AckTracker::Release(Hold& h, bool timed_out) {
  write::WriteJob& job = *h.job;
  if (h.is_wait) {
    resp::ReplyBuilder(&job.reply, job.client->protocol).Integer(counter_->CountAcked(h.sequence));
  } else {
    stats_.sync_wait_seconds.Observe(static_cast<double>(now_ms_() - h.start_ms) / 1000.0);
    if (timed_out) {
      stats_.sync_timeouts++;
      if (fail_.load()) {
        std::string err = "-ERR sync replication timeout: fewer than " + std::to_string(h.replicas) +
                          " replicas acknowledged the write within sync-timeout-ms; it was applied here and may "
                          "or may not survive a failover\r\n";
        std::string out;
        size_t pos = 0;
        for (auto [b, e] : job.sync_replies) {
          out.append(job.reply, pos, b - pos);
          out += err;
          pos = e;
        }
        out.append(job.reply, pos, std::string::npos);
        job.reply = std::move(out);
      } else {
        stats_.sync_degraded++;
      }
    }
  }
  auto done = std::move(job.done);
  done(std::move(h.job));
}

}  // namespace levee::repl
