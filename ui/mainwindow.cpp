#include "ui/mainwindow.h"

#include "core/slide.h"
#include "ui/figureexport.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QLabel>
#include <QMenuBar>
#include <QMimeData>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolBar>

#include <algorithm>

namespace nic {

namespace {
constexpr int kMaxRecent = 10;
const QString kRecentKey = QStringLiteral("recentFiles");
} // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle(tr("NIC Studio"));
    setAcceptDrops(true);
    resize(1280, 800);
    tabs_ = new QTabWidget(this);
    tabs_->setTabsClosable(true);
    tabs_->setDocumentMode(true);
    setCentralWidget(tabs_);
    connect(tabs_, &QTabWidget::tabCloseRequested, this, [this](int i) {
        QWidget* w = tabs_->widget(i);
        tabs_->removeTab(i);
        w->deleteLater();
    });
    connect(tabs_, &QTabWidget::currentChanged, this, &MainWindow::onCurrentTabChanged);

    // File
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("&Open slide…"), QKeySequence::Open, this, &MainWindow::openDialog);
    recentMenu_ = file->addMenu(tr("Open &recent"));
    file->addAction(tr("Load &annotations…"), this, [this] {
        if (auto* t = currentTab()) {
            const QString p = QFileDialog::getOpenFileName(this, tr("Load ASAP annotations"), QFileInfo(t->path()).path(),
                                                           tr("ASAP XML (*.xml)"));
            if (!p.isEmpty())
                t->loadAnnotations(p);
        }
    });
    file->addAction(tr("Load &heatmap…"), this, [this] {
        if (auto* t = currentTab()) {
            const QString p = QFileDialog::getOpenFileName(this, tr("Load heatmap"), QFileInfo(t->path()).path(),
                                                           tr("Heatmaps (*.h5 *.hdf5 *.tif *.tiff);;nic gradcam HDF5 (*.h5 *.hdf5);;ASAP likelihood map (*.tif *.tiff)"));
            if (!p.isEmpty())
                t->loadHeatmap(p);
        }
    });
    file->addAction(tr("Load &latent grid…"), this, [this] {
        if (auto* t = currentTab()) {
            const QString p = QFileDialog::getOpenFileName(this, tr("Load compressed slide"), QFileInfo(t->path()).path(),
                                                           tr("HDF5 (*.h5 *.hdf5)"));
            if (!p.isEmpty())
                t->loadLatent(p);
        }
    });
    file->addAction(tr("&Save annotations"), QKeySequence::Save, this, [this] {
        if (auto* t = currentTab())
            t->saveAnnotations();
    });
    file->addAction(tr("&Export view…"), this, &MainWindow::exportDialog);
    file->addAction(tr("&Close tab"), QKeySequence::Close, this, [this] {
        if (tabs_->currentIndex() >= 0)
            Q_EMIT tabs_->tabCloseRequested(tabs_->currentIndex());
    });
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, qApp, &QApplication::closeAllWindows);
    rebuildRecentMenu();

    // View
    QMenu* view = menuBar()->addMenu(tr("&View"));
    QToolBar* bar = addToolBar(tr("View"));
    auto* fit = view->addAction(tr("&Fit to window"), this, [this] {
        if (auto* t = currentTab())
            t->view()->fitToWindow();
    });
    fit->setShortcut(Qt::Key_Home);
    fit->setShortcutContext(Qt::WidgetWithChildrenShortcut); // the view handles Home itself
    bar->addAction(fit);
    view->addSeparator();
    for (int mag : {1, 2, 5, 10, 20, 40}) {
        auto* a = view->addAction(QStringLiteral("%1×").arg(mag));
        a->setData(mag);
        connect(a, &QAction::triggered, this, [this, mag] {
            if (auto* t = currentTab())
                t->view()->setMagnification(mag);
        });
        bar->addAction(a);
        magActions_.push_back(a);
    }

    // Tools
    QMenu* tools = menuBar()->addMenu(tr("&Tools"));
    QToolBar* toolBar = addToolBar(tr("Tools"));
    toolGroup_ = new QActionGroup(this);
    const std::pair<ViewTool, QString> toolList[] = {{ViewTool::Navigate, tr("&Navigate")},
                                                     {ViewTool::Polygon, tr("&Polygon")},
                                                     {ViewTool::Rectangle, tr("&Rectangle")},
                                                     {ViewTool::Dot, tr("&Dot")},
                                                     {ViewTool::Measure, tr("&Measure")}};
    const char* keys[] = {"N", "P", "R", "D", "M"};
    int ki = 0;
    for (const auto& [tool, name] : toolList) {
        auto* a = tools->addAction(name);
        a->setCheckable(true);
        a->setShortcut(QKeySequence(QString::fromLatin1(keys[ki++])));
        a->setData(static_cast<int>(tool));
        a->setChecked(tool == ViewTool::Navigate);
        toolGroup_->addAction(a);
        toolBar->addAction(a);
    }
    connect(toolGroup_, &QActionGroup::triggered, this, [this](QAction* a) {
        if (auto* t = currentTab())
            t->view()->setTool(static_cast<ViewTool>(a->data().toInt()));
    });

    cursorLabel_ = new QLabel(this);
    magLabel_ = new QLabel(this);
    statusBar()->addPermanentWidget(cursorLabel_);
    statusBar()->addPermanentWidget(magLabel_);
    updateMagnification();
}

SlideTab* MainWindow::currentTab() const { return qobject_cast<SlideTab*>(tabs_->currentWidget()); }

SlideTab* MainWindow::openSlide(const QString& path) {
    const QString abs = QFileInfo(path).absoluteFilePath();
    auto* tab = new SlideTab(abs, tabs_);
    const int index = tabs_->addTab(tab, tab->title());
    tabs_->setTabToolTip(index, abs);
    SlideView* v = tab->view();
    connect(tab, &SlideTab::statusMessage, this, [this](const QString& m) { statusBar()->showMessage(m, 8000); });
    connect(v, &SlideView::slideOpened, this, [this, abs, tab] {
        addRecent(abs);
        if (tab == currentTab())
            updateMagnification();
    });
    connect(v, &SlideView::slideFailed, this, [this, tab](const QString& message) {
        const int i = tabs_->indexOf(tab);
        if (i >= 0)
            tabs_->setTabText(i, tab->title() + tr(" (error)"));
        statusBar()->showMessage(message);
    });
    connect(v, &SlideView::viewportChanged, this, [this, tab] {
        if (tab == currentTab())
            updateMagnification();
    });
    connect(v, &SlideView::cursorMoved, this, [this, v](QPointF p, bool inside) {
        if (!inside) {
            cursorLabel_->clear();
            return;
        }
        QString text = tr("x %1, y %2 px").arg(p.x(), 0, 'f', 0).arg(p.y(), 0, 'f', 0);
        if (const auto m = v->mpp())
            text += tr(" · %1, %2 µm").arg(p.x() * *m, 0, 'f', 1).arg(p.y() * *m, 0, 'f', 1);
        cursorLabel_->setText(text);
    });
    connect(v, &SlideView::measured, this, [this](double length, bool um) {
        statusBar()->showMessage(um ? tr("Measured %1").arg(QString::fromStdString(formatLength(length)))
                                    : tr("Measured %1 px (pixel size unknown)").arg(length, 0, 'f', 1),
                                 10000);
    });
    tabs_->setCurrentIndex(index);
    if (auto* checked = toolGroup_->checkedAction())
        v->setTool(static_cast<ViewTool>(checked->data().toInt()));
    return tab;
}

void MainWindow::onCurrentTabChanged() {
    if (auto* t = currentTab())
        if (auto* checked = toolGroup_->checkedAction())
            t->view()->setTool(static_cast<ViewTool>(checked->data().toInt()));
    cursorLabel_->clear();
    updateMagnification();
}

void MainWindow::updateMagnification() {
    auto* t = currentTab();
    SlideView* v = t ? t->view() : nullptr;
    const bool hasMpp = v && v->hasSlide() && v->mpp().has_value();
    QString why;
    if (v && v->hasSlide() && !hasMpp) {
        why = tr("Magnification presets need the slide's pixel size (µm per pixel), which this file does not record");
        const QString note = QString::fromStdString(v->slide()->resolutionNote());
        if (!note.isEmpty())
            why += QStringLiteral(": ") + note;
    } else if (!v || !v->hasSlide()) {
        why = tr("Open a slide first");
    }
    for (auto* a : magActions_) {
        a->setEnabled(hasMpp);
        a->setToolTip(hasMpp ? tr("Show at %1 (%2 µm per screen pixel)").arg(a->text()).arg(10.0 / a->data().toInt())
                             : why);
        a->setStatusTip(a->toolTip());
    }
    if (!v || !v->hasSlide()) {
        magLabel_->clear();
    } else if (const auto mag = v->magnification()) {
        magLabel_->setText(tr("%1×").arg(*mag, 0, 'f', *mag < 10 ? 2 : 1));
        magLabel_->setToolTip(tr("Magnification (10× = 1 µm per screen pixel)"));
    } else {
        magLabel_->setText(tr("zoom %1 % (magnification unknown)").arg(v->viewport().zoom * 100.0, 0, 'f', 1));
        magLabel_->setToolTip(why);
    }
}

void MainWindow::openDialog() {
    const QStringList paths = QFileDialog::getOpenFileNames(
        this, tr("Open slide"), QString(),
        tr("Slides (*.svs *.tif *.tiff *.ndpi *.vms *.vmu *.scn *.mrxs *.svslide *.bif);;All files (*)"));
    for (const auto& p : paths)
        openSlide(p);
}

bool MainWindow::exportView(const QString& path, int widthPx) {
    auto* t = currentTab();
    if (!t || !t->view()->hasSlide() || !figureFormatForPath(path))
        return false;
    Viewport vp;
    try {
        vp = figureViewport(*t->view(), std::nullopt, widthPx);
    } catch (const std::exception& e) {
        statusBar()->showMessage(tr("Cannot export %1: %2").arg(path, QString::fromUtf8(e.what())), 8000);
        return false;
    }
    auto* exporter = new FigureExporter(t->view(), vp, path, this);
    connect(exporter, &FigureExporter::finished, this, [this](const QString& p, const QString& error) {
        statusBar()->showMessage(error.isEmpty() ? tr("Saved %1").arg(p) : error, error.isEmpty() ? 8000 : 0);
        Q_EMIT viewExported(p, error);
    });
    statusBar()->showMessage(tr("Exporting %1 (waiting for tiles at full detail) …").arg(path));
    exporter->start();
    return true;
}

void MainWindow::exportDialog() {
    auto* t = currentTab();
    if (!t || !t->view()->hasSlide()) {
        statusBar()->showMessage(tr("Open a slide first"), 5000);
        return;
    }
    QString selected;
    QString p = QFileDialog::getSaveFileName(this, tr("Export view"), QFileInfo(t->path()).path(),
                                             tr("PNG image (*.png);;SVG vector graphics (*.svg);;PDF document (*.pdf)"),
                                             &selected);
    if (p.isEmpty())
        return;
    if (!figureFormatForPath(p)) {
        // No (known) extension typed: take the one of the chosen filter.
        const QString ext = selected.contains(QLatin1String("*.svg")) ? QStringLiteral(".svg")
                            : selected.contains(QLatin1String("*.pdf")) ? QStringLiteral(".pdf")
                                                                        : QStringLiteral(".png");
        p += ext;
    }
    const int viewWidth = t->view()->viewport().width;
    bool ok = false;
    const int width = QInputDialog::getInt(this, tr("Export view"),
                                           tr("Figure width in pixels (the view is %1 px wide; the height follows):").arg(viewWidth),
                                           std::clamp(2 * viewWidth, 16, 16384), 16, 16384, 1, &ok);
    if (!ok)
        return;
    exportView(p, width);
}

QStringList MainWindow::recentFiles() const { return QSettings().value(kRecentKey).toStringList(); }

void MainWindow::addRecent(const QString& path) {
    QSettings settings;
    QStringList list = settings.value(kRecentKey).toStringList();
    list.removeAll(path);
    list.prepend(path);
    while (list.size() > kMaxRecent)
        list.removeLast();
    settings.setValue(kRecentKey, list);
    rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
    recentMenu_->clear();
    const QStringList list = recentFiles();
    for (const auto& p : list)
        recentMenu_->addAction(QFileInfo(p).fileName(), this, [this, p] { openSlide(p); })->setToolTip(p);
    recentMenu_->setEnabled(!list.isEmpty());
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
    if (e->mimeData()->hasUrls())
        e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
    for (const auto& url : e->mimeData()->urls())
        if (url.isLocalFile())
            openSlide(url.toLocalFile());
    e->acceptProposedAction();
}

} // namespace nic
