#pragma once
// The headless `nic-studio --export-view` flow: a hidden SlideView opens the slide, loads its layers
// (the annotations and heatmap given, else those found beside the slide) and a FigureExporter writes the
// figure once every tile it needs is loaded. main() parses the command line and calls runViewExport().
#include "ui/tilemath.h"

#include <QString>

#include <optional>

namespace nic {

/// Exit status of runViewExport() for bad input (an unreadable slide, heatmap or annotations, a region
/// outside the slide, a failed write); 0 means written. Usage errors (2) are the caller's.
constexpr int kViewExportBadInput = 1;

/// What to export: the figure of `region` (level-0 px; the whole slide when absent) `width` px wide
/// (0: the region's width at level 0, at most 2048 px) written to `output` (.png, .svg or .pdf, atomically).
struct ViewExportRequest {
    QString slide;
    QString heatmap;     ///< "" = the one beside the slide, if any
    QString annotations; ///< "" = <slide>.xml beside the slide, if any
    std::optional<RectD> region;
    int width = 0;
    QString output;
};

/// Runs the export in the running QApplication's event loop and returns the exit status (0 or
/// kViewExportBadInput). Errors go to stderr as one line each: "nic-studio: error: <cause>".
int runViewExport(const ViewExportRequest& request);

/// Prints "nic-studio: error: <message>" (whitespace simplified) to stderr.
void printStudioError(const QString& message);

/// Installs a Qt message handler for exports: drops debug/info messages, Qt's notes about a platform
/// without OpenGL (the GL-less fallback handles that) and the root runtime-directory note.
void installQuietExportMessages();

} // namespace nic
