#!/usr/bin/env bash
# On the device machine, from the lead checkout's root, with .dev carried:
#   bash .dev/demo/run_device.sh [train_demo.py options]
# .dev/demo holds train_demo.py, data/ (dict_to_chat.py's output) and sluice (a build with SLUICE_UI=OFF).
# What comes back under $OUT: train.log, demo.json, the reference logits/tokens/greedy ids and the
# Q8_0 file in 15 MB parts (the device returns files of at most 16 MiB).
set -eo pipefail
D=.dev/demo
W=/tmp/demo-work
export PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv,noheader
python3 $D/train_demo.py $D/data .dev/conv $D/sluice $W "$@" 2>&1 | tee $OUT/train.log
cp $W/demo.json $W/demo.logits.f32 $W/demo.tokens.txt $W/demo.greedy.txt $OUT/
if [ -f $W/demo.gguf ]; then split -b 15M -d $W/demo.gguf $OUT/demo.gguf.part; sha256sum $W/demo.gguf; fi
ls -la $OUT
