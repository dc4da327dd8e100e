#include "ui/viewexport.h"

#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "ui/figureexport.h"
#include "ui/heatmapgrid.h"
#include "ui/slideview.h"

#include <QApplication>
#include <QFileInfo>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

namespace nic {

namespace {

void quietExportMessages(QtMsgType type, const QMessageLogContext&, const QString& message) {
    if (type == QtDebugMsg || type == QtInfoMsg || message.contains(QLatin1String("QOpenGLWidget")) ||
        message.startsWith(QLatin1String("QStandardPaths:")))
        return;
    std::fprintf(stderr, "%s\n", qPrintable(message));
}

void printError(const QString& message) { printStudioError(message); }

} // namespace

void printStudioError(const QString& message) {
    std::fprintf(stderr, "nic-studio: error: %s\n", message.simplified().toLocal8Bit().constData());
}

void installQuietExportMessages() { qInstallMessageHandler(quietExportMessages); }

// A hidden SlideView opens the slide in the background; once it is open the layers are
// loaded and a FigureExporter waits for every tile of the figure, renders it offscreen and writes it.
int runViewExport(const ViewExportRequest& o) {
    const QString slidePath = o.slide;
    std::shared_ptr<AnnotationSet> annotations;
    QString annotationPath = o.annotations;
    if (annotationPath.isEmpty())
        if (const auto xml = findAnnotationXml(slidePath.toStdString()))
            annotationPath = QString::fromStdString(xml->string());
    if (!annotationPath.isEmpty()) {
        try {
            annotations = std::make_shared<AnnotationSet>(AnnotationSet::load(annotationPath.toStdString()));
        } catch (const std::exception& e) {
            printError(QString::fromUtf8(e.what()));
            return kViewExportBadInput;
        }
    }
    SlideView view;
    view.setAnimationsEnabled(false);
    view.resize(320, 240); // never shown; only the figure's size matters
    view.setAnnotations(annotations);
    int exitCode = kViewExportBadInput;
    QObject::connect(&view, &SlideView::slideFailed, &view, [&](const QString& message) {
        printError(message);
        QCoreApplication::exit(kViewExportBadInput);
    });
    QObject::connect(&view, &SlideView::slideOpened, &view, [&] {
        try {
            QString heatmapPath = o.heatmap;
            if (heatmapPath.isEmpty())
                if (const auto h = findHeatmap(slidePath.toStdString()))
                    heatmapPath = QString::fromStdString(h->string());
            if (!heatmapPath.isEmpty())
                view.setHeatmap(std::make_shared<const HeatmapGrid>(
                    loadHeatmapFile(heatmapPath.toStdString(), view.pyramid().width())));
            const RectD whole{0, 0, view.pyramid().width(), view.pyramid().height()};
            const RectD r = o.region ? *o.region : whole;
            const int width = o.width > 0 ? o.width : static_cast<int>(std::min(2048.0, std::ceil(r.w)));
            Viewport vp;
            try {
                vp = figureViewport(view, r, width);
            } catch (const std::exception& e) {
                throw InvalidArgument(slidePath.toStdString() + ": " + e.what());
            }
            auto* exporter = new FigureExporter(&view, vp, o.output, &view);
            QObject::connect(exporter, &FigureExporter::finished, &view, [&](const QString&, const QString& error) {
                if (!error.isEmpty())
                    printError(error);
                exitCode = error.isEmpty() ? 0 : kViewExportBadInput;
                QCoreApplication::exit(exitCode);
            });
            exporter->start();
        } catch (const std::exception& e) {
            printError(QString::fromUtf8(e.what()));
            QCoreApplication::exit(kViewExportBadInput);
        }
    });
    view.openSlide(QFileInfo(slidePath).absoluteFilePath());
    return QApplication::exec();
}

} // namespace nic
