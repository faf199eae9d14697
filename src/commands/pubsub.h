// PubSub: channel and pattern subscriptions, and message delivery.
//
// SUBSCRIBE and friends run on the subscriber's own thread and change both
// the client's sets (ClientState::channels/patterns) and the maps here.
// Publish() runs on the writer thread (after the group holding the PUBLISH
// is committed, or when a replica applies its primary's PUBLISH), so every
// subscriber receives messages in log order. A message reaches a client
// through ClientState::deliver, which queues the bytes on the client's io
// thread; a subscriber that stops reading hits its output buffer limit and
// is disconnected.
//
// Threads: all methods from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace levee::commands {

struct ClientState;

class PubSub {
 public:
  // Adds one subscription; false if the client already had it.
  bool Subscribe(const std::shared_ptr<ClientState>& c, const std::string& name, bool pattern);
  // Removes one subscription; false if the client did not have it.
  bool Unsubscribe(ClientState* c, const std::string& name, bool pattern);
  // Drops every subscription of a closing client.
  void UnsubscribeAll(ClientState* c);

  // Delivers to subscribers of channel and of matching patterns; returns
  // how many deliveries were made (as PUBLISH replies).
  int64_t Publish(std::string_view channel, std::string_view message);
  // How many deliveries a Publish would make now.
  int64_t Receivers(std::string_view channel);

  // PUBSUB CHANNELS / NUMSUB / NUMPAT.
  std::vector<std::string> Channels(std::string_view pattern);
  int64_t NumSub(std::string_view channel);
  int64_t NumPat();

  // Redis' message framing: a push in RESP3, an array in RESP2.
  static std::string FormatMessage(int protocol, std::string_view channel, std::string_view message);
  static std::string FormatPatternMessage(int protocol, std::string_view pattern, std::string_view channel,
                                          std::string_view message);

 private:
  using Subscribers = std::map<uint64_t, std::weak_ptr<ClientState>>;
  std::map<std::string, Subscribers, std::less<>>& MapFor(bool pattern) { return pattern ? patterns_ : channels_; }

  std::mutex mu_;
  std::map<std::string, Subscribers, std::less<>> channels_;
  std::map<std::string, Subscribers, std::less<>> patterns_;
};

}  // namespace levee::commands
