#include "engine/session.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/error.h"
#include "engine/text/chat_template.h"
#include "engine/text/tokenizer.h"

namespace sluice {

using Clock = std::chrono::steady_clock;

const char* finish_name(ReplyStats::Finish f) {
    switch (f) {
    case ReplyStats::Finish::EndOfTurn: return "end of turn";
    case ReplyStats::Finish::Stopped: return "stopped";
    case ReplyStats::Finish::Length: return "length limit";
    case ReplyStats::Finish::ContextFull: return "context full";
    }
    return "?";
}

struct ChatSession::Request {
    enum Kind { Send, Regen, Edit, Sampler, Experts, System, Load, Save } kind = Send;
    std::string text = {};
    uint64_t id = 0;
    SamplerParams sampler = {};
    int64_t k = 0;
    std::vector<ChatTurn> turns = {};
    bool prefill = false;
    int64_t conversation = 0;
    bool generates() const { return kind == Send || kind == Regen || kind == Edit; }
};

struct ChatSession::Text {
    Text(text::Vocab v, text::ChatTemplate t) : tok(std::move(v)), tmpl(t) {}
    text::Tokenizer tok;
    text::ChatTemplate tmpl;
};

void ThinkSplitter::push(const std::string& s, std::vector<std::pair<std::string, bool>>& out) {
    held_ += s;
    for (;;) {
        // The newlines the template puts after a tag are not content.
        if (strip_) {
            while (!held_.empty() && held_[0] == '\n') held_.erase(0, 1);
            if (held_.empty()) return;
            strip_ = false;
        }
        const std::string_view tag = thinking_ ? "</think>" : "<think>";
        size_t p = held_.find(tag);
        if (p != std::string::npos) {
            if (p) out.push_back({held_.substr(0, p), thinking_});
            held_.erase(0, p + tag.size());
            thinking_ = !thinking_;
            strip_ = true;
            continue;
        }
        // Keep a suffix that could still become the tag.
        size_t keep = 0;
        for (size_t n = std::min(tag.size() - 1, held_.size()); n > 0; --n)
            if (held_.compare(held_.size() - n, n, tag.substr(0, n)) == 0) { keep = n; break; }
        if (held_.size() > keep) out.push_back({held_.substr(0, held_.size() - keep), thinking_});
        held_.erase(0, held_.size() - keep);
        return;
    }
}

void ThinkSplitter::flush(std::vector<std::pair<std::string, bool>>& out) {
    if (!held_.empty()) out.push_back({held_, thinking_});
    held_.clear();
}

namespace {

uint64_t resident_bytes() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, rss = 0;
    const int n = std::fscanf(f, "%llu %llu", &size, &rss);
    std::fclose(f);
    return n == 2 ? rss * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

ChatEvent event(ChatEvent::Kind k, std::string text = {}, bool thinking = false) {
    ChatEvent e;
    e.kind = k;
    e.text = std::move(text);
    e.thinking = thinking;
    return e;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    size_t p = 0;
    while (p < a.size() && p < b.size() && a[p] == b[p]) ++p;
    return p;
}

std::string trim_right(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

ChatSession::ChatSession(ChatSessionOptions opt) : opt_(std::move(opt)) {
    if (::pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0) throw Error("pipe2 failed");
    busy_ = true;  // loading
    thread_ = std::thread([this] { run(); });
}

ChatSession::~ChatSession() {
    {
        std::lock_guard<std::mutex> lk(m_);
        quit_ = true;
        stop_ = true;
        requests_.clear();
    }
    req_cv_.notify_all();
    thread_.join();
    ::close(pipe_[0]);
    ::close(pipe_[1]);
}

uint64_t ChatSession::push(Request r) {
    uint64_t id;
    {
        std::lock_guard<std::mutex> lk(m_);
        id = r.id = next_id_++;
        requests_.push_back(std::move(r));
        busy_ = true;
    }
    req_cv_.notify_one();
    return id;
}

uint64_t ChatSession::send(std::string t) { return push(Request{Request::Send, std::move(t)}); }
uint64_t ChatSession::regenerate() { return push(Request{Request::Regen}); }
uint64_t ChatSession::edit_last(std::string t) { return push(Request{Request::Edit, std::move(t)}); }
uint64_t ChatSession::set_sampler(const SamplerParams& p) {
    Request r{Request::Sampler};
    r.sampler = p;
    return push(std::move(r));
}
uint64_t ChatSession::set_experts(int64_t k) {
    Request r{Request::Experts};
    r.k = k;
    return push(std::move(r));
}
uint64_t ChatSession::set_system(std::string t) { return push(Request{Request::System, std::move(t)}); }
uint64_t ChatSession::load(std::vector<ChatTurn> turns, bool prefill, int64_t conversation) {
    Request r{Request::Load};
    r.turns = std::move(turns);
    r.prefill = prefill;
    r.conversation = conversation;
    return push(std::move(r));
}
uint64_t ChatSession::save_snapshot(int64_t conversation) {
    Request r{Request::Save};
    r.conversation = conversation;
    return push(std::move(r));
}

void ChatSession::stop() {
    std::vector<uint64_t> dropped;
    {
        std::lock_guard<std::mutex> lk(m_);
        // Requests queued before the stop that would generate are dropped; the engine clears stop_
        // under this lock when it takes the next request, so a stop never leaks into a later one.
        for (const Request& r : requests_)
            if (r.generates()) dropped.push_back(r.id);
        std::erase_if(requests_, [](const Request& r) { return r.generates(); });
        stop_ = true;
    }
    for (uint64_t id : dropped) {
        ChatEvent ev = event(ChatEvent::Done);
        ev.request = id;
        ev.dropped = true;
        ev.stats.finish = ReplyStats::Finish::Stopped;
        emit(std::move(ev));
    }
}

bool ChatSession::poll_event(ChatEvent& ev) {
    std::lock_guard<std::mutex> lk(m_);
    if (events_.empty()) return false;
    ev = std::move(events_.front());
    events_.pop_front();
    return true;
}

bool ChatSession::wait_event(ChatEvent& ev, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(m_);
    if (!ev_cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
    ev = std::move(events_.front());
    events_.pop_front();
    return true;
}

void ChatSession::drain_notify() {
    char buf[256];
    while (::read(pipe_[0], buf, sizeof buf) > 0) {
    }
}

ModelSummary ChatSession::summary() const {
    std::lock_guard<std::mutex> lk(m_);
    return summary_;
}

std::vector<ChatTurn> ChatSession::turns() const {
    std::lock_guard<std::mutex> lk(m_);
    return turns_;
}

void ChatSession::emit(ChatEvent ev) {
    if (!ev.request) ev.request = current_;
    {
        std::lock_guard<std::mutex> lk(m_);
        events_.push_back(std::move(ev));
    }
    ev_cv_.notify_all();
    const char c = 1;
    [[maybe_unused]] ssize_t n = ::write(pipe_[1], &c, 1);  // full pipe: the reader is awake anyway
}

void ChatSession::merge_streaming(const StatsSnapshot& m) {
    snap_.io_mode = m.io_mode;
    snap_.io_engine = m.io_engine;
    snap_.bytes_read_token = m.bytes_read_token;
    snap_.bytes_read_total = m.bytes_read_total;
    snap_.reads_total = m.reads_total;
    snap_.disk_mb_s = m.disk_mb_s;
    snap_.os_read_bytes_token = m.os_read_bytes_token;
    snap_.expert_hits = m.expert_hits;
    snap_.expert_misses = m.expert_misses;
    snap_.hit_rate_recent = m.hit_rate_recent;
    snap_.hit_rate_estimated = m.hit_rate_estimated;
    snap_.hit_rate_source = m.hit_rate_source;
    snap_.experts_per_token = m.experts_per_token;
    snap_.prefetch_bytes_total = m.prefetch_bytes_total;
    snap_.prefetch_experts_total = m.prefetch_experts_total;
    snap_.guess_accuracy = m.guess_accuracy;
    snap_.routing_overlap = m.routing_overlap;
    snap_.routing_distinct = m.routing_distinct;
    snap_.t_token = m.t_token;
    snap_.t_attention = m.t_attention;
    snap_.t_experts_compute = m.t_experts_compute;
    snap_.t_experts_wait = m.t_experts_wait;
    snap_.t_other = m.t_other;
    snap_.memory_budget = m.memory_budget;
    snap_.dense_bytes = m.dense_bytes;
    snap_.expert_cache_bytes = m.expert_cache_bytes;
    snap_.expert_cache_budget = m.expert_cache_budget;
}

void ChatSession::publish() {
    if (model_) {
        snap_.n_ctx_used = model_->n_past();
        snap_.n_ctx = model_->n_ctx();
        const GpuCounters g = model_->gpu_counters();
        snap_.t_gpu = g.gpu_s_last_token;
        snap_.gpu_cache_hits = g.vram_cache_hits;
        snap_.gpu_cache_misses = g.vram_cache_misses;
        snap_.vram_bytes = g.vram_bytes;
    }
    // Disk, expert-cache, time-split and memory fields belong to expert streaming, which publishes
    // them to the model's own board at the end of every token. That board is written on this (the
    // engine) thread only, so reading it here sees the latest token; the UI keeps reading only
    // board_. The session's own fields (phase, prompt progress, tok/s, context) stay as set above.
    if (model_) merge_streaming(model_->stats()->read());
    snap_.rss_bytes = resident_bytes();
    board_.publish(snap_);
}

void ChatSession::run() {
    try {
        snap_.phase = StatsSnapshot::Phase::Loading;
        publish();
        load_model_now();
    } catch (const std::exception& e) {
        emit(event(ChatEvent::Error, e.what()));
    }
    snap_.phase = StatsSnapshot::Phase::Idle;
    publish();
    for (;;) {
        Request r;
        {
            std::unique_lock<std::mutex> lk(m_);
            busy_ = !requests_.empty();
            req_cv_.wait(lk, [&] { return quit_ || !requests_.empty(); });
            if (quit_) return;
            r = std::move(requests_.front());
            requests_.pop_front();
            stop_ = false;
            current_ = r.id;
        }
        if (!model_) {
            emit(event(ChatEvent::Error, "no model is loaded"));
            continue;
        }
        const std::vector<ChatTurn> before = turns();
        try {
            handle(r);
        } catch (const std::exception& e) {
            // Keep the cache bookkeeping true to the model, and the conversation as it was.
            if (model_->n_past() > int64_t(cached_.size())) model_->truncate(int64_t(cached_.size()));
            if (int64_t(cached_.size()) > model_->n_past()) cached_.resize(size_t(model_->n_past()));
            if (r.generates()) {
                std::lock_guard<std::mutex> lk(m_);
                turns_ = before;
            }
            emit(event(ChatEvent::Error, e.what()));
        }
        snap_.phase = StatsSnapshot::Phase::Idle;
        snap_.prompt_done = snap_.prompt_total = 0;
        snap_.prompt_eta_s = 0;
        publish();
    }
}

void ChatSession::load_model_now() {
    if (!std::filesystem::exists(opt_.model_path)) throw Error(opt_.model_path + ": no such file");
    model_ = load_model(opt_.model_path, opt_.model);
    auto vocab = text::from_gguf(model_->file());
    const std::string tmpl_src = vocab.chat_template;
    text_ = std::make_unique<Text>(std::move(vocab), opt_.template_name.empty() ? text::ChatTemplate::detect(tmpl_src)
                                                                                : text::ChatTemplate::by_name(opt_.template_name));
    sampler_ = std::make_unique<Sampler>(opt_.sampler);
    const Hparams& h = model_->hparams();
    ModelSummary s{std::filesystem::path(opt_.model_path).filename().string(), h.arch, text_->tmpl.name(),
                   model_->n_ctx(), h.n_expert, h.n_expert_used};
    if (opt_.model.experts_per_token > 0) s.n_expert_used = opt_.model.experts_per_token;
    {
        std::lock_guard<std::mutex> lk(m_);
        summary_ = s;
    }
    cached_.clear();
    // The stats of the loaded model go out before Ready: a UI that draws on the event shows them.
    snap_.phase = StatsSnapshot::Phase::Idle;
    publish();
    emit(event(ChatEvent::Ready, s.name + " · " + s.arch + " · " + s.chat_template +
                                           (text_->tmpl.defaulted() ? " (no template in the file)" : "")));
}

void ChatSession::handle(Request& r) {
    auto edit_turns = [&](auto fn) {
        std::lock_guard<std::mutex> lk(m_);
        fn(turns_);
    };
    switch (r.kind) {
    case Request::Send:
        edit_turns([&](auto& t) { t.push_back({"user", std::move(r.text), {}}); });
        generate();
        break;
    case Request::Regen: {
        bool ok = false;
        edit_turns([&](auto& t) {
            if (!t.empty() && t.back().role == "assistant") t.pop_back();
            ok = !t.empty() && t.back().role == "user";
        });
        if (!ok) throw Error("there is no reply to regenerate");
        generate();
        break;
    }
    case Request::Edit: {
        bool ok = false;
        edit_turns([&](auto& t) {
            auto it = std::find_if(t.rbegin(), t.rend(), [](const ChatTurn& x) { return x.role == "user"; });
            if (it == t.rend()) return;
            t.erase(std::next(it).base(), t.end());
            t.push_back({"user", std::move(r.text), {}});
            ok = true;
        });
        if (!ok) throw Error("there is no message to edit");
        generate();
        break;
    }
    case Request::Sampler:
        opt_.sampler = r.sampler;
        sampler_ = std::make_unique<Sampler>(r.sampler);
        emit(event(ChatEvent::Applied, "sampling settings updated"));
        break;
    case Request::Experts: {
        if (r.k < 1 || r.k > model_->hparams().n_expert)
            throw Error("experts per token must be 1.." + std::to_string(model_->hparams().n_expert));
        ModelOptions mo = opt_.model;
        mo.experts_per_token = r.k;
        auto next = load_model(opt_.model_path, mo);
        next->load_state(model_->save_state());  // routing of past tokens does not change their K/V
        model_ = std::move(next);
        opt_.model = mo;
        {
            std::lock_guard<std::mutex> lk(m_);
            summary_.n_expert_used = r.k;
        }
        emit(event(ChatEvent::Applied, "experts per token: " + std::to_string(r.k)));
        break;
    }
    case Request::System:
        edit_turns([&](auto& t) {
            if (!t.empty() && t[0].role == "system") t.erase(t.begin());
            if (!r.text.empty()) t.insert(t.begin(), ChatTurn{"system", r.text, {}});
        });
        emit(event(ChatEvent::Applied, r.text.empty() ? "system prompt removed" : "system prompt set"));
        break;
    case Request::Load: {
        edit_turns([&](auto& t) { t = std::move(r.turns); });
        const std::vector<int32_t> ids = render_for_next();
        ChatEvent ev = event(ChatEvent::Prefilled);
        if (opt_.snapshots && r.conversation && !ids.empty()) {
            // The last token is processed again in any case (its logits start the next reply).
            const int64_t have = int64_t(std::min(common_prefix(cached_, ids), ids.size() - 1));
            SnapshotStore::Restored res;
            try {
                res = opt_.snapshots->restore(*model_, opt_.model, r.conversation, ids, have);
            } catch (const std::exception& e) {  // the store failed: process the conversation instead
                res = {};
                res.notice = std::string("the snapshot could not be read (") + e.what() + "); processing the conversation";
                cached_.resize(std::min(cached_.size(), size_t(model_->n_past())));
            }
            if (res.touched) {
                cached_.assign(ids.begin(), ids.begin() + long(res.tokens));
                ev.stats.prompt_restored = res.tokens;
            }
            if (!res.notice.empty()) emit(event(ChatEvent::Info, res.notice));
        }
        if (!r.prefill) {
            // Keep only what the new conversation shares (a system prompt, say) so the context
            // gauge tells the truth; the next reply processes the rest.
            const size_t p = common_prefix(cached_, ids);
            model_->truncate(int64_t(p));
            cached_.resize(p);
        }
        if (r.prefill && !ids.empty()) {
            bool stopped = false;
            prefill(ids, ev.stats, stopped);
            if (stopped) ev.stats.finish = ReplyStats::Finish::Stopped;
        }
        emit(std::move(ev));
        break;
    }
    case Request::Save: {
        if (!opt_.snapshots) throw Error("this session keeps no prefill snapshots");
        ChatEvent ev = event(ChatEvent::Saved);
        if (r.conversation && !cached_.empty()) {
            try {
                ev.text = opt_.snapshots->save(*model_, opt_.model, r.conversation, cached_)
                              ? "snapshot saved: " + std::to_string(cached_.size()) + " tokens"
                              : "snapshot not saved: the state alone is larger than the snapshot budget";
            } catch (const std::exception& e) {
                throw Error(std::string("the prefill snapshot was not saved: ") + e.what());
            }
        }
        emit(std::move(ev));
        break;
    }
    }
}

std::vector<int32_t> ChatSession::render(bool add_generation_prompt) const { return render(turns(), add_generation_prompt); }

// Templates render the last turn differently from the same turn followed by another (Qwen3 gives the
// last reply an empty <think> block), so what a loaded conversation should hold is the part that
// any next user message leaves alone: the common prefix of two renderings with different ones.
std::vector<int32_t> ChatSession::render_for_next() const {
    std::vector<ChatTurn> t = turns();
    if (t.empty()) return {};
    t.push_back({"user", "a", {}});
    const std::vector<int32_t> a = render(t, false);
    t.back().content = "b";
    const std::vector<int32_t> b = render(t, false);
    return {a.begin(), a.begin() + long(common_prefix(a, b))};
}

std::vector<int32_t> ChatSession::render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const {
    std::vector<text::ChatMessage> msgs;
    for (const ChatTurn& t : turns) {
        std::string c = t.content;
        if (t.role == "assistant" && !t.thinking.empty()) c = "<think>\n" + t.thinking + "\n</think>\n\n" + c;
        msgs.push_back({t.role, std::move(c)});
    }
    if (msgs.empty()) return {};
    text::ChatOptions co;
    co.add_generation_prompt = add_generation_prompt;
    co.enable_thinking = opt_.enable_thinking;
    return text_->tok.encode(text_->tmpl.apply(msgs, co), true);
}

// Brings the KV cache to `ids`, processing only what is not cached yet; returns the last position's
// logits. Sets stopped (and returns nothing) when stop() came first.
std::vector<float> ChatSession::prefill(const std::vector<int32_t>& ids, ReplyStats& st, bool& stopped) {
    size_t p = common_prefix(cached_, ids);
    if (p == ids.size()) --p;  // the last token is fed again for its logits
    model_->truncate(int64_t(p));
    cached_.resize(p);
    st.prompt_tokens = int64_t(ids.size());
    st.prompt_cached = int64_t(p);
    for (size_t i = p; i < ids.size(); ++i) sampler_->accept(ids[i]);

    const auto t0 = Clock::now();
    snap_.phase = StatsSnapshot::Phase::Prompt;
    snap_.prompt_total = int64_t(ids.size() - p);
    snap_.prompt_done = 0;
    snap_.prompt_eta_s = 0;
    publish();
    // The model processes the prompt in chunks (layer-major, --batch) and reports progress from inside
    // them, between layers; a stop lands between layers too, keeping the chunks already finished.
    auto last_publish = t0;
    model_->set_prompt_hooks({[&](double done, int64_t total) {
                                  const auto now = Clock::now();
                                  snap_.prompt_done = int64_t(done);
                                  const double el = std::chrono::duration<double>(now - t0).count();
                                  snap_.prompt_tok_s = el > 0 ? done / el : 0;
                                  snap_.prompt_eta_s = snap_.prompt_tok_s > 0 ? (double(total) - done) / snap_.prompt_tok_s : 0;
                                  if (now - last_publish > std::chrono::milliseconds(50) || int64_t(done) == total) {
                                      publish();
                                      last_publish = now;
                                  }
                              },
                              &stop_});
    struct Unhook {
        Model& m;
        ~Unhook() { m.set_prompt_hooks({}); }
    } unhook{*model_};
    std::vector<float> logits;
    try {
        logits = model_->forward_tokens(std::span<const int32_t>(ids.data() + p, ids.size() - p), false);
    } catch (const Interrupted&) {
        cached_.assign(ids.begin(), ids.begin() + long(model_->n_past()));
        stopped = true;
        return {};
    }
    cached_ = ids;
    st.prompt_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const int64_t done = st.prompt_tokens - st.prompt_cached;
    st.prompt_tok_s = st.prompt_s > 0 ? double(done) / st.prompt_s : 0;
    return logits;
}

void ChatSession::generate() {
    const auto t_start = Clock::now();
    const std::vector<int32_t> ids = render(true);
    const int64_t n_ctx = model_->n_ctx();
    if (int64_t(ids.size()) >= n_ctx)
        throw Error("the conversation needs " + std::to_string(ids.size()) + " tokens but the context holds " +
                    std::to_string(n_ctx) + "; start a new one (/new) or raise -c");

    ChatEvent done = event(ChatEvent::Done);
    ReplyStats& st = done.stats;
    // Expert streaming counts its cache lookups in the model's board; the reply's hit rate is the
    // difference (read from that board: publish() may not have run since the last token).
    const StatsSnapshot before = model_->stats()->read();
    const uint64_t hits0 = before.expert_hits, misses0 = before.expert_misses;
    ChatTurn& reply = done.reply;
    reply.role = "assistant";
    bool stopped = false;
    std::vector<float> logits = prefill(ids, st, stopped);

    const text::Tokenizer& tok = text_->tok;
    text::ChatOptions co;
    co.enable_thinking = opt_.enable_thinking;
    const std::string opening = trim_right(text_->tmpl.generation_prompt(co));
    ThinkSplitter split(opening.ends_with("<think>"));
    text::StreamDecoder dec(tok);
    std::vector<std::pair<std::string, bool>> pieces;
    auto send_pieces = [&] {
        for (auto& [s, th] : pieces) {
            (th ? reply.thinking : reply.content) += s;
            emit(event(ChatEvent::Token, std::move(s), th));
        }
        pieces.clear();
    };

    snap_.phase = StatsSnapshot::Phase::Decode;
    snap_.tokens_generated = 0;
    recent_.clear();
    const auto t_dec = Clock::now();
    const float* l = logits.data();
    std::span<const float> block_max;  // of l once it comes from forward() (Model::logits_block_max)
    const size_t nv = size_t(model_->hparams().n_vocab);
    while (!stopped) {
        if (stop_) { stopped = true; break; }
        if (opt_.max_reply_tokens > 0 && st.n_tokens >= opt_.max_reply_tokens) { st.finish = ReplyStats::Finish::Length; break; }
        const int32_t next = sampler_->sample(std::span<const float>(l, nv), block_max);
        if (tok.is_control(next) || next == tok.vocab().eos_id || next == tok.vocab().eot_id) break;
        sampler_->accept(next);
        if (st.n_tokens++ == 0) st.ttft_s = std::chrono::duration<double>(Clock::now() - t_start).count();
        split.push(dec.push(next), pieces);
        send_pieces();

        const auto now = Clock::now();
        recent_.push_back(now);
        if (recent_.size() > 9) recent_.erase(recent_.begin());
        const double span = std::chrono::duration<double>(recent_.back() - recent_.front()).count();
        snap_.tok_s = recent_.size() > 1 && span > 0 ? double(recent_.size() - 1) / span : 0;
        snap_.tokens_generated = st.n_tokens;
        publish();

        if (model_->n_past() >= n_ctx) { st.finish = ReplyStats::Finish::ContextFull; break; }
        l = model_->forward(next);
        block_max = model_->logits_block_max();
        cached_.push_back(next);
        if (opt_.token_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.token_delay_ms));
    }
    if (stopped) st.finish = ReplyStats::Finish::Stopped;
    split.push(dec.flush(), pieces);
    split.flush(pieces);
    send_pieces();
    st.decode_s = std::chrono::duration<double>(Clock::now() - t_dec).count();
    st.decode_tok_s = st.decode_s > 0 ? double(st.n_tokens) / st.decode_s : 0;
    const StatsSnapshot after = model_->stats()->read();
    const uint64_t hits = after.expert_hits - hits0, lookups = hits + (after.expert_misses - misses0);
    if (lookups > 0) st.cache_hit_rate = double(hits) / double(lookups);
    // Reasoning text keeps no trailing blank lines; the answer starts after the template's blank line.
    reply.thinking = trim_right(reply.thinking);
    snap_.phase = StatsSnapshot::Phase::Idle;
    publish();
    {
        std::lock_guard<std::mutex> lk(m_);
        turns_.push_back(reply);
    }
    emit(std::move(done));
}

}  // namespace sluice
