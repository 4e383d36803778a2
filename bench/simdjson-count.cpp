// bench: a SIMD JSON parser's own figure on the engine bench's corpus, as the reference
// beside maskctl's parse-only figure. simdjson (Debian libsimdjson-dev) parses the whole
// file into its DOM (validating all of it) ROUNDS times; prints the best as JSON:
// {"mbps": ..., "implementation": "...", "records": N}. The file is read into memory
// first and that read is not timed (maskctl's figures include its reads and writes).
// Usage: simdjson-count FILE ROUNDS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <simdjson.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s FILE ROUNDS\n", argv[0]);
        return 2;
    }
    simdjson::padded_string json;
    if (simdjson::padded_string::load(argv[1]).get(json)) {
        std::fprintf(stderr, "simdjson-count: cannot read %s\n", argv[1]);
        return 1;
    }
    simdjson::dom::parser parser;
    double best = 1e30;
    size_t records = 0;
    for (int r = 0; r < std::atoi(argv[2]); r++) {
        auto t0 = std::chrono::steady_clock::now();
        simdjson::dom::element doc;
        if (auto err = parser.parse(json).get(doc)) {
            std::fprintf(stderr, "simdjson-count: %s\n", simdjson::error_message(err));
            return 1;
        }
        simdjson::dom::array recs;
        if (doc["records"].get(recs) == simdjson::SUCCESS)
            records = recs.size(); // touch the result: the parse is not optimised away
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s < best)
            best = s;
    }
    std::printf("{\"mbps\": %.1f, \"implementation\": \"%s\", \"records\": %zu}\n",
                json.size() / 1e6 / best,
                simdjson::get_active_implementation()->name().c_str(), records);
    return 0;
}
