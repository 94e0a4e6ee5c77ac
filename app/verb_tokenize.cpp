// sluice tokenize MODEL.gguf --text TEXT (or the text on stdin): token ids, space-separated, one line.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "app/args.h"
#include "app/verbs.h"
#include "engine/demo_model.h"
#include "engine/error.h"
#include "engine/gguf/gguf.h"
#include "engine/text/tokenizer.h"

namespace sluice {

int verb_tokenize(int argc, char** argv) {
    Args a(argc, argv, {"--text"}, {"--no-special"});
    if (a.positional().size() != 1) throw Error("usage: sluice tokenize MODEL.gguf --text TEXT (or text on stdin)");
    auto f = gguf::File::open(resolve_model_path(a.positional()[0]));
    text::Tokenizer tok(text::from_gguf(*f));
    std::string input;
    if (a.has("--text")) input = a.str("--text");
    else input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    const auto ids = tok.encode(input, !a.has("--no-special"));
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
    return 0;
}

}  // namespace sluice
