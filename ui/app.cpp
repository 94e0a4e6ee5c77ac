#include "ui/app.h"

#define NCURSES_NOMACROS  // curses macros (clear, erase, move...) would clash with member names
#include <curses.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "ui/commands.h"
#include "ui/gauges.h"
#include "ui/input.h"
#include "ui/layout.h"
#include "ui/screen.h"
#include "ui/transcript.h"

namespace sluice::ui {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

volatile std::sig_atomic_t g_sigint = 0, g_sigterm = 0;
void on_sigint(int) { g_sigint = 1; }
void on_sigterm(int) { g_sigterm = 1; }

std::string fmt1(double x) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", x);
    return b;
}

std::string hit_rate(double r) { return " · expert cache " + std::to_string(int(r * 100 + 0.5)) + "%"; }

std::string footer_of(const ReplyStats& s) {
    std::string f = std::to_string(s.n_tokens) + " tok";
    if (s.n_tokens) f += " · " + fmt_rate(s.decode_tok_s) + " tok/s";
    f += " · prompt " + std::to_string(s.prompt_tokens - s.prompt_cached) + " tok";
    if (s.prompt_cached) f += " (+" + std::to_string(s.prompt_cached) + " cached)";
    if (s.prompt_s > 0) f += " " + fmt_rate(s.prompt_tok_s) + " tok/s";
    if (s.n_tokens) f += " · first token " + fmt1(s.ttft_s) + " s";
    if (s.cache_hit_rate >= 0) f += hit_rate(s.cache_hit_rate);
    if (s.finish != ReplyStats::Finish::EndOfTurn) f += " · " + std::string(finish_name(s.finish));
    return f;
}

std::string footer_of(const StoredMessage& m) {
    std::string f = std::to_string(m.n_tokens) + " tok";
    if (m.figures.decode_tok_s) f += " · " + fmt_rate(*m.figures.decode_tok_s) + " tok/s";
    if (m.figures.prompt_tok_s) f += " · prompt " + fmt_rate(*m.figures.prompt_tok_s) + " tok/s";
    if (m.figures.ttft_s) f += " · first token " + fmt1(*m.figures.ttft_s) + " s";
    if (m.figures.cache_hit_rate) f += hit_rate(*m.figures.cache_hit_rate);
    if (!m.figures.finish.empty() && m.figures.finish != finish_name(ReplyStats::Finish::EndOfTurn)) f += " · " + m.figures.finish;
    return f;
}

std::string key_bytes(int key) {
    switch (key) {
    case KEY_UP: return "\033[A";
    case KEY_DOWN: return "\033[B";
    case KEY_RIGHT: return "\033[C";
    case KEY_LEFT: return "\033[D";
    case KEY_HOME: return "\033[H";
    case KEY_END: return "\033[F";
    case KEY_DC: return "\033[3~";
    case KEY_BACKSPACE: return "\x7f";
    case KEY_ENTER: return "\r";
    default: return {};
    }
}

class ChatApp {
public:
    explicit ChatApp(const ChatAppOptions& opt)
        : opt_(opt), store_(*opt.store), session_(opt.session), input_(opt.input_history), system_(opt.system_prompt),
          sampler_(opt.session.sampler) {
        if (!system_.empty()) session_.set_system(system_);
    }

    int run() {
        struct sigaction sa {};
        sa.sa_handler = on_sigint;
        sigaction(SIGINT, &sa, nullptr);
        sa.sa_handler = on_sigterm;
        sigaction(SIGTERM, &sa, nullptr);
        transcript_.add(Entry::Info, "loading " + opt_.session.model_path + " …   (/help lists commands)");
        draw();
        auto last_tick = Clock::now();
        while (!quit_) {
            pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {session_.notify_fd(), POLLIN, 0}};
            const int n = ::poll(fds, 2, 100);
            if (n > 0 && (fds[1].revents & POLLIN)) session_.drain_notify();
            bool keys = guarded([&] { return read_keys(); });
            if (g_sigint) {
                g_sigint = 0;
                on_ctrl_c();
                keys = true;
            }
            if (g_sigterm) break;
            const bool events = guarded([&] { return read_events(); });
            const auto now = Clock::now();
            const bool tick = now - last_tick >= 250ms;
            if (tick) {
                last_tick = now;
                sample_stats();
            }
            // Keys are drawn at once; streamed text at most ~30 times a second.
            if (keys || tick || (events && now - last_draw_ >= 33ms) || (dirty_ && now - last_draw_ >= 33ms)) draw();
            else if (events) dirty_ = true;
        }
        finish_store_work();
        return 0;
    }

private:
    // A failing store (a full disk, say) becomes an error line; the chat goes on.
    template <class F>
    bool guarded(F f) {
        try {
            return f();
        } catch (const std::exception& e) {
            add_error(std::string("history: ") + e.what());
            return true;
        }
    }

    // ---- keys ---------------------------------------------------------------------------------
    bool read_keys() {
        bool any = false;
        wint_t wc;
        int r;
        while ((r = get_wch(&wc)) != ERR) {
            any = true;
            if (r == KEY_CODE_YES) on_key(int(wc));
            else on_char(wc);
            while (auto line = input_.take_line()) submit(*line);
            if (input_.eof() && !generating()) quit_ = true;
            if (quit_) break;
        }
        return any;
    }

    void on_key(int k) {
        if (pasting_ && k != kKeyPasteEnd) return;
        const int page = std::max(1, layout_.chat.h - 2);
        switch (k) {
        case KEY_RESIZE: break;  // draw() reads the new size
        case KEY_PPAGE: transcript_.scroll_by(page, layout_.chat.h); break;
        case KEY_NPAGE: transcript_.scroll_by(-page, layout_.chat.h); break;
        case KEY_MOUSE: {
            MEVENT me;
            if (getmouse(&me) == OK) {
                if (me.bstate & BUTTON4_PRESSED) transcript_.scroll_by(3, layout_.chat.h);
                if (me.bstate & BUTTON5_PRESSED) transcript_.scroll_by(-3, layout_.chat.h);
            }
            break;
        }
        case KEY_F(2): want_list_ = !want_list_; break;
        case kKeyPasteBegin: pasting_ = true; paste_.clear(); break;
        case kKeyPasteEnd:
            pasting_ = false;
            input_.insert(paste_);
            paste_.clear();
            break;
        default: {
            const std::string b = key_bytes(k);
            if (!b.empty()) input_.feed(b);
        }
        }
    }

    void on_char(wint_t wc) {
        if (pasting_) {
            append_utf8(paste_, wc == '\r' ? uint32_t('\n') : uint32_t(wc));
            return;
        }
        if (wc == 27) {  // Esc alone, or Alt+key
            // While a reply runs, Esc always stops it (a key typed right after is not Alt+key).
            if (generating() || prefilling_) return on_escape();
            wint_t next;
            const int r = get_wch(&next);
            if (r == ERR) return on_escape();
            if (r == OK && (next == '\r' || next == '\n')) return input_.insert("\n");
            std::string b = "\033";
            if (r == OK) append_utf8(b, uint32_t(next));
            return input_.feed(b);
        }
        if (wc == 3) return on_ctrl_c();
        if (wc == 4 && input_.text().empty()) {
            if (!generating()) quit_ = true;
            return;
        }
        if (wc == 12) {  // Ctrl-L: redraw everything
            clearok(curscr, TRUE);
            return;
        }
        std::string b;
        append_utf8(b, uint32_t(wc));
        input_.feed(b);
    }

    void on_escape() {
        if (input_.searching()) return input_.feed("\x07");  // abort the history search
        if (generating() || prefilling_) {
            session_.stop();
            hint_ = "stopping…";
        } else if (editing_) {
            editing_ = false;
            input_.clear();
            hint_ = "edit cancelled";
        }
    }

    void on_ctrl_c() {
        const auto now = Clock::now();
        if (generating() || prefilling_) {
            session_.stop();
            hint_ = "stopping…";
        } else if (!input_.text().empty()) {
            input_.clear();
            editing_ = false;
        } else if (now - last_ctrl_c_ < 2s) {
            quit_ = true;
        } else {
            hint_ = "press Ctrl-C again to quit";
        }
        last_ctrl_c_ = now;
    }

    // ---- requests ---------------------------------------------------------------------------------
    enum class Op { Send, Regen, Edit, Load, Setting, Save };
    struct Pending {
        Op op;
        std::string user_text;
        int64_t user_seq = 0;  // Send: the user message, stored when sent
    };

    bool generating() const { return active_ != 0; }

    void submit(std::string line) {
        if (line.find_first_not_of(" \n\t") == std::string::npos) return;
        if (auto cmd = parse_command(line)) return command(*cmd);
        if (generating() || prefilling_) {
            input_.set_text(line);
            add_info("a reply is being generated: Esc stops it, then send again");
            return;
        }
        transcript_.scroll_to_end();
        if (editing_) {
            editing_ = false;
            transcript_drop_from_last_user();
            transcript_.add(Entry::User, line);
            active_ = session_.edit_last(line);
            pending_[active_] = {Op::Edit, line};
        } else {
            transcript_.add(Entry::User, line);
            // The message is committed now: a reply that never comes (a crash) does not lose it.
            ensure_conversation(line);
            StoredMessage u;
            u.role = "user";
            u.content = line;
            const int64_t seq = store_.append(conv_id_, u);
            list_stale_ = true;
            active_ = session_.send(line);
            pending_[active_] = {Op::Send, line, seq};
        }
        hint_.clear();
    }

    void add_info(const std::string& s) {
        transcript_.add(Entry::Info, s);
        transcript_.scroll_to_end();
    }
    void add_error(const std::string& s) {
        transcript_.add(Entry::Error, s);
        transcript_.scroll_to_end();
    }

    // Rebuilds the transcript without the last user turn and what followed (for /edit).
    void transcript_drop_from_last_user() { rebuild_transcript(/*drop_last_user=*/true, false); }
    void transcript_drop_last_reply() { rebuild_transcript(false, true); }
    void rebuild_transcript(bool drop_last_user, bool drop_last_reply) {
        auto turns = session_.turns();
        if (drop_last_reply && !turns.empty() && turns.back().role == "assistant") turns.pop_back();
        if (drop_last_user) {
            while (!turns.empty() && turns.back().role != "user") turns.pop_back();
            if (!turns.empty()) turns.pop_back();
        }
        transcript_.clear();
        size_t reply_i = 0;
        for (const ChatTurn& t : turns) {
            if (t.role == "user") transcript_.add(Entry::User, t.content);
            else if (t.role == "assistant") {
                const std::string f = reply_i < footers_.size() ? footers_[reply_i] : "";
                transcript_.add_reply(t.content, t.thinking, f);
                ++reply_i;
            }
        }
    }

    void command(const Command& c) {
        list_stale_ = true;
        const std::string& a = c.rest;
        std::string why;
        if (c.name == "quit" || c.name == "q" || c.name == "exit") {
            quit_ = true;
        } else if (c.name == "help") {
            add_info(kHelpText);
        } else if (c.name == "new") {
            if (busy_refuse()) return;
            conv_id_ = 0;
            footers_.clear();
            transcript_.clear();
            std::vector<ChatTurn> turns;
            if (!system_.empty()) turns.push_back({"system", system_, {}});
            pending_[session_.load(turns, false)] = {Op::Load, {}};
            add_info("new conversation");
        } else if (c.name == "list") {
            auto list = store_.list();
            if (list.empty()) return add_info("no saved conversations yet");
            std::string s = "conversations (/open N):";
            for (const auto& ci : list)
                s += "\n" + std::string(ci.id == conv_id_ ? "▸ #" : "  #") + std::to_string(ci.id) + "  " + ci.title +
                     "  (" + std::to_string(ci.n_messages) + " messages)";
            add_info(s);
        } else if (c.name == "open") {
            if (busy_refuse()) return;
            auto id = parse_id(a, why);
            if (!id) return add_error(why);
            open_conversation(*id);
        } else if (c.name == "rename") {
            if (a.empty()) return add_error("usage: /rename TITLE");
            ensure_conversation(a);
            auto ci = store_.get(conv_id_);
            ci->title = a;
            store_.update(*ci);
            add_info("renamed to: " + a);
        } else if (c.name == "delete") {
            auto id = parse_id(a, why);
            if (!id) return add_error(why);
            if (*id == conv_id_ && busy_refuse()) return;
            if (!store_.remove(*id)) return add_error("there is no conversation #" + std::to_string(*id));
            add_info("deleted conversation #" + std::to_string(*id));
            if (*id == conv_id_) command({"new", ""});
        } else if (c.name == "system") {
            if (a.empty()) return add_info(system_.empty() ? "no system prompt (/system TEXT sets one)" : "system prompt: " + system_);
            system_ = a == "-" ? "" : a;
            pending_[session_.set_system(system_)] = {Op::Setting, {}};
            if (conv_id_) {
                auto ci = store_.get(conv_id_);
                ci->system_prompt = system_;
                store_.update(*ci);
            }
        } else if (c.name == "set") {
            if (a.empty()) return add_info(describe(sampler_));
            const size_t sp = a.find(' ');
            if (sp == std::string::npos) return add_error("usage: /set KEY VALUE (temp, top_p, top_k, min_p, repeat_penalty, seed)");
            SamplerParams p = sampler_;
            const std::string err = apply_set(p, a.substr(0, sp), a.substr(sp + 1));
            if (!err.empty()) return add_error(err);
            sampler_ = p;
            pending_[session_.set_sampler(p)] = {Op::Setting, {}};
            add_info(describe(p));
        } else if (c.name == "experts") {
            int64_t k = 0;
            try {
                size_t used = 0;
                k = std::stoll(a, &used);
                if (used != a.size()) k = 0;
            } catch (...) {
            }
            if (k <= 0) return add_error("usage: /experts K (a whole number >= 1)");
            pending_[session_.set_experts(k)] = {Op::Setting, {}};
        } else if (c.name == "regen") {
            if (busy_refuse()) return;
            transcript_drop_last_reply();
            transcript_.scroll_to_end();
            active_ = session_.regenerate();
            pending_[active_] = {Op::Regen, {}};
        } else if (c.name == "edit") {
            if (busy_refuse()) return;
            auto turns = session_.turns();
            auto it = std::find_if(turns.rbegin(), turns.rend(), [](const ChatTurn& t) { return t.role == "user"; });
            if (it == turns.rend()) return add_error("there is no message to edit yet");
            editing_ = true;
            input_.set_text(it->content);
            hint_ = "editing your last message: Enter sends it and regenerates, Esc cancels";
        } else if (c.name == "export") {
            export_conversation(a);
        } else if (c.name == "stats") {
            show_stats();
        } else if (c.name == "think") {
            if (a == "on") transcript_.set_show_thinking(true);
            else if (a == "off") transcript_.set_show_thinking(false);
            else return add_error("usage: /think on|off");
        } else {
            add_error("unknown command /" + c.name + " (/help lists them)");
        }
    }

    // The store is read when it changed, not on every frame (a database sits behind it).
    const std::vector<ConversationInfo>& conversations() {
        if (list_stale_) {
            list_ = store_.list();
            list_stale_ = false;
        }
        return list_;
    }
    std::string title_of(int64_t id) {
        for (const auto& ci : conversations())
            if (ci.id == id) return ci.title;
        return {};
    }

    bool busy_refuse() {
        if (!generating() && !prefilling_) return false;
        add_error("busy with a reply: Esc stops it first");
        return true;
    }

    void ensure_conversation(const std::string& title_hint) {
        if (conv_id_) return;
        ConversationInfo ci;
        std::string t = title_hint.substr(0, title_hint.find('\n'));
        ci.title = text_width(t) > 48 ? fit(t, 48) : t;
        ci.model_name = std::filesystem::path(opt_.session.model_path).filename().string();
        ci.model_path = opt_.session.model_path;
        ci.system_prompt = system_;
        conv_id_ = store_.create(ci);
    }

    void open_conversation(int64_t id) {
        auto ci = store_.get(id);
        if (!ci) return add_error("there is no conversation #" + std::to_string(id) + " (/list shows them)");
        conv_id_ = id;
        system_ = ci->system_prompt;
        transcript_.clear();
        footers_.clear();
        std::vector<ChatTurn> turns;
        if (!system_.empty()) turns.push_back({"system", system_, {}});
        for (const StoredMessage& m : store_.messages(id)) {
            turns.push_back({m.role, m.content, m.thinking});
            if (m.role == "user") transcript_.add(Entry::User, m.content);
            else if (m.role == "assistant") {
                footers_.push_back(footer_of(m));
                transcript_.add_reply(m.content, m.thinking, footers_.back());
            }
        }
        add_info("opened #" + std::to_string(id) + ": " + ci->title);
        prefilling_ = true;
        pending_[session_.load(turns, true, id)] = {Op::Load, {}};
    }

    void export_conversation(const std::string& args) {
        std::string fmt = "md", path;
        std::string rest = args;
        if (rest.rfind("md", 0) == 0 && (rest.size() == 2 || rest[2] == ' ')) rest.erase(0, 2);
        else if (rest.rfind("json", 0) == 0 && (rest.size() == 4 || rest[4] == ' ')) fmt = "json", rest.erase(0, 4);
        while (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
        path = rest.empty() ? "sluice-chat-" + std::to_string(conv_id_) + "." + fmt : rest;
        const auto turns = session_.turns();
        if (turns.empty()) return add_error("nothing to export yet");
        // A stored conversation is exported by the store (with each reply's figures).
        std::string out = conv_id_ ? store_.export_text(conv_id_, fmt) : std::string();
        if (out.empty()) out = export_turns(turns, fmt);
        std::ofstream f(path, std::ios::binary);
        f << out;
        if (!f) return add_error("cannot write " + path);
        add_info("exported " + std::to_string(turns.size()) + " messages to " + path);
    }

    // What a store that leaves export to the UI gets: the turns as the engine has them.
    std::string export_turns(const std::vector<ChatTurn>& turns, const std::string& fmt) {
        std::string out;
        if (fmt == "json") {
            nlohmann::json j;
            j["model"] = std::filesystem::path(opt_.session.model_path).filename().string();
            if (conv_id_) j["title"] = store_.get(conv_id_)->title;
            j["messages"] = nlohmann::json::array();
            for (const ChatTurn& t : turns) {
                nlohmann::json m = {{"role", t.role}, {"content", t.content}};
                if (!t.thinking.empty()) m["thinking"] = t.thinking;
                j["messages"].push_back(m);
            }
            out = j.dump(2) + "\n";
        } else {
            out = "# " + (conv_id_ ? store_.get(conv_id_)->title : std::string("Conversation")) + "\n\n";
            for (const ChatTurn& t : turns) {
                out += "## " + t.role + "\n\n";
                if (!t.thinking.empty()) out += "<think>\n" + t.thinking + "\n</think>\n\n";
                out += t.content + "\n\n";
            }
        }
        return out;
    }

    void show_stats() {
        if (footers_.empty()) return add_info("no replies yet");
        std::string s = "replies in this conversation:";
        for (size_t i = 0; i < footers_.size(); ++i) s += "\n  " + std::to_string(i + 1) + ". " + footers_[i];
        const StatsSnapshot st = session_.stats().read();
        s += "\ncontext " + std::to_string(st.n_ctx_used) + "/" + std::to_string(st.n_ctx) + " · resident " + fmt_bytes(st.rss_bytes);
        add_info(s);
    }

    // ---- engine events ------------------------------------------------------------------------------
    bool read_events() {
        bool any = false;
        ChatEvent ev;
        while (session_.poll_event(ev)) {
            any = true;
            on_event(ev);
        }
        return any;
    }

    void on_event(ChatEvent& ev) {
        const auto it = pending_.find(ev.request);
        const Pending p = it != pending_.end() ? it->second : Pending{Op::Setting, {}};
        const bool terminal = ev.kind != ChatEvent::Token && ev.kind != ChatEvent::Info && ev.kind != ChatEvent::Ready;
        if (terminal && it != pending_.end()) pending_.erase(it);
        switch (ev.kind) {
        case ChatEvent::Ready:
            model_ = session_.summary();
            store_.set_setting("last_model", std::filesystem::absolute(opt_.session.model_path).string());
            add_info("ready: " + ev.text + " · context " + std::to_string(model_.n_ctx) + " tokens");
            break;
        case ChatEvent::Token:
            transcript_.append_reply(ev.text, ev.thinking);
            break;
        case ChatEvent::Done:
            if (ev.request == active_) active_ = 0;
            hint_.clear();
            if (ev.dropped) {
                forget_user_message(p);
                add_info("stopped before it started");
                break;
            }
            footers_.push_back(footer_of(ev.stats));
            transcript_.finish_reply(footers_.back());
            save_reply(p, ev);
            save_snapshot();
            break;
        case ChatEvent::Prefilled: {
            prefilling_ = false;
            const ReplyStats& st = ev.stats;
            const int64_t processed = st.prompt_tokens - st.prompt_cached;
            std::string s;
            if (st.prompt_restored)
                s = "resumed from its snapshot: " + std::to_string(st.prompt_restored) + " tokens restored, " +
                    std::to_string(processed) + " processed";
            else if (st.prompt_tokens)
                s = "conversation processed: " + std::to_string(processed) + " tokens" +
                    (st.prompt_cached ? " (" + std::to_string(st.prompt_cached) + " already cached)" : "");
            if (!s.empty()) add_info(s + (st.finish == ReplyStats::Finish::Stopped ? " · stopped" : ""));
            // Processed rather than restored: keep the result, so the next /open is instant.
            if (processed > 1 && st.finish != ReplyStats::Finish::Stopped) save_snapshot();
            break;
        }
        case ChatEvent::Saved:
            break;
        case ChatEvent::Applied:
            add_info(ev.text);
            model_ = session_.summary();
            break;
        case ChatEvent::Info:
            add_info(ev.text);
            break;
        case ChatEvent::Error:
            if (ev.request == active_ && active_) {
                active_ = 0;
                if (transcript_.replying()) transcript_.finish_reply("failed");
            }
            if (p.op == Op::Load) prefilling_ = false;
            forget_user_message(p);  // the engine dropped the turn too
            add_error(ev.text);
            hint_.clear();
            break;
        }
    }

    void save_reply(const Pending& p, const ChatEvent& ev) {
        list_stale_ = true;
        StoredMessage reply;
        reply.role = "assistant";
        reply.content = ev.reply.content;
        reply.thinking = ev.reply.thinking;
        reply.n_tokens = ev.stats.n_tokens;
        reply.partial = ev.stats.finish == ReplyStats::Finish::Stopped;
        if (ev.stats.prompt_s > 0) reply.figures.prompt_tok_s = ev.stats.prompt_tok_s;
        if (ev.stats.n_tokens) {
            reply.figures.decode_tok_s = ev.stats.decode_tok_s;
            reply.figures.ttft_s = ev.stats.ttft_s;
        }
        if (ev.stats.cache_hit_rate >= 0) reply.figures.cache_hit_rate = ev.stats.cache_hit_rate;
        reply.figures.finish = finish_name(ev.stats.finish);
        const bool had = conv_id_ != 0;
        ensure_conversation(p.user_text.empty() ? "conversation" : p.user_text);
        if (had && (p.op == Op::Regen || p.op == Op::Edit)) {
            const auto msgs = store_.messages(conv_id_);
            const std::string role = p.op == Op::Regen ? "assistant" : "user";
            for (auto m = msgs.rbegin(); m != msgs.rend(); ++m)
                if (m->role == role) {
                    store_.erase_from(conv_id_, m->seq);
                    break;
                }
        }
        if (p.op == Op::Edit || (p.op == Op::Send && !p.user_seq)) {
            StoredMessage u;
            u.role = "user";
            u.content = p.user_text;
            store_.append(conv_id_, u);
        }
        store_.append(conv_id_, reply);
    }

    void forget_user_message(const Pending& p) {
        if (p.op != Op::Send || !p.user_seq || !conv_id_) return;
        store_.erase_from(conv_id_, p.user_seq);
        list_stale_ = true;
    }

    // The engine thread saves the state it holds now (after the reply is on screen: it takes a copy,
    // compression and a write) as this conversation's prefill snapshot.
    void save_snapshot() {
        if (!opt_.session.snapshots || !conv_id_) return;
        pending_[session_.save_snapshot(conv_id_)] = {Op::Save, {}};
    }

    // Leaving: a reply being stopped is still stored (as partial), and snapshot saves finish, for a
    // few seconds at most.
    void finish_store_work() {
        if (generating() || prefilling_) session_.stop();
        auto open = [&] {
            for (const auto& [id, p] : pending_)
                if (p.op == Op::Send || p.op == Op::Regen || p.op == Op::Edit || p.op == Op::Save) return true;
            return false;
        };
        const auto end = Clock::now() + 3s;
        ChatEvent ev;
        while (open() && Clock::now() < end)
            if (session_.wait_event(ev, 100ms)) guarded([&] { on_event(ev); return true; });
    }

    // ---- drawing --------------------------------------------------------------------------------------
    void sample_stats() {
        const StatsSnapshot s = session_.stats().read();
        if (s.phase == StatsSnapshot::Phase::Decode) tok_series_.push(s.tok_s);
        if (s.bytes_read_total != last_bytes_) {
            disk_series_.push(s.disk_mb_s);
            last_bytes_ = s.bytes_read_total;
        }
    }

    void draw() {
        last_draw_ = Clock::now();
        dirty_ = false;
        const int rows = screen_.rows(), cols = screen_.cols();
        LayoutWants want{want_list_, 1};
        layout_ = compute_layout(cols, rows, want);
        InputView iv = input_view(input_.prompt(), input_.text(), input_.point(), layout_.input.w);
        want.input_lines = int(iv.lines.size());
        layout_ = compute_layout(cols, rows, want);
        if (layout_.input.w != layout_.chat.w) iv = input_view(input_.prompt(), input_.text(), input_.point(), layout_.input.w);

        screen_.begin_frame();
        if (!layout_.header.empty()) {
            std::string h = " sluice · " + (model_.name.empty() ? std::string("loading…") : model_.name);
            if (model_.n_expert) h += " · " + std::to_string(model_.n_expert_used) + "/" + std::to_string(model_.n_expert) + " experts";
            h += " · " + (conv_id_ ? "#" + std::to_string(conv_id_) + " " + title_of(conv_id_) : std::string("new conversation"));
            screen_.draw(0, 0, cols, Line{{{h, Bold}}, Plain}, Selected);
        }
        if (layout_.list_shown) draw_list();

        const Rect& c = layout_.chat;
        const auto& lines = transcript_.lines(c.w);
        const int total = int(lines.size());
        const int end = std::max(0, total - transcript_.scroll());
        const int start = std::max(0, end - c.h);
        for (int i = start; i < end; ++i) screen_.draw(c.y + (i - start), c.x, c.w, lines[size_t(i)]);

        if (!layout_.rule.empty()) {
            std::string rule;
            for (int i = 0; i < layout_.rule.w; ++i) rule += "─";
            Line l{{{rule, Dim}}, Plain};
            if (transcript_.scroll() > 0) {
                const std::string note = " ↓ " + std::to_string(transcript_.scroll()) + " more lines (PgDn) ";
                l = Line{{{std::string(), Dim}}, Plain};
                std::string left;
                for (int i = 0; i < layout_.rule.w - text_width(note) - 2; ++i) left += "─";
                l.spans = {{left, Dim}, {note, Accent}, {"──", Dim}};
            }
            screen_.draw(layout_.rule.y, layout_.rule.x, layout_.rule.w, l);
        }

        const Rect& in = layout_.input;
        const int first = std::max(0, iv.cursor_row - in.h + 1);
        for (int i = 0; i < in.h && first + i < int(iv.lines.size()); ++i)
            screen_.draw(in.y + i, in.x, in.w, iv.lines[size_t(first + i)]);

        if (!layout_.gauges.empty()) {
            GaugeInput gi;
            gi.s = session_.stats().read();
            gi.tok_s = &tok_series_;
            gi.disk = &disk_series_;
            gi.hint = !hint_.empty() ? hint_ : generating() ? "Esc stops the reply" : "/help · PgUp/PgDn scroll";
            const auto gl = gauge_lines(gi, layout_.gauges.w, layout_.gauges.h);
            for (int i = 0; i < layout_.gauges.h && i < int(gl.size()); ++i)
                screen_.draw(layout_.gauges.y + i, 0, layout_.gauges.w, gl[size_t(i)]);
        }
        screen_.end_frame(in.y + iv.cursor_row - first, in.x + iv.cursor_col);
    }

    void draw_list() {
        const Rect& r = layout_.list;
        screen_.draw(r.y, r.x, r.w, Line{{{" Conversations", Bold}}, Plain});
        int y = r.y + 1;
        for (const auto& ci : conversations()) {
            if (y >= r.y + r.h) break;
            const std::string s = " #" + std::to_string(ci.id) + " " + ci.title;
            screen_.draw(y++, r.x, r.w, Line{{{pad_right(s, r.w), ci.id == conv_id_ ? uint16_t(Selected) : uint16_t(Plain)}}, Plain});
        }
        for (int i = 0; i < layout_.list_border.h; ++i)
            screen_.draw(layout_.list_border.y + i, layout_.list_border.x, 1, Line{{{"│", Dim}}, Plain});
    }

    const ChatAppOptions& opt_;
    ConversationStore& store_;
    Screen screen_;
    ChatSession session_;
    LineInput input_;
    Transcript transcript_;
    Layout layout_;
    Series tok_series_, disk_series_;
    uint64_t last_bytes_ = 0;
    ModelSummary model_;
    std::string system_, hint_, paste_;
    SamplerParams sampler_;
    std::map<uint64_t, Pending> pending_;
    std::vector<ConversationInfo> list_;
    bool list_stale_ = true;
    std::vector<std::string> footers_;  // figures of this conversation's replies, in order
    uint64_t active_ = 0;               // the generating request, 0: none
    int64_t conv_id_ = 0;               // 0: not stored yet (created with the first reply)
    bool prefilling_ = false, editing_ = false, pasting_ = false, want_list_ = true, quit_ = false, dirty_ = false;
    Clock::time_point last_draw_{}, last_ctrl_c_{};
};

}  // namespace

std::string data_dir() {
    const char* x = std::getenv("XDG_DATA_HOME");
    const char* home = std::getenv("HOME");
    std::string d = x && *x ? std::string(x) + "/sluice" : std::string(home ? home : ".") + "/.local/share/sluice";
    std::error_code ec;
    std::filesystem::create_directories(d, ec);
    return d;
}

int run_chat_app(const ChatAppOptions& opt) {
    ensure_utf8_locale();
    ChatApp app(opt);
    return app.run();
}

}  // namespace sluice::ui
