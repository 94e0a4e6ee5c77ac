// Command-line verbs; each gets the arguments after the verb and returns the exit code.
// Bad input throws sluice::Error; main prints it as one line.
#pragma once

namespace sluice {

int verb_run(int argc, char** argv);
int verb_logits(int argc, char** argv);
int verb_tokenize(int argc, char** argv);
int verb_info(int argc, char** argv);
int verb_gen_model(int argc, char** argv);
int verb_quantize(int argc, char** argv);
int verb_bench(int argc, char** argv);
int verb_gpus(int argc, char** argv);
#ifdef SLUICE_UI
int verb_chat(int argc, char** argv);
int verb_history(int argc, char** argv);
#endif

}  // namespace sluice
