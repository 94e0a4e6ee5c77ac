// `sluice chat`: the terminal chat. The engine thread (engine/session.h) generates; this loop reads
// keys, engine events and the stats board, and draws panes, never blocking on the engine.
#pragma once
#include <string>

#include "engine/session.h"
#include "ui/conversation_store.h"

namespace sluice::ui {

struct ChatAppOptions {
    ChatSessionOptions session;
    ConversationStore* store = nullptr;  // required
    std::string input_history;           // readline history file ("" : none)
    std::string system_prompt;
};

// Runs until /quit, Ctrl-D, a second Ctrl-C or SIGTERM; returns the exit code.
int run_chat_app(const ChatAppOptions& opt);

// ~/.local/share/sluice (or $XDG_DATA_HOME/sluice), created if missing.
std::string data_dir();

}  // namespace sluice::ui
