#include "commands/pubsub.h"

#include "commands/args.h"
#include "commands/client.h"
#include "resp/reply.h"

namespace levee::commands {

bool PubSub::Subscribe(const std::shared_ptr<ClientState>& c, const std::string& name, bool pattern) {
  std::lock_guard<std::mutex> l(mu_);
  auto& mine = pattern ? c->patterns : c->channels;
  if (!mine.insert(name).second) return false;
  MapFor(pattern)[name][c->id] = c;
  (pattern ? c->psub_count : c->sub_count) = mine.size();
  return true;
}

bool PubSub::Unsubscribe(ClientState* c, const std::string& name, bool pattern) {
  std::lock_guard<std::mutex> l(mu_);
  auto& mine = pattern ? c->patterns : c->channels;
  if (mine.erase(name) == 0) return false;
  auto& map = MapFor(pattern);
  auto it = map.find(name);
  if (it != map.end()) {
    it->second.erase(c->id);
    if (it->second.empty()) map.erase(it);
  }
  (pattern ? c->psub_count : c->sub_count) = mine.size();
  return true;
}

void PubSub::UnsubscribeAll(ClientState* c) {
  std::lock_guard<std::mutex> l(mu_);
  for (bool pattern : {false, true}) {
    auto& mine = pattern ? c->patterns : c->channels;
    auto& map = MapFor(pattern);
    for (const auto& name : mine) {
      auto it = map.find(name);
      if (it == map.end()) continue;
      it->second.erase(c->id);
      if (it->second.empty()) map.erase(it);
    }
    mine.clear();
  }
  c->sub_count = 0;
  c->psub_count = 0;
}

std::string PubSub::FormatMessage(int protocol, std::string_view channel, std::string_view message) {
  std::string out;
  resp::ReplyBuilder rb(&out, protocol);
  rb.PushHeader(3);
  rb.Bulk("message");
  rb.Bulk(channel);
  rb.Bulk(message);
  return out;
}

std::string PubSub::FormatPatternMessage(int protocol, std::string_view pattern, std::string_view channel,
                                         std::string_view message) {
  std::string out;
  resp::ReplyBuilder rb(&out, protocol);
  rb.PushHeader(4);
  rb.Bulk("pmessage");
  rb.Bulk(pattern);
  rb.Bulk(channel);
  rb.Bulk(message);
  return out;
}

int64_t PubSub::Publish(std::string_view channel, std::string_view message) {
  // Collected under the lock, delivered outside it: deliver() only queues.
  std::vector<std::pair<std::shared_ptr<ClientState>, std::string>> to;  // client, pattern ("" for the channel)
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = channels_.find(channel);
    if (it != channels_.end()) {
      for (const auto& [id, w] : it->second) {
        if (auto c = w.lock()) to.emplace_back(std::move(c), std::string());
      }
    }
    for (const auto& [pattern, subs] : patterns_) {
      if (!GlobMatch(pattern, channel)) continue;
      for (const auto& [id, w] : subs) {
        if (auto c = w.lock()) to.emplace_back(std::move(c), pattern);
      }
    }
  }
  std::string framed[2][2];  // [pattern?][resp3?], built once per kind
  for (auto& [c, pattern] : to) {
    const int protocol = c->protocol.load();
    const bool p = !pattern.empty();
    std::string& f = framed[p][protocol >= 3];
    if (p || f.empty()) {
      f = p ? FormatPatternMessage(protocol, pattern, channel, message) : FormatMessage(protocol, channel, message);
    }
    if (c->deliver) c->deliver(f);
  }
  return static_cast<int64_t>(to.size());
}

int64_t PubSub::Receivers(std::string_view channel) {
  std::lock_guard<std::mutex> l(mu_);
  int64_t n = 0;
  auto it = channels_.find(channel);
  if (it != channels_.end()) n += static_cast<int64_t>(it->second.size());
  for (const auto& [pattern, subs] : patterns_) {
    if (GlobMatch(pattern, channel)) n += static_cast<int64_t>(subs.size());
  }
  return n;
}

std::vector<std::string> PubSub::Channels(std::string_view pattern) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (const auto& [name, subs] : channels_) {
    if (pattern.empty() || GlobMatch(pattern, name)) out.push_back(name);
  }
  return out;
}

int64_t PubSub::NumSub(std::string_view channel) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = channels_.find(channel);
  return it == channels_.end() ? 0 : static_cast<int64_t>(it->second.size());
}

int64_t PubSub::NumPat() {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int64_t>(patterns_.size());
}

}  // namespace levee::commands
