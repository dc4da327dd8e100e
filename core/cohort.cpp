#include "core/cohort.h"

#include "core/error.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace nic {

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos)
        return {};
    const auto e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

/// Splits CSV text into records of fields, with their starting line numbers.
struct Record {
    int line = 0;
    std::vector<std::string> fields;
    bool blankOrComment = false;
};

std::vector<Record> splitCsv(const std::string& text, const std::string& file) {
    std::vector<Record> records;
    Record cur;
    std::string field;
    bool quoted = false, fieldWasQuoted = false, atFieldStart = true;
    int line = 1;
    cur.line = 1;
    auto endField = [&] {
        cur.fields.push_back(fieldWasQuoted ? field : trim(field));
        field.clear();
        fieldWasQuoted = false;
        atFieldStart = true;
    };
    auto endRecord = [&] {
        endField();
        const std::string first = cur.fields.empty() ? std::string() : cur.fields.front();
        cur.blankOrComment = (cur.fields.size() == 1 && first.empty()) || (!first.empty() && first[0] == '#');
        records.push_back(std::move(cur));
        cur = Record();
        cur.line = line;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                if (c == '\n')
                    ++line;
                field += c;
            }
            continue;
        }
        if (c == '"' && trim(field).empty() && atFieldStart) {
            quoted = true;
            fieldWasQuoted = true;
            field.clear();
            continue;
        }
        if (c == ',') {
            endField();
        } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            continue;
        } else if (c == '\n') {
            ++line;
            endRecord();
        } else {
            if (c != ' ' && c != '\t')
                atFieldStart = false;
            field += c;
        }
    }
    if (quoted)
        throw InvalidArgument(file + ":" + std::to_string(cur.line) + ": unterminated quoted field");
    if (!field.empty() || !cur.fields.empty())
        endRecord();
    return records;
}

bool parseDouble(const std::string& s, double& out) {
    if (s.empty())
        return false;
    errno = 0;
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return errno == 0 && end == s.c_str() + s.size() && std::isfinite(out);
}

} // namespace

double CohortEntry::labelValue() const {
    double v = 0;
    if (!parseDouble(label, v))
        throw InvalidArgument("line " + std::to_string(line) + ": label '" + label + "' is not a number");
    return v;
}

std::vector<std::filesystem::path> Cohort::slides() const {
    std::vector<std::filesystem::path> out;
    out.reserve(entries.size());
    for (const auto& e : entries)
        out.push_back(e.slide);
    return out;
}

Cohort parseCohort(const std::string& text, const std::filesystem::path& file, const std::filesystem::path& baseDir) {
    const std::string name = file.string();
    Cohort cohort;
    cohort.file = file;
    auto records = splitCsv(text, name);
    std::size_t i = 0;
    while (i < records.size() && records[i].blankOrComment)
        ++i;
    if (i == records.size())
        throw InvalidArgument(name + ": empty cohort file (expected a header row with columns slide,label)");
    const Record& header = records[i++];
    cohort.columns = header.fields;
    int slideCol = -1, labelCol = -1, scoreCol = -1, foldCol = -1;
    std::set<std::string> seen;
    for (std::size_t c = 0; c < header.fields.size(); ++c) {
        const std::string& h = header.fields[c];
        if (!seen.insert(h).second)
            throw InvalidArgument(name + ":" + std::to_string(header.line) + ": duplicate column '" + h + "'");
        const int ci = static_cast<int>(c);
        if (h == "slide")
            slideCol = ci;
        else if (h == "label")
            labelCol = ci;
        else if (h == "score")
            scoreCol = ci;
        else if (h == "fold")
            foldCol = ci;
    }
    if (slideCol < 0 || labelCol < 0)
        throw InvalidArgument(name + ":" + std::to_string(header.line) + ": header must name columns 'slide' and " +
                              "'label' (found: " + [&] {
                                  std::string s;
                                  for (const auto& h : header.fields)
                                      s += (s.empty() ? "" : ",") + h;
                                  return s;
                              }() + ")");
    std::set<std::filesystem::path> slides;
    for (; i < records.size(); ++i) {
        const Record& r = records[i];
        if (r.blankOrComment)
            continue;
        const std::string where = name + ":" + std::to_string(r.line) + ": ";
        if (r.fields.size() != header.fields.size())
            throw InvalidArgument(where + std::to_string(r.fields.size()) + " fields, the header has " +
                                  std::to_string(header.fields.size()));
        CohortEntry e;
        e.line = r.line;
        const std::string& slide = r.fields[static_cast<std::size_t>(slideCol)];
        if (slide.empty())
            throw InvalidArgument(where + "empty slide path");
        std::filesystem::path p(slide);
        e.slide = p.is_absolute() ? p : (baseDir / p).lexically_normal();
        if (!slides.insert(e.slide).second)
            throw InvalidArgument(where + "slide " + slide + " is listed twice");
        e.label = r.fields[static_cast<std::size_t>(labelCol)];
        if (e.label.empty())
            throw InvalidArgument(where + "empty label for slide " + slide);
        if (scoreCol >= 0 && !r.fields[static_cast<std::size_t>(scoreCol)].empty()) {
            double v = 0;
            if (!parseDouble(r.fields[static_cast<std::size_t>(scoreCol)], v))
                throw InvalidArgument(where + "score '" + r.fields[static_cast<std::size_t>(scoreCol)] +
                                      "' is not a number");
            e.score = v;
        }
        if (foldCol >= 0 && !r.fields[static_cast<std::size_t>(foldCol)].empty()) {
            double v = 0;
            const std::string& f = r.fields[static_cast<std::size_t>(foldCol)];
            if (!parseDouble(f, v) || v < 0 || v != std::floor(v) || v > 1e6)
                throw InvalidArgument(where + "fold '" + f + "' is not an integer >= 0");
            e.fold = static_cast<int>(v);
        }
        for (std::size_t c = 0; c < header.fields.size(); ++c) {
            const int ci = static_cast<int>(c);
            if (ci != slideCol && ci != labelCol && ci != scoreCol && ci != foldCol)
                e.extra[header.fields[c]] = r.fields[c];
        }
        cohort.entries.push_back(std::move(e));
    }
    return cohort;
}

Cohort readCohort(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot read cohort file: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return parseCohort(ss.str(), path, path.parent_path());
}

} // namespace nic
