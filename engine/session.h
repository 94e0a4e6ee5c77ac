// The engine thread: a chat session that owns the model, tokenizer, chat template and sampler and
// generates on its own thread. Requests go in through a queue (non-blocking calls below); what happens
// comes out as events (poll_event / wait_event, plus a pipe fd to wake a poll() loop). Live figures go
// to a StatsBoard (engine/stats.h) that readers copy on their own clock.
//
//   ChatSession s({.model_path = "m.gguf"});
//   s.send("hello");
//   ChatEvent ev; while (s.wait_event(ev, 1s) && ev.kind != ChatEvent::Done) print(ev.text);
//
// The KV cache is kept across turns: each request renders the whole conversation, and only the tokens
// past the longest prefix already cached are processed (Model::truncate drops the rest). With a
// SnapshotStore, a loaded conversation starts from its saved prefill state instead of processing.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/stats.h"

namespace sluice {

// Where prefill snapshots are kept (ui/sqlite_store.h: in the history database). Called on the engine
// thread only, so an implementation over a database keeps a connection of its own.
class SnapshotStore {
public:
    virtual ~SnapshotStore() = default;
    struct Restored {
        bool touched = false;   // m was reset and now holds ids[0, tokens)
        int64_t tokens = 0;
        std::string notice;     // a snapshot existed but could not be used (why); else empty
    };
    // Restores the longest prefix of `ids` a snapshot of this conversation holds, if that is more than
    // the `have` tokens of ids m holds already (else m is left alone).
    virtual Restored restore(Model& m, const ModelOptions& opt, int64_t conversation, std::span<const int32_t> ids,
                             int64_t have) = 0;
    // Saves m's state; ids: the m.n_past() tokens it holds. False: larger than the whole budget.
    virtual bool save(const Model& m, const ModelOptions& opt, int64_t conversation, std::span<const int32_t> ids) = 0;
};

struct ChatSessionOptions {
    std::string model_path;
    ModelOptions model;
    SamplerParams sampler;
    int64_t max_reply_tokens = 0;        // 0: until end of turn or the context is full
    std::string template_name;           // "" : detect from the file; else ChatTemplate::by_name
    std::optional<bool> enable_thinking; // passed to the chat template (Qwen3: false -> no <think>)
    std::shared_ptr<SnapshotStore> snapshots;  // null: no prefill snapshots
    int token_delay_ms = 0;              // pace decoding (demos and tests of stopping mid-reply)
};

// One finished (or stopped) reply's figures.
struct ReplyStats {
    int64_t prompt_tokens = 0;   // tokens of the rendered conversation
    int64_t prompt_cached = 0;   // of which were already in the KV cache
    int64_t prompt_restored = 0; // of those, restored from a prefill snapshot (load)
    int64_t n_tokens = 0;        // generated
    double prompt_s = 0, prompt_tok_s = 0, decode_s = 0, decode_tok_s = 0, ttft_s = 0;
    double cache_hit_rate = -1;  // expert cache over this reply, 0..1; < 0: no lookups counted
    enum class Finish : uint8_t { EndOfTurn, Stopped, Length, ContextFull } finish = Finish::EndOfTurn;
};
const char* finish_name(ReplyStats::Finish f);

struct ChatTurn {                // a message as the session keeps it
    std::string role;            // "system", "user", "assistant"
    std::string content;         // the answer (assistant) or the text
    std::string thinking;        // assistant reasoning, without the <think> tags
};

struct ChatEvent {
    enum Kind : uint8_t {
        Ready,    // the model is loaded: text = "name · arch · template"
        Token,    // text: complete UTF-8 characters of the reply; thinking: inside <think>
        Done,     // the reply ended (stats.finish says why; a stopped reply keeps what it had)
        Prefilled,// a conversation was loaded and processed (no reply)
        Applied,  // a setting took effect (text says what)
        Saved,    // a prefill snapshot was saved, or refused by the budget (text says which)
        Info,     // a one-line notice
        Error,    // a request failed (text says why); the session keeps working
    } kind = Info;
    // Every request gets exactly one of Done, Prefilled, Applied, Saved or Error, carrying its id.
    uint64_t request = 0;
    bool dropped = false;  // Done for a request stop() dropped before it started
    std::string text;
    bool thinking = false;
    ReplyStats stats;
    ChatTurn reply;              // Done: the whole reply
};

struct ModelSummary {            // set once Ready; read with ChatSession::summary()
    std::string name, arch, chat_template;
    int64_t n_ctx = 0, n_expert = 0, n_expert_used = 0;
};

// Splits a reply's text into (text, thinking) pieces at <think> / </think>, holding back the start of
// a tag until it is known to be one (tags arrive split across tokens).
class ThinkSplitter {
public:
    explicit ThinkSplitter(bool thinking) : thinking_(thinking), strip_(thinking) {}
    void push(const std::string& s, std::vector<std::pair<std::string, bool>>& out);
    void flush(std::vector<std::pair<std::string, bool>>& out);

private:
    bool thinking_, strip_;
    std::string held_;
};

class ChatSession {
public:
    // Starts the thread, which loads the model (Ready or Error follows).
    explicit ChatSession(ChatSessionOptions opt);
    ~ChatSession();  // stops the current reply and joins
    ChatSession(const ChatSession&) = delete;
    ChatSession& operator=(const ChatSession&) = delete;

    // Requests, answered in order by the engine thread; each returns the id its events carry.
    uint64_t send(std::string user_text);        // append a user turn and reply to it
    uint64_t regenerate();                       // drop the last reply and reply again
    uint64_t edit_last(std::string user_text);   // replace the last user turn (and what followed), reply
    uint64_t set_sampler(const SamplerParams& p);
    uint64_t set_experts(int64_t k);             // experts per token (reloads the model, keeps the state)
    uint64_t set_system(std::string text);       // "" removes it; applies from the next reply
    // Starts over with these turns (a saved conversation; empty: a new one). With prefill, the
    // turns are processed now (Prefilled follows). With a conversation id and a SnapshotStore, the
    // state is first restored from that conversation's snapshot (an Info event says why not, when
    // one existed but could not be used).
    uint64_t load(std::vector<ChatTurn> turns, bool prefill, int64_t conversation = 0);
    // Saves the state (the conversation so far) as a snapshot of this conversation (Saved follows).
    // Run after a reply is shown: it costs a copy of the state, compression and a write.
    uint64_t save_snapshot(int64_t conversation);
    // Stops the current reply (and forgets requests not yet started that would generate) between
    // two tokens; the partial reply is kept. No effect when idle.
    void stop();

    bool poll_event(ChatEvent& ev);
    bool wait_event(ChatEvent& ev, std::chrono::milliseconds timeout);
    int notify_fd() const { return pipe_[0]; }  // readable when events are queued; drain_notify() it
    void drain_notify();

    bool busy() const { return busy_.load(); }  // a request is queued or running
    const StatsBoard& stats() const { return board_; }
    ModelSummary summary() const;
    std::vector<ChatTurn> turns() const;        // the conversation as the engine has it

private:
    struct Request;
    uint64_t push(Request r);
    void run();
    void handle(Request& r);
    void load_model_now();
    void generate();
    std::vector<float> prefill(const std::vector<int32_t>& ids, ReplyStats& st, bool& stopped);
    std::vector<int32_t> render(bool add_generation_prompt) const;
    std::vector<int32_t> render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const;
    std::vector<int32_t> render_for_next() const;
    void emit(ChatEvent ev);
    void publish();
    void merge_streaming(const StatsSnapshot& model_stats);  // the model's expert-streaming fields

    ChatSessionOptions opt_;
    std::unique_ptr<Model> model_;
    struct Text;                 // tokenizer + template (engine/text), kept out of this header
    std::unique_ptr<Text> text_;
    std::unique_ptr<Sampler> sampler_;

    // Engine thread only.
    std::vector<int32_t> cached_;  // the tokens whose K/V are in the cache, in order
    StatsSnapshot snap_;
    std::vector<std::chrono::steady_clock::time_point> recent_;  // last decode token times
    uint64_t current_ = 0;         // id of the request being handled

    mutable std::mutex m_;         // guards the queues, turns_ and summary_
    std::condition_variable req_cv_, ev_cv_;
    std::deque<Request> requests_;
    std::deque<ChatEvent> events_;
    uint64_t next_id_ = 1;
    std::vector<ChatTurn> turns_;
    ModelSummary summary_;
    std::atomic<bool> stop_{false}, quit_{false}, busy_{false};
    StatsBoard board_;
    int pipe_[2] = {-1, -1};
    std::thread thread_;
};

}  // namespace sluice
