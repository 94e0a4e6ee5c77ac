#include "ui/conversation_store.h"

#include <algorithm>
#include <chrono>
#include <map>

namespace sluice::ui {

namespace {

// Update times in ms, strictly increasing so "most recently updated" is exact.
int64_t now_ms() {
    static int64_t last = 0;
    const int64_t t = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    last = std::max(last + 1, t);
    return last;
}

class MemoryStore : public ConversationStore {
public:
    std::vector<ConversationInfo> list() override {
        std::vector<ConversationInfo> out;
        for (auto& [id, c] : convs_) out.push_back(info(c));
        std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
            return a.updated_ms != b.updated_ms ? a.updated_ms > b.updated_ms : a.id > b.id;
        });
        return out;
    }
    std::optional<ConversationInfo> get(int64_t id) override {
        auto it = convs_.find(id);
        if (it == convs_.end()) return std::nullopt;
        return info(it->second);
    }
    int64_t create(const ConversationInfo& c) override {
        Conv& n = convs_[next_id_];
        n.info = c;
        n.info.id = next_id_;
        n.info.updated_ms = now_ms();
        return next_id_++;
    }
    void update(const ConversationInfo& c) override {
        auto it = convs_.find(c.id);
        if (it == convs_.end()) return;
        it->second.info.title = c.title;
        it->second.info.system_prompt = c.system_prompt;
        it->second.info.updated_ms = now_ms();
    }
    bool remove(int64_t id) override { return convs_.erase(id) != 0; }
    std::vector<StoredMessage> messages(int64_t id) override {
        auto it = convs_.find(id);
        return it == convs_.end() ? std::vector<StoredMessage>{} : it->second.msgs;
    }
    int64_t append(int64_t id, const StoredMessage& m) override {
        auto it = convs_.find(id);
        if (it == convs_.end()) return 0;
        Conv& c = it->second;
        c.msgs.push_back(m);
        c.msgs.back().seq = c.msgs.size() > 1 ? c.msgs[c.msgs.size() - 2].seq + 1 : 1;
        c.info.updated_ms = now_ms();
        return c.msgs.back().seq;
    }
    void erase_from(int64_t id, int64_t seq) override {
        auto it = convs_.find(id);
        if (it == convs_.end()) return;
        std::erase_if(it->second.msgs, [&](const StoredMessage& m) { return m.seq >= seq; });
    }
    std::string export_text(int64_t, std::string_view) override { return {}; }
    std::shared_ptr<SnapshotStore> snapshot_store() override { return nullptr; }
    std::optional<std::string> setting(std::string_view key) override {
        auto it = settings_.find(std::string(key));
        if (it == settings_.end()) return std::nullopt;
        return it->second;
    }
    void set_setting(std::string_view key, std::string_view value) override { settings_[std::string(key)] = value; }

private:
    struct Conv {
        ConversationInfo info;
        std::vector<StoredMessage> msgs;
    };
    static ConversationInfo info(const Conv& c) {
        ConversationInfo i = c.info;
        i.n_messages = int64_t(c.msgs.size());
        return i;
    }
    std::map<int64_t, Conv> convs_;
    std::map<std::string, std::string> settings_;
    int64_t next_id_ = 1;
};

}  // namespace

std::unique_ptr<ConversationStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace sluice::ui
