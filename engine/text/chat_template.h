// Chat messages -> prompt text, for the template families sluice knows. The family is recognised
// from `tokenizer.chat_template` by its markers (as llama.cpp's llm_chat_detect_template does);
// sluice does not run Jinja.
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::text {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant", "tool"
    std::string content;
};

struct ChatOptions {
    bool add_generation_prompt = true;     // end with the assistant's opening
    std::optional<bool> enable_thinking;   // Qwen3: false -> empty <think></think> block in the opening
};

enum class ChatKind { ChatML, Qwen3, DeepSeek3, KimiK2 };

class ChatTemplate {
public:
    // From tokenizer.chat_template. Empty -> ChatML with defaulted() set (the caller may say so);
    // an unrecognised template -> Error quoting its start.
    static ChatTemplate detect(std::string_view tmpl);
    // By name ("chatml", "qwen3", "deepseek3", "kimi-k2"), e.g. from a command-line override.
    static ChatTemplate by_name(std::string_view name);

    ChatKind kind() const { return kind_; }
    const char* name() const;
    bool defaulted() const { return defaulted_; }
    // The opening of the assistant's turn (what add_generation_prompt appends).
    std::string generation_prompt(const ChatOptions& opt = {}) const;
    std::string apply(std::span<const ChatMessage> messages, const ChatOptions& opt = {}) const;

private:
    ChatKind kind_ = ChatKind::ChatML;
    bool defaulted_ = false;
    std::string default_system_;  // Qwen2.5 adds one when the conversation has none
};

}  // namespace sluice::text
