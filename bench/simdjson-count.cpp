// bench: a SIMD JSON parser's own figures on the engine bench's corpus, as the references
// beside maskctl's. simdjson (Debian libsimdjson-dev), ROUNDS times each, best printed as
// JSON. The file is read into memory first and that read is not timed (maskctl's figures
// include its reads and writes).
//   simdjson-count FILE ROUNDS
//     its DOM parse, validating all of the file: {"mbps", "implementation", "records"}
//   simdjson-count FILE ROUNDS FIELD...
//     its On-Demand API reading the string at each FIELD ("customer.name", "client_ip": at
//     most one object deep, in the order the records hold them) of every element of the
//     root's "records": the reads the path rules make, with no output and no look at the
//     skipped values beyond their brackets and quotes: {"mbps", "records", "bytes"}
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <simdjson.h>
#include <string>
#include <vector>

using namespace simdjson;

namespace {

struct group { // the fields under one member of a record ("" for the record itself)
    std::string parent;
    std::vector<std::string> leaves;
};

std::vector<group> groups_of(int n, char **fields)
{
    std::vector<group> gs;
    for (int i = 0; i < n; i++) {
        std::string f = fields[i], parent, leaf = f;
        size_t dot = f.find('.');
        if (dot != std::string::npos)
            parent = f.substr(0, dot), leaf = f.substr(dot + 1);
        if (gs.empty() || gs.back().parent != parent || parent.empty())
            gs.push_back({parent, {}});
        gs.back().leaves.push_back(leaf);
    }
    return gs;
}

// The strings at the fields of every record; false (with a message) when one is missing.
bool read_paths(ondemand::parser &parser, const padded_string &json,
                const std::vector<group> &gs, size_t &records, size_t &bytes)
{
    ondemand::document doc;
    ondemand::array recs;
    if (parser.iterate(json).get(doc) || doc.find_field("records").get_array().get(recs)) {
        std::fprintf(stderr, "simdjson-count: no \"records\" array\n");
        return false;
    }
    records = bytes = 0;
    for (auto elem : recs) {
        ondemand::object rec;
        if (elem.get_object().get(rec))
            return false;
        records++;
        for (const group &g : gs) {
            ondemand::object in = rec;
            if (!g.parent.empty() && rec.find_field(g.parent).get_object().get(in)) {
                std::fprintf(stderr, "simdjson-count: record %zu: no %s\n", records,
                             g.parent.c_str());
                return false;
            }
            for (const std::string &leaf : g.leaves) {
                std::string_view s;
                if (in.find_field(leaf).get_string().get(s)) {
                    std::fprintf(stderr, "simdjson-count: record %zu: no string %s\n",
                                 records, leaf.c_str());
                    return false;
                }
                bytes += s.size();
            }
        }
    }
    return true;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s FILE ROUNDS [FIELD...]\n", argv[0]);
        return 2;
    }
    padded_string json;
    if (padded_string::load(argv[1]).get(json)) {
        std::fprintf(stderr, "simdjson-count: cannot read %s\n", argv[1]);
        return 1;
    }
    std::vector<group> gs = groups_of(argc - 3, argv + 3);
    dom::parser dparser;
    ondemand::parser oparser;
    double best = 1e30;
    size_t records = 0, bytes = 0;
    for (int r = 0; r < std::atoi(argv[2]); r++) {
        auto t0 = std::chrono::steady_clock::now();
        if (!gs.empty()) {
            if (!read_paths(oparser, json, gs, records, bytes))
                return 1;
        } else {
            dom::element doc;
            if (auto err = dparser.parse(json).get(doc)) {
                std::fprintf(stderr, "simdjson-count: %s\n", error_message(err));
                return 1;
            }
            dom::array recs;
            if (doc["records"].get(recs) == SUCCESS)
                records = recs.size(); // touch the result: the parse is not optimised away
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s < best)
            best = s;
    }
    if (!gs.empty())
        std::printf("{\"mbps\": %.1f, \"records\": %zu, \"bytes\": %zu}\n",
                    json.size() / 1e6 / best, records, bytes);
    else
        std::printf("{\"mbps\": %.1f, \"implementation\": \"%s\", \"records\": %zu}\n",
                    json.size() / 1e6 / best, get_active_implementation()->name().c_str(),
                    records);
    return 0;
}
