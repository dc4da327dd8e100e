#pragma once
// CSV as RFC 4180 writes it (the one reader and writer of core/; cohorts, run folders, plots' exports).
//
// Reading: fields are separated by ',' and records by LF or CRLF; a field may be quoted ("a,b", "" for
// a quote, line breaks inside quotes are kept); spaces and tabs around an unquoted field are trimmed.
// Blank lines and lines whose first field starts with '#' are skipped. Every record keeps the 1-based
// line it starts on, so messages can say "<file>:<line>: <cause>".
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nic {

/// One record of a CSV file.
struct CsvRecord {
    int line = 0;                    ///< 1-based line the record starts on
    std::vector<std::string> fields;
};

/// Splits CSV text into records (blank and '#' lines skipped). Throws FormatError
/// "<fileName>:<line>: unterminated quoted field".
std::vector<CsvRecord> parseCsv(const std::string& text, const std::string& fileName);

/// A CSV file with a header row: columns by name, rows with exactly the header's field count.
struct CsvTable {
    std::string file;                ///< as named in messages
    std::vector<std::string> header;
    int headerLine = 0;
    std::vector<CsvRecord> rows;

    /// Index of column `name` (exact match), or -1.
    int column(const std::string& name) const;
    /// Index of column `name`; throws FormatError "<file>:<line>: no column '<name>' (found: a,b)" when absent.
    int requireColumn(const std::string& name) const;
    /// The number in field `col` of `row`; throws FormatError "<file>:<line>: <column> '<text>' is not a number".
    double number(const CsvRecord& row, int col) const;
    /// The integer in field `col` of `row`; throws FormatError like number().
    int integer(const CsvRecord& row, int col) const;
};

/// Parses CSV text with a header row. Throws FormatError naming `fileName` and the line: no header,
/// duplicate column names, a row whose field count differs from the header's, an unterminated quote.
CsvTable parseCsvTable(const std::string& text, const std::string& fileName);
/// Reads a CSV file with a header row. Throws IoError when it cannot be read, FormatError as parseCsvTable.
CsvTable readCsvTable(const std::filesystem::path& path);

/// A number when `text` is one in full (finite, no trailing characters), else nullopt.
std::optional<double> parseCsvNumber(const std::string& text);

/// One field as RFC 4180 writes it: quoted when it holds ',', '"', CR or LF (or leading/trailing
/// spaces, which readers trim), with '"' doubled.
std::string csvField(const std::string& text);
/// A record: the fields joined by ',' and ended by '\n'.
std::string csvRow(const std::vector<std::string>& fields);

} // namespace nic
