// nic_docs_screenshots [--list] [--all] OUTDIR [NAME.png...] — writes the documentation's screenshots
// (docs/*.png; with --all also the result plots the docs do not show) into OUTDIR, rebuilt from fixed scenes
// (docshots.h); names given: only those. Needs a display with
// OpenGL, e.g. `xvfb-run -a build/release/docs/tools/nic_docs_screenshots docs/`. Exit 0 when every image
// asked for was written, 1 when one failed, 2 on a usage error. Settings are the defaults (test mode), so
// nothing of the user's nic-studio configuration shows in the pictures.
#include "docshots.h"

#include "ui/glformat.h"

#include <QApplication>
#include <QDir>
#include <QSaveFile>
#include <QSettings>
#include <QStandardPaths>
#include <QTest>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace nic::docs {

void savePng(const QImage& image, const QString& path) {
    if (image.isNull())
        throw std::runtime_error("the widget rendered no image");
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly) || !image.save(&file, "PNG") || !file.commit())
        throw std::runtime_error(path.toStdString() + ": cannot write: " + file.errorString().toStdString());
}

void waitUntil(const std::function<bool()>& done, const char* what, int timeoutMs) {
    if (!QTest::qWaitFor(done, timeoutMs))
        throw std::runtime_error(std::string(what) + " did not finish within " + std::to_string(timeoutMs / 1000) +
                                 " s");
}

std::filesystem::path sharedDataDir() {
    return NIC_SHARED_DATA_DIR;
}

} // namespace nic::docs

namespace {

/// A fresh, empty scratch folder under the system's temporary folder, removed at destruction.
class ScratchDir {
public:
    ScratchDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "nic-docs-XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("cannot create a temporary folder");
        path_ = pattern;
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

} // namespace

int main(int argc, char** argv) {
    std::vector<nic::docs::DocShot> shots = nic::docs::viewerShots();
    for (auto& s : nic::docs::panelShots())
        shots.push_back(std::move(s));
    if (argc == 2 && std::string(argv[1]) == "--list") { // no display needed
        for (const auto& s : shots)
            std::printf("%-20s %s%s\n", qPrintable(s.file), qPrintable(s.what), s.extra ? " (extra)" : "");
        return 0;
    }
    const bool all = argc > 1 && std::string(argv[1]) == "--all";
    if (argc < 2 + (all ? 1 : 0) || argv[1 + (all ? 1 : 0)][0] == '-') {
        std::fprintf(stderr, "usage: nic_docs_screenshots [--list] [--all] OUTDIR [NAME.png...]\n");
        return 2;
    }

    nic::setDefaultGlFormat();                // before QApplication
    QStandardPaths::setTestModeEnabled(true); // default view settings; the user's are never read or written
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("nic-docs"));
    QApplication::setApplicationName(QStringLiteral("nic_docs_screenshots"));
    QSettings().clear();

    QStringList args = QApplication::arguments().mid(all ? 2 : 1);
    const QString outDir = args.takeFirst();
    if (!QDir(outDir).exists()) {
        std::fprintf(stderr, "nic_docs_screenshots: error: %s: no such folder\n", qPrintable(outDir));
        return 2;
    }
    for (const QString& name : args) {
        if (std::none_of(shots.begin(), shots.end(), [&](const auto& s) { return s.file == name; })) {
            std::fprintf(stderr, "nic_docs_screenshots: error: no screenshot named %s (see --list)\n",
                         qPrintable(name));
            return 2;
        }
    }

    int failed = 0;
    for (const auto& s : shots) {
        if (args.isEmpty() ? s.extra && !all : !args.contains(s.file))
            continue;
        const QString out = QDir(outDir).filePath(s.file);
        if (s.needsSharedData && !std::filesystem::exists(nic::docs::sharedDataDir())) {
            std::printf("skipped %s: the shared sample data (%s) is absent\n", qPrintable(out),
                        nic::docs::sharedDataDir().c_str());
            continue;
        }
        try {
            const ScratchDir scratch;
            QSettings().clear();
            s.write(out, scratch.path());
            std::printf("wrote %s\n", qPrintable(out));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "nic_docs_screenshots: error: %s: %s\n", qPrintable(out), e.what());
            ++failed;
        }
        std::fflush(stdout);
    }
    return failed == 0 ? 0 : 1;
}
