#include "core/cluster/submitfolder.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"
#include "core/compression/latentgrid.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/stat.h>

namespace nic {

namespace {

std::string readText(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw IoError(file.string() + ": cannot read: " + std::strerror(errno));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string firstLine(const std::string& text) {
    std::string line = text.substr(0, text.find('\n'));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
        line.pop_back();
    return line;
}

bool isFile(const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec);
}

void makeDirectory(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw IoError(dir.string() + ": cannot create folder: " + ec.message());
}

} // namespace

const char* toString(SubmitCommand command) {
    switch (command) {
    case SubmitCommand::Compress: return "compress";
    case SubmitCommand::GradCam: return "gradcam";
    case SubmitCommand::Train: return "train";
    }
    return "?";
}

SubmitCommand parseSubmitCommand(const std::string& text) {
    for (auto c : {SubmitCommand::Compress, SubmitCommand::GradCam, SubmitCommand::Train})
        if (text == toString(c))
            return c;
    throw InvalidArgument("unknown submitted command '" + text + "' (compress, gradcam or train)");
}

const char* toString(ItemState state) {
    switch (state) {
    case ItemState::Done: return "done";
    case ItemState::Partial: return "partial";
    case ItemState::Failed: return "failed";
    case ItemState::Missing: return "missing";
    }
    return "?";
}

bool SubmitStatus::complete() const {
    for (const auto& i : items)
        if (i.state != ItemState::Done)
            return false;
    return !merge || merge->state == ItemState::Done;
}

int SubmitStatus::count(ItemState state) const {
    int n = 0;
    for (const auto& i : items)
        n += i.state == state ? 1 : 0;
    return n;
}

std::string SubmitStatus::toJson() const {
    const auto itemJson = [](const ItemStatus& s) {
        nlohmann::ordered_json j;
        j["key"] = s.item.key;
        j["input"] = s.item.input;
        j["state"] = toString(s.state);
        j["error"] = s.error;
        j["task"] = s.task;
        j["job_state"] = s.jobState;
        return j;
    };
    nlohmann::ordered_json j;
    j["folder"] = folder.string();
    j["command"] = toString(command);
    j["complete"] = complete();
    nlohmann::ordered_json counts;
    for (auto s : {ItemState::Done, ItemState::Partial, ItemState::Failed, ItemState::Missing})
        counts[toString(s)] = count(s);
    j["counts"] = counts;
    j["items"] = nlohmann::ordered_json::array();
    for (const auto& i : items)
        j["items"].push_back(itemJson(i));
    if (merge)
        j["merge"] = itemJson(*merge);
    return j.dump(2) + "\n";
}

std::vector<SubmitItem> readSubmitItems(const std::filesystem::path& file) {
    std::vector<SubmitItem> items;
    std::istringstream in(readText(file));
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty())
            continue;
        const auto tab = line.find('\t');
        if (tab == std::string::npos || tab == 0)
            throw FormatError(file.string() + ":" + std::to_string(n) +
                              ": damaged record (expected <key><TAB><input>)");
        items.push_back({line.substr(0, tab), line.substr(tab + 1)});
    }
    return items;
}

std::string formatSubmitItems(const std::vector<SubmitItem>& items) {
    std::string s;
    for (const auto& i : items)
        s += i.key + "\t" + i.input + "\n";
    return s;
}

SubmitFolder::SubmitFolder(std::filesystem::path folder) : folder_(std::move(folder)) {}

std::filesystem::path SubmitFolder::batchDir(int batch) const {
    return stateDir() / ("batch-" + std::to_string(batch));
}

bool SubmitFolder::exists() const { return isFile(stateDir() / "run.json"); }

SubmitCommand SubmitFolder::command() const {
    const auto file = stateDir() / "run.json";
    if (!isFile(file))
        throw IoError(folder_.string() + ": no submission recorded here (no " + file.string() + ")");
    try {
        return parseSubmitCommand(nlohmann::json::parse(readText(file)).at("command").get<std::string>());
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(file.string() + ": damaged record: " + e.what());
    } catch (const InvalidArgument& e) {
        throw FormatError(file.string() + ": " + e.what());
    }
}

std::vector<std::string> SubmitFolder::doneSuffixes() const {
    const auto file = stateDir() / "run.json";
    try {
        return nlohmann::json::parse(readText(file)).value("done_suffixes", std::vector<std::string>{});
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(file.string() + ": damaged record: " + e.what());
    }
}

std::vector<SubmitItem> SubmitFolder::items() const {
    const auto file = stateDir() / "items.tsv";
    return isFile(file) ? readSubmitItems(file) : std::vector<SubmitItem>{};
}

std::vector<SubmittedJob> SubmitFolder::jobs() const {
    const auto file = stateDir() / "jobs.tsv";
    std::vector<SubmittedJob> jobs;
    if (!isFile(file))
        return jobs;
    std::istringstream in(readText(file));
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        std::istringstream f(line);
        SubmittedJob j;
        if (!(f >> j.id >> j.batch >> j.tasks >> j.role))
            throw FormatError(file.string() + ": damaged record '" + line + "'");
        jobs.push_back(j);
    }
    return jobs;
}

std::vector<SubmitItem> SubmitFolder::batchItems(int batch) const { return readSubmitItems(batchDir(batch) / "items.tsv"); }

int SubmitFolder::createBatch(const std::vector<SubmitItem>& items) {
    makeDirectory(stateDir());
    for (int k = 1;; ++k) {
        const auto dir = batchDir(k);
        if (::mkdir(dir.c_str(), 0755) != 0) {
            if (errno == EEXIST)
                continue;
            throw IoError(dir.string() + ": cannot create folder: " + std::strerror(errno));
        }
        makeDirectory(dir / "logs");
        writeFileAtomically(dir / "items.tsv", formatSubmitItems(items));
        return k;
    }
}

void SubmitFolder::discardBatch(int batch) const {
    std::error_code ec;
    std::filesystem::remove_all(batchDir(batch), ec);
    if (std::filesystem::is_empty(stateDir(), ec))
        std::filesystem::remove(stateDir(), ec);
}

void SubmitFolder::recordSubmission(SubmitCommand command, const std::vector<std::string>& doneSuffixes,
                                    const std::vector<SubmitItem>& items,
                                    const std::vector<SubmittedJob>& newJobs) const {
    makeDirectory(stateDir() / "items");
    nlohmann::ordered_json run;
    run["format"] = "nic-submit";
    run["command"] = toString(command);
    run["done_suffixes"] = doneSuffixes;
    writeFileAtomically(stateDir() / "run.json", run.dump(2) + "\n");

    auto all = this->items();
    for (const auto& i : items) {
        bool known = false;
        for (const auto& a : all)
            known = known || a.key == i.key;
        if (!known)
            all.push_back(i);
    }
    writeFileAtomically(stateDir() / "items.tsv", formatSubmitItems(all));

    std::string jobs = isFile(stateDir() / "jobs.tsv") ? readText(stateDir() / "jobs.tsv") : std::string();
    for (const auto& j : newJobs)
        jobs += j.id + "\t" + std::to_string(j.batch) + "\t" + std::to_string(j.tasks) + "\t" + j.role + "\n";
    writeFileAtomically(stateDir() / "jobs.tsv", jobs);
}

SubmitStatus SubmitFolder::status(const SlurmQuery& slurm, std::vector<SubmitItem> items,
                                  std::optional<SubmitCommand> command, std::vector<std::string> suffixes) const {
    SubmitStatus st;
    st.folder = folder_;
    const bool recorded = exists();
    st.command = command ? *command : this->command();
    if (suffixes.empty() && recorded)
        suffixes = doneSuffixes();
    if (items.empty())
        items = this->items();

    // The latest task that had each item, and the merge job.
    std::map<std::string, std::pair<std::string, std::filesystem::path>> taskOf; // key → (task, exit file)
    std::optional<std::pair<std::string, std::filesystem::path>> mergeJob;
    if (recorded)
        for (const auto& job : jobs()) {
            if (job.role == "merge") {
                mergeJob = {job.id, batchDir(job.batch) / "merge.exit"};
                continue;
            }
            const auto batch = batchItems(job.batch);
            for (std::size_t i = 0; i < batch.size(); ++i) {
                const auto t = std::to_string(static_cast<int>(i) % std::max(1, job.tasks));
                taskOf[batch[i].key] = {job.id + "_" + t, batchDir(job.batch) / ("task-" + t + ".exit")};
            }
        }
    const auto slurmState = [&](const std::string& task, const std::filesystem::path& exitFile) -> std::string {
        if (const auto it = slurm.states.find(task); it != slurm.states.end())
            return it->second;
        if (isFile(exitFile)) {
            try {
                return firstLine(readText(exitFile)) == "0" ? "COMPLETED" : "FAILED";
            } catch (const IoError&) {
            }
        }
        return slurm.squeueAnswered ? "ENDED" : "";
    };

    for (const auto& item : items) {
        ItemStatus s;
        s.item = item;
        bool done = false, partial = false;
        switch (st.command) {
        case SubmitCommand::Compress: {
            const auto out = folder_ / (item.key + ".h5");
            if (isFile(out)) {
                try {
                    readLatentGridMeta(out);
                    done = true;
                } catch (const Error& e) {
                    s.error = e.what();
                }
            }
            partial = isFile(folder_ / (item.key + ".partial.h5"));
            break;
        }
        case SubmitCommand::GradCam: {
            int present = 0;
            for (const auto& suffix : suffixes)
                present += isFile(folder_ / (item.key + suffix)) ? 1 : 0;
            done = !suffixes.empty() && present == static_cast<int>(suffixes.size());
            partial = present > 0 && !done;
            break;
        }
        case SubmitCommand::Train: {
            const auto dir = folder_ / ("fold" + item.key);
            done = isFile(dir / "round.json") && isFile(dir / "model.pt");
            partial = isFile(dir / "checkpoint.pt");
            break;
        }
        }
        const auto failedFile = stateDir() / "items" / (item.key + ".failed");
        if (done) {
            s.state = ItemState::Done;
        } else if (isFile(failedFile) || !s.error.empty()) {
            s.state = ItemState::Failed;
            if (s.error.empty()) {
                try {
                    s.error = firstLine(readText(failedFile));
                } catch (const IoError& e) {
                    s.error = e.what();
                }
            }
        } else {
            s.state = partial ? ItemState::Partial : ItemState::Missing;
        }
        if (const auto it = taskOf.find(item.key); it != taskOf.end()) {
            s.task = it->second.first;
            s.jobState = slurmState(it->second.first, it->second.second);
        }
        st.items.push_back(std::move(s));
    }

    if (st.command == SubmitCommand::Train) {
        ItemStatus m;
        m.item = {"merge", "metrics.json, predictions.csv"};
        const bool done = isFile(folder_ / "metrics.json") && isFile(folder_ / "predictions.csv");
        const auto failedFile = stateDir() / "items" / "merge.failed";
        m.state = done ? ItemState::Done : isFile(failedFile) ? ItemState::Failed : ItemState::Missing;
        if (m.state == ItemState::Failed)
            m.error = firstLine(readText(failedFile));
        if (mergeJob) {
            m.task = mergeJob->first;
            m.jobState = slurmState(mergeJob->first, mergeJob->second);
        }
        st.merge = m;
    }
    return st;
}

SubmitStatus SubmitFolder::status() const {
    std::vector<std::string> ids;
    for (const auto& j : jobs())
        ids.push_back(j.id);
    return status(querySlurmStates(ids));
}

} // namespace nic
