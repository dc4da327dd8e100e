// nic-studio: the desktop viewer. Thin: surface format, application, command line, main window.
#include "core/version.h"
#include "ui/mainwindow.h"
#include "ui/workflow.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QSurfaceFormat>

int main(int argc, char** argv) {
    // The GL format must be the default before QApplication exists (QOpenGLWidget shares it).
    QSurfaceFormat format;
    format.setVersion(3, 3);
    format.setProfile(QSurfaceFormat::CoreProfile);
    format.setStencilBufferSize(8); // annotation fills use the stencil
    QSurfaceFormat::setDefaultFormat(format);

    QApplication::setOrganizationName(QStringLiteral("NIC"));
    QApplication::setApplicationName(QStringLiteral("nic-studio"));
    QApplication::setApplicationVersion(QStringLiteral(NIC_VERSION_STRING));

    // Parsed before QApplication exists, so --help and --version work without a display.
    QStringList arguments;
    for (int i = 0; i < argc; ++i)
        arguments << QString::fromLocal8Bit(argv[i]);
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("NIC Studio: whole-slide viewer with heatmap and annotation layers"));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("SLIDE"), QStringLiteral("Slides to open (any OpenSlide format)."),
                                 QStringLiteral("[SLIDE...]"));
    parser.process(arguments);

    QApplication app(argc, argv);
    nic::MainWindow window;
    nic::Workflow::install(&window); // jobs, cohort, training curves, Analysis menu, compare view
    window.show();
    for (const QString& path : parser.positionalArguments())
        window.openSlide(path);
    return QApplication::exec();
}
