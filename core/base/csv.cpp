#include "core/base/csv.h"

#include "core/base/error.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
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

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v)
        s += (s.empty() ? "" : ",") + x;
    return s;
}

} // namespace

std::vector<CsvRecord> parseCsv(const std::string& text, const std::string& fileName) {
    std::vector<CsvRecord> records;
    CsvRecord cur;
    cur.line = 1;
    std::string field;
    bool quoted = false, fieldWasQuoted = false, atFieldStart = true, anyQuoted = false;
    int line = 1;
    auto endField = [&] {
        cur.fields.push_back(fieldWasQuoted ? field : trim(field));
        field.clear();
        fieldWasQuoted = false;
        atFieldStart = true;
    };
    auto endRecord = [&] {
        endField();
        const std::string& first = cur.fields.front();
        const bool blank = cur.fields.size() == 1 && first.empty() && !anyQuoted;
        const bool comment = !anyQuoted && !first.empty() && first[0] == '#';
        if (!blank && !comment)
            records.push_back(std::move(cur));
        cur = CsvRecord();
        cur.line = line;
        anyQuoted = false;
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
        if (c == '"' && atFieldStart && trim(field).empty()) {
            quoted = fieldWasQuoted = anyQuoted = true;
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
        throw FormatError(fileName + ":" + std::to_string(cur.line) + ": unterminated quoted field");
    if (!field.empty() || !cur.fields.empty() || fieldWasQuoted)
        endRecord();
    return records;
}

std::optional<double> parseCsvNumber(const std::string& text) {
    if (text.empty())
        return std::nullopt;
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(v))
        return std::nullopt;
    return v;
}

int CsvTable::column(const std::string& name) const {
    for (std::size_t i = 0; i < header.size(); ++i)
        if (header[i] == name)
            return static_cast<int>(i);
    return -1;
}

int CsvTable::requireColumn(const std::string& name) const {
    const int c = column(name);
    if (c < 0)
        throw FormatError(file + ":" + std::to_string(headerLine) + ": no column '" + name + "' (found: " +
                          joined(header) + ")");
    return c;
}

double CsvTable::number(const CsvRecord& row, int col) const {
    const std::string& text = row.fields.at(static_cast<std::size_t>(col));
    const auto v = parseCsvNumber(text);
    if (!v)
        throw FormatError(file + ":" + std::to_string(row.line) + ": " + header.at(static_cast<std::size_t>(col)) +
                          " '" + text + "' is not a number");
    return *v;
}

int CsvTable::integer(const CsvRecord& row, int col) const {
    const double v = number(row, col);
    if (v != std::floor(v) || std::abs(v) > 2e9)
        throw FormatError(file + ":" + std::to_string(row.line) + ": " + header.at(static_cast<std::size_t>(col)) +
                          " '" + row.fields.at(static_cast<std::size_t>(col)) + "' is not an integer");
    return static_cast<int>(v);
}

CsvTable parseCsvTable(const std::string& text, const std::string& fileName) {
    CsvTable t;
    t.file = fileName;
    auto records = parseCsv(text, fileName);
    if (records.empty())
        throw FormatError(fileName + ": empty file (expected a header row)");
    t.header = std::move(records.front().fields);
    t.headerLine = records.front().line;
    std::set<std::string> seen;
    for (const auto& h : t.header)
        if (!seen.insert(h).second)
            throw FormatError(fileName + ":" + std::to_string(t.headerLine) + ": duplicate column '" + h + "'");
    for (std::size_t i = 1; i < records.size(); ++i) {
        if (records[i].fields.size() != t.header.size())
            throw FormatError(fileName + ":" + std::to_string(records[i].line) + ": " +
                              std::to_string(records[i].fields.size()) + " fields, the header has " +
                              std::to_string(t.header.size()));
        t.rows.push_back(std::move(records[i]));
    }
    return t;
}

CsvTable readCsvTable(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot read: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad())
        throw IoError(path.string() + ": read error: " + std::strerror(errno));
    return parseCsvTable(ss.str(), path.string());
}

std::string csvField(const std::string& text) {
    const bool needsQuotes = text.find_first_of(",\"\r\n") != std::string::npos ||
                             (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.back() == ' ' ||
                                                text.back() == '\t' || text.front() == '#'));
    if (!needsQuotes)
        return text;
    std::string out = "\"";
    for (char c : text) {
        if (c == '"')
            out += '"';
        out += c;
    }
    return out + "\"";
}

std::string csvRow(const std::vector<std::string>& fields) {
    std::string out;
    for (std::size_t i = 0; i < fields.size(); ++i)
        out += (i ? "," : "") + csvField(fields[i]);
    return out + "\n";
}

} // namespace nic
