// nic-studio: the desktop viewer. Thin: surface format, application, command line, main window, and the
// wiring of `--export-view` (a figure of a slide written with no window shown; ui/viewexport.h).
#include "ui/glformat.h"
#include "core/base/untrustedfileprobe.h"
#include "core/base/version.h"
#include "ui/figureexport.h"
#include "ui/inputscript.h"
#include "ui/mainwindow.h"
#include "ui/workflow.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"
#include "ui/viewexport.h"
#ifdef NIC_WITH_UI_NN
#include "ui/nn/neuraljobs.h"
#endif

#include <QApplication>
#include <QCommandLineParser>
#include <QFileInfo>
#include <QSurfaceFormat>

#include <cstdio>
#include <optional>

namespace {

constexpr int kExitUsage = 2; // like the `nic` CLI: 1 runtime/input error (nic::kViewExportBadInput), 2 usage error

struct Options {
    QStringList slides;
    QString heatmap;
    QString annotations;
    std::optional<nic::RectD> region;
    bool fit = false;
    int width = 0;
    QString exportPath;
    QString inputScript;
};

void printError(const QString& message) { nic::printStudioError(message); }

// Parses the command line under a QCoreApplication (so --help names the program and needs no display).
// Returns an exit code when the program should stop now (help, version, usage error).
std::optional<int> parseCommandLine(int argc, char** argv, Options& o) {
    QCoreApplication core(argc, argv);
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "NIC Studio: whole-slide viewer with heatmap and annotation layers.\n"
        "With --export-view, writes a figure of the first SLIDE (tiles, heatmap, annotations, colour legend, "
        "scale bar) as PNG, SVG or PDF without showing a window, and exits: 0 written, 1 bad input, 2 usage error."));
    const QCommandLineOption help = parser.addHelpOption();
    const QCommandLineOption version = parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("SLIDE"), QStringLiteral("Slides to open (any OpenSlide format)."),
                                 QStringLiteral("[SLIDE...]"));
    const QCommandLineOption heatmap(QStringLiteral("heatmap"),
                                     QStringLiteral("Heatmap layer: nic gradcam HDF5 (<slide>_heatmap.h5) or ASAP likelihood "
                                                    "TIFF (default: the one beside the slide, if any)."),
                                     QStringLiteral("H"));
    const QCommandLineOption annotations(QStringLiteral("annotations"),
                                         QStringLiteral("ASAP XML annotations (default: <slide>.xml beside the slide, if any)."),
                                         QStringLiteral("XML"));
    const QCommandLineOption region(QStringLiteral("region"),
                                    QStringLiteral("Figure of this level-0 rectangle, in pixels (with --export-view)."),
                                    QStringLiteral("x,y,w,h"));
    const QCommandLineOption fit(QStringLiteral("fit"), QStringLiteral("Figure of the whole slide (the default)."));
    const QCommandLineOption width(QStringLiteral("width"),
                                   QStringLiteral("Figure width in pixels; the height follows the region's aspect ratio "
                                                  "(default: the region's width at full resolution, at most 2048)."),
                                   QStringLiteral("PX"));
    const QCommandLineOption exportView(QStringLiteral("export-view"),
                                        QStringLiteral("Write the figure to OUT (.png, .svg or .pdf, atomically) and exit."),
                                        QStringLiteral("OUT"));
    // Hidden: scripted mouse input for tests of the real program (ui/inputscript.h).
    QCommandLineOption inputScript(QStringLiteral("input-script"), QStringLiteral("Scripted input (for tests)."),
                                   QStringLiteral("FILE"));
    inputScript.setFlags(QCommandLineOption::HiddenFromHelp);
    parser.addOptions({heatmap, annotations, region, fit, width, exportView, inputScript});
    if (!parser.parse(QCoreApplication::arguments())) {
        printError(parser.errorText() + QStringLiteral(" (see nic-studio --help)"));
        return kExitUsage;
    }
    if (parser.isSet(help) || parser.isSet(QStringLiteral("help-all"))) {
        // Qt names the program by argv[0] (a path, or "<executable_name>" without an application
        // object); the usage line shows the command's name instead.
        QString text = parser.helpText();
        const QString prefix = QStringLiteral("Usage: ") + QCoreApplication::arguments().constFirst();
        if (text.startsWith(prefix))
            text.replace(0, prefix.size(), QStringLiteral("Usage: ") + QCoreApplication::applicationName());
        std::fputs(qPrintable(text), stdout);
        return 0;
    }
    if (parser.isSet(version)) {
        std::printf("%s %s\n", qPrintable(QCoreApplication::applicationName()), qPrintable(QCoreApplication::applicationVersion()));
        return 0;
    }
    o.slides = parser.positionalArguments();
    o.heatmap = parser.value(heatmap);
    o.annotations = parser.value(annotations);
    o.exportPath = parser.value(exportView);
    o.inputScript = parser.value(inputScript);
    o.fit = parser.isSet(fit);
    const bool exporting = parser.isSet(exportView);
    auto usage = [](const QString& message) {
        printError(message + QStringLiteral(" (see nic-studio --help)"));
        return kExitUsage;
    };
    if (!exporting && (parser.isSet(region) || o.fit || parser.isSet(width)))
        return usage(QStringLiteral("--region, --fit and --width need --export-view"));
    if (exporting) {
        if (o.exportPath.isEmpty())
            return usage(QStringLiteral("--export-view needs an output file"));
        if (!nic::figureFormatForPath(o.exportPath))
            return usage(QStringLiteral("%1: unknown figure format '.%2' (use .png, .svg or .pdf)")
                             .arg(o.exportPath, QFileInfo(o.exportPath).suffix()));
        if (o.slides.size() != 1)
            return usage(QStringLiteral("--export-view needs exactly one SLIDE (got %1)").arg(o.slides.size()));
        if (parser.isSet(region) && o.fit)
            return usage(QStringLiteral("--region and --fit exclude each other"));
    }
    if (parser.isSet(region)) {
        o.region = nic::parseRegion(parser.value(region));
        if (!o.region)
            return usage(QStringLiteral("--region '%1': expected x,y,w,h in level-0 pixels with w, h > 0").arg(parser.value(region)));
    }
    if (parser.isSet(width)) {
        bool ok = false;
        o.width = parser.value(width).toInt(&ok);
        if (!ok || o.width < 16 || o.width > 16384)
            return usage(QStringLiteral("--width '%1': expected a whole number of pixels from 16 to 16384").arg(parser.value(width)));
    }
    return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
    // The GL format must be the default before QApplication exists (QOpenGLWidget shares it).
    nic::setDefaultGlFormat(); // before QApplication

    QCoreApplication::setOrganizationName(QStringLiteral("NIC"));
    QCoreApplication::setApplicationName(QStringLiteral("nic-studio"));
    QCoreApplication::setApplicationVersion(QStringLiteral(NIC_VERSION_STRING));

    // A damaged compressed slide or heatmap (File menu, or found beside a slide) is read first by nic-probe:
    // a crash inside HDF5 becomes an error message instead of taking the window and its unsaved work down.
    nic::UntrustedFileProbe::enable();

    Options options;
    if (const auto code = parseCommandLine(argc, argv, options))
        return *code;

    const bool exporting = !options.exportPath.isEmpty();
    // A scripted figure needs no display: without one, use Qt's offscreen platform (figures are then
    // composed without OpenGL), and keep stderr to our own one-line errors.
    if (exporting && qEnvironmentVariableIsEmpty("DISPLAY") && qEnvironmentVariableIsEmpty("WAYLAND_DISPLAY") &&
        qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    if (exporting)
        nic::installQuietExportMessages();
    QApplication app(argc, argv);
    if (exporting)
        return nic::runViewExport({options.slides.front(), options.heatmap, options.annotations, options.region,
                                   options.width, options.exportPath});

#ifdef NIC_WITH_UI_NN
    nic::registerTorchJobs(); // the LibTorch stages of the Analysis menu
#endif
    nic::MainWindow window;
    nic::Workflow::install(&window); // jobs, cohort, training curves, Analysis menu, compare view
    window.restoreLayout();          // geometry and dock layout of the last run (needs every dock)
    window.show();
    for (int i = 0; i < options.slides.size(); ++i) {
        nic::SlideTab* tab = window.openSlide(options.slides[i]);
        if (i > 0)
            continue;
        // After the tab's own slideOpened handler, so these replace the layers found beside the slide.
        QObject::connect(tab->view(), &nic::SlideView::slideOpened, tab, [tab, o = options] {
            if (!o.annotations.isEmpty())
                tab->loadAnnotations(o.annotations);
            if (!o.heatmap.isEmpty())
                tab->loadHeatmap(o.heatmap);
        });
    }
    if (!options.inputScript.isEmpty()) {
        QString error;
        if (!nic::InputScript::start(options.inputScript, &window, &error)) {
            printError(error);
            return 1;
        }
    }
    return QApplication::exec();
}
