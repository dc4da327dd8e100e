#pragma once
// The screenshots of the documentation (docs/*.png), each rebuilt from a scene set up here: what
// `nic_docs_screenshots` writes. They are pictures for readers, not tests; the GUI tests check the same
// widgets' pixels.
#include <QImage>
#include <QString>

#include <filesystem>
#include <functional>
#include <vector>

namespace nic::docs {

/// One screenshot: `write(out, scratch)` writes the image to `out` (atomically), using `scratch` (an
/// empty temporary folder) for the files the scene needs. Throws std::runtime_error with the cause.
struct DocShot {
    QString file;                 ///< name under the output folder, e.g. "viewer.png"
    QString what;                 ///< one line for the listing
    bool needsSharedData = false; ///< reads ../shared/data (skipped with a note when it is absent)
    std::function<void(const QString& out, const std::filesystem::path& scratch)> write;
    bool extra = false; ///< not shown in docs/: written only when named or with --all
};

/// Slide views: the main window (viewer.png), the exported figure (viewer-figure.png), the compare view.
std::vector<DocShot> viewerShots();
/// Panels and plots: the jobs panel, the training curves and (extra) the other result plots.
std::vector<DocShot> panelShots();

/// Writes `image` as PNG to `path` through a temporary file beside it; throws std::runtime_error.
void savePng(const QImage& image, const QString& path);
/// Runs the event loop until `done` or `timeoutMs`; throws std::runtime_error naming `what` on time-out.
void waitUntil(const std::function<bool()>& done, const char* what, int timeoutMs = 20000);
/// `../shared/data` of the source tree (the real sample slides).
std::filesystem::path sharedDataDir();

} // namespace nic::docs
