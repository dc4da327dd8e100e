#include "ui/mainwindow.h"

#include "core/annotations/geojson.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/slide/slide.h"
#include "ui/async.h"
#include "ui/figureexport.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDockWidget>
#include <QHeaderView>
#include <QTableWidget>
#include <QVBoxLayout>
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
#include <QTimer>
#include <QTabWidget>
#include <QToolBar>

#include <QPointer>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace nic {

namespace {

bool trimHeapOnClose = true;
constexpr int kTrimDelayMs = 300;

// glibc keeps freed memory resident for reuse: every free page inside an arena's heap, and the free top
// of an arena up to M_TRIM_THRESHOLD (256 MiB once LibTorch compute has been configured,
// core/encoders/nn/encoderfile.cpp). A closed slide frees ~100-200 MB in pieces of tile size (textures,
// decoded tiles, GL buffers), which fragmentation keeps resident; malloc_trim hands their pages back
// (bench/longuse.cpp and docs/timings.md: about 140 MB per close on 8192² slides).
void trimHeap() {
#ifdef __GLIBC__
    ::malloc_trim(0);
#endif
}

constexpr int kMaxRecent = 10;
const QString kRecentKey = QStringLiteral("recentFiles");

} // namespace

void MainWindow::setTrimHeapOnClose(bool on) { trimHeapOnClose = on; }

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
        // Once the tab is destroyed, more of its memory is freed within a few hundred ms (the GL context,
        // the tile loader's threads, queued tiles): trim after that, and once more later for what a busy
        // machine frees late (bench/longuse.cpp measured both).
        if (trimHeapOnClose)
            connect(w, &QObject::destroyed, this, [this] {
                for (int ms : {kTrimDelayMs, 10 * kTrimDelayMs})
                    QTimer::singleShot(ms, this, [] { trimHeap(); });
            });
        w->deleteLater();
    });
    connect(tabs_, &QTabWidget::currentChanged, this, &MainWindow::onCurrentTabChanged);

    // File
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("&Open slide…"), QKeySequence::Open, this, &MainWindow::openDialog);
    recentMenu_ = file->addMenu(tr("Open &recent"));
    file->addAction(tr("Import &annotations (ASAP XML, GeoJSON)…"), this, [this] {
        if (auto* t = currentTab()) {
            const QString p = QFileDialog::getOpenFileName(
                this, tr("Import annotations"), lastFolder("paths/lastLayerFolder", QFileInfo(t->path()).path()),
                tr("Annotations (*.xml *.geojson *.json);;ASAP XML (*.xml);;GeoJSON / QuPath (*.geojson *.json)"));
            if (!p.isEmpty()) {
                rememberFolder("paths/lastLayerFolder", p);
                importAnnotations(p);
            }
        }
    });
    file->addAction(tr("E&xport annotations (ASAP XML, GeoJSON)…"), this, [this] {
        if (auto* t = currentTab()) {
            QString selected;
            QString p = QFileDialog::getSaveFileName(
                this, tr("Export annotations"), lastFolder("paths/lastLayerFolder", QFileInfo(t->path()).path()),
                tr("GeoJSON for QuPath (*.geojson);;ASAP XML (*.xml)"), &selected);
            if (p.isEmpty())
                return;
            if (!annotationFormatForPath(p.toStdString()))
                p += selected.contains(QLatin1String("*.xml")) ? QStringLiteral(".xml") : QStringLiteral(".geojson");
            rememberFolder("paths/lastLayerFolder", p);
            exportAnnotations(p);
        }
    });
    file->addAction(tr("Load &heatmap…"), this, [this] {
        if (auto* t = currentTab()) {
            const QString p = QFileDialog::getOpenFileName(this, tr("Load heatmap"), lastFolder("paths/lastLayerFolder", QFileInfo(t->path()).path()),
                                                           tr("Heatmaps (*.h5 *.hdf5 *.tif *.tiff);;nic gradcam HDF5 (*.h5 *.hdf5);;ASAP likelihood map (*.tif *.tiff)"));
            if (!p.isEmpty()) {
                rememberFolder("paths/lastLayerFolder", p);
                t->loadHeatmap(p);
            }
        }
    });
    file->addAction(tr("Export heatmap as &GeoJSON tiles (QuPath)…"), this, [this] {
        if (auto* t = currentTab()) {
            QString p = QFileDialog::getSaveFileName(this, tr("Export heatmap tiles"),
                                                     lastFolder("paths/lastLayerFolder", QFileInfo(t->path()).path()),
                                                     tr("GeoJSON for QuPath (*.geojson)"));
            if (p.isEmpty())
                return;
            if (annotationFormatForPath(p.toStdString()) != AnnotationFormat::GeoJson)
                p += QStringLiteral(".geojson");
            rememberFolder("paths/lastLayerFolder", p);
            exportHeatmapTiles(p);
        }
    });
    file->addAction(tr("Load &latent grid…"), this, [this] {
        if (auto* t = currentTab()) {
            const QString p = QFileDialog::getOpenFileName(this, tr("Load compressed slide"), lastFolder("paths/lastLayerFolder", QFileInfo(t->path()).path()),
                                                           tr("HDF5 (*.h5 *.hdf5)"));
            if (!p.isEmpty()) {
                rememberFolder("paths/lastLayerFolder", p);
                t->loadLatent(p);
            }
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
    bar->setObjectName(QStringLiteral("viewToolBar"));
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
    view->addSeparator();
    focusAction_ = view->addAction(tr("&Focus mode (slide only)"));
    focusAction_->setCheckable(true);
    focusAction_->setShortcut(Qt::Key_F11);
    focusAction_->setToolTip(tr("Hide every dock, toolbar and panel so the slide takes the window; F11 again brings them back"));
    addAction(focusAction_); // stays reachable by its key while the menus are the only chrome left
    connect(focusAction_, &QAction::toggled, this, &MainWindow::setFocusMode);

    // Tools
    QMenu* tools = menuBar()->addMenu(tr("&Tools"));
    QToolBar* toolBar = addToolBar(tr("Tools"));
    toolBar->setObjectName(QStringLiteral("toolsToolBar"));
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

    // Help
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&Keyboard shortcuts"), QKeySequence::HelpContents, this, &MainWindow::showShortcuts);

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
    tab->setSidePanelVisible(!focus_);
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
        this, tr("Open slide"), lastFolder("paths/lastSlideFolder", QString()),
        tr("Slides (*.svs *.tif *.tiff *.ndpi *.vms *.vmu *.scn *.mrxs *.svslide *.bif);;All files (*)"));
    if (!paths.isEmpty())
        rememberFolder("paths/lastSlideFolder", paths.front());
    for (const auto& p : paths)
        openSlide(p);
}

QString MainWindow::lastFolder(const char* key, const QString& fallback) const {
    const QString dir = QSettings().value(QLatin1String(key)).toString();
    return dir.isEmpty() || !QFileInfo(dir).isDir() ? fallback : dir;
}

void MainWindow::rememberFolder(const char* key, const QString& file) {
    QSettings().setValue(QLatin1String(key), QFileInfo(file).absolutePath());
}

void MainWindow::setFocusMode(bool on) {
    if (on == focus_)
        return;
    focus_ = on;
    if (focusAction_->isChecked() != on)
        focusAction_->setChecked(on);
    if (on) {
        stateBeforeFocus_ = saveState();
        hiddenByFocus_.clear();
        QList<QWidget*> chrome;
        for (auto* d : findChildren<QDockWidget*>(QString(), Qt::FindDirectChildrenOnly))
            chrome << d;
        for (auto* b : findChildren<QToolBar*>(QString(), Qt::FindDirectChildrenOnly))
            chrome << b;
        chrome << statusBar() << tabs_->tabBar();
        for (auto* w : chrome)
            if (w->isVisible() || (!w->isHidden() && !isVisible())) {
                w->hide();
                hiddenByFocus_ << w;
            }
    } else {
        for (auto* w : std::as_const(hiddenByFocus_))
            if (w)
                w->show();
        hiddenByFocus_.clear();
        restoreState(stateBeforeFocus_); // the docks' sizes as they were, not Qt's defaults
    }
    for (int i = 0; i < tabs_->count(); ++i)
        if (auto* t = qobject_cast<SlideTab*>(tabs_->widget(i)))
            t->setSidePanelVisible(!on);
}

void MainWindow::saveLayout() const {
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    // Saved as it is outside focus mode, so a restart never starts with the docks hidden by it.
    if (focus_) {
        auto* self = const_cast<MainWindow*>(this);
        const QList<QWidget*> hidden = hiddenByFocus_;
        for (auto* w : hidden)
            if (qobject_cast<QDockWidget*>(w) || qobject_cast<QToolBar*>(w))
                w->setVisible(true);
        settings.setValue(QStringLiteral("window/state"), self->saveState());
        for (auto* w : hidden)
            if (qobject_cast<QDockWidget*>(w) || qobject_cast<QToolBar*>(w))
                w->setVisible(false);
    } else {
        settings.setValue(QStringLiteral("window/state"), saveState());
    }
}

bool MainWindow::restoreLayout() {
    const QSettings settings;
    const QByteArray geometry = settings.value(QStringLiteral("window/geometry")).toByteArray();
    const QByteArray state = settings.value(QStringLiteral("window/state")).toByteArray();
    // Help stays the last menu, after menus added by others (Workflow's Analysis).
    for (QAction* a : menuBar()->actions())
        if (a->menu() && a->text() == tr("&Help")) {
            menuBar()->removeAction(a);
            menuBar()->addAction(a);
            break;
        }
    if (geometry.isEmpty() && state.isEmpty())
        return false;
    const bool g = geometry.isEmpty() || restoreGeometry(geometry);
    const bool st = state.isEmpty() || restoreState(state);
    return g && st;
}

void MainWindow::closeEvent(QCloseEvent* e) {
    saveLayout();
    QMainWindow::closeEvent(e);
}

bool MainWindow::importAnnotations(const QString& path) {
    auto* t = currentTab();
    if (!t)
        return false;
    struct Result {
        std::shared_ptr<AnnotationSet> set;
        QStringList warnings;
        QString error;
    };
    QPointer<SlideTab> tab(t);
    runAsync<Result>(
        this,
        [p = path.toStdString()] {
            Result r;
            try {
                auto imported = loadAnnotationFile(p);
                r.set = std::make_shared<AnnotationSet>(std::move(imported.set));
                for (const auto& w : imported.warnings)
                    r.warnings << QString::fromStdString(w);
            } catch (const std::exception& e) {
                r.error = QString::fromUtf8(e.what());
            }
            return r;
        },
        [this, tab, path](const Result& r) {
            if (!tab)
                return;
            if (!r.error.isEmpty()) {
                statusBar()->showMessage(tr("Cannot import annotations: %1").arg(r.error));
                return;
            }
            tab->setAnnotations(r.set);
            statusBar()->showMessage(
                r.warnings.isEmpty()
                    ? tr("Imported %1 annotations from %2").arg(r.set->annotations.size()).arg(QFileInfo(path).fileName())
                    : tr("Imported %1 annotations from %2 with %3 warning(s): %4")
                          .arg(r.set->annotations.size())
                          .arg(QFileInfo(path).fileName())
                          .arg(r.warnings.size())
                          .arg(r.warnings.join(QStringLiteral("; "))));
        });
    return true;
}

bool MainWindow::exportAnnotations(const QString& path) {
    auto* t = currentTab();
    if (!t || !t->view()->annotations())
        return false;
    auto copy = std::make_shared<const AnnotationSet>(*t->view()->annotations());
    struct Result {
        QStringList warnings;
        QString error;
    };
    runAsync<Result>(
        this,
        [copy, p = path.toStdString()] {
            Result r;
            try {
                for (const auto& w : saveAnnotationFile(*copy, p))
                    r.warnings << QString::fromStdString(w);
            } catch (const std::exception& e) {
                r.error = QString::fromUtf8(e.what());
            }
            return r;
        },
        [this, path](const Result& r) {
            if (!r.error.isEmpty())
                statusBar()->showMessage(tr("Cannot export annotations: %1").arg(r.error));
            else
                statusBar()->showMessage(r.warnings.isEmpty() ? tr("Saved %1").arg(path)
                                                              : tr("Saved %1 with %2 warning(s): %3")
                                                                    .arg(path)
                                                                    .arg(r.warnings.size())
                                                                    .arg(r.warnings.join(QStringLiteral("; "))));
            Q_EMIT annotationsExported(path, r.error, r.warnings);
        });
    return true;
}

bool MainWindow::exportHeatmapTiles(const QString& path) {
    auto* t = currentTab();
    if (!t || !t->view()->heatmap())
        return false;
    const auto grid = t->view()->heatmap();
    HeatmapData heat;
    if (grid->file) {
        heat = *grid->file;
    } else {
        // A likelihood map: its values, every finite cell counted as tissue.
        heat.cols = grid->width;
        heat.rows = grid->height;
        heat.heat = grid->values;
        heat.cellSize = grid->cellSize;
        heat.tissue.resize(grid->values.size());
        for (std::size_t i = 0; i < grid->values.size(); ++i)
            heat.tissue[i] = std::isfinite(grid->values[i]) ? 1.0F : 0.0F;
        heat.slideFile = t->path().toStdString();
        heat.model = grid->source;
        heat.prediction = std::numeric_limits<double>::quiet_NaN();
        heat.output = std::numeric_limits<double>::quiet_NaN();
    }
    HeatmapTileOptions options;
    options.threshold = t->view()->heatmapThreshold();
    struct Result {
        std::size_t tiles = 0;
        QString error;
    };
    runAsync<Result>(
        this,
        [heat = std::move(heat), options, p = path.toStdString()] {
            Result r;
            try {
                r.tiles = saveHeatmapTiles(heat, p, options);
            } catch (const std::exception& e) {
                r.error = QString::fromUtf8(e.what());
            }
            return r;
        },
        [this, path](const Result& r) {
            statusBar()->showMessage(r.error.isEmpty() ? tr("Saved %1 heatmap tiles to %2").arg(r.tiles).arg(path)
                                                       : tr("Cannot export heatmap: %1").arg(r.error));
            Q_EMIT heatmapExported(path, r.error, r.tiles);
        });
    return true;
}

QString MainWindow::shortcutsText() const {
    QStringList lines;
    std::function<void(const QList<QAction*>&)> walk = [&](const QList<QAction*>& actions) {
        for (QAction* a : actions) {
            if (a->menu()) {
                walk(a->menu()->actions());
                continue;
            }
            if (a->shortcut().isEmpty())
                continue;
            QString text = a->text();
            text.remove(QLatin1Char('&'));
            lines << a->shortcut().toString(QKeySequence::NativeText) + QLatin1Char('\t') + text;
        }
    };
    walk(menuBar()->actions());
    // Keys the slide view handles itself.
    lines << tr("Home\tFit the slide to the view") << tr("+ / −, wheel\tZoom in / out at the cursor")
          << tr("Arrow keys, drag\tPan") << tr("Enter / double-click\tFinish a polygon")
          << tr("Backspace\tRemove the last polygon vertex") << tr("Esc\tCancel the shape being drawn");
    lines.removeDuplicates();
    return lines.join(QLatin1Char('\n'));
}

void MainWindow::showShortcuts() {
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Keyboard shortcuts"));
    auto* layout = new QVBoxLayout(&dialog);
    auto* table = new QTableWidget(&dialog);
    const QStringList lines = shortcutsText().split(QLatin1Char('\n'));
    table->setColumnCount(2);
    table->setRowCount(static_cast<int>(lines.size()));
    table->setHorizontalHeaderLabels({tr("Keys"), tr("Action")});
    for (int i = 0; i < lines.size(); ++i) {
        const QStringList parts = lines[i].split(QLatin1Char('\t'));
        table->setItem(i, 0, new QTableWidgetItem(parts.value(0)));
        table->setItem(i, 1, new QTableWidgetItem(parts.value(1)));
    }
    table->verticalHeader()->hide();
    table->horizontalHeader()->setStretchLastSection(true);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table->resizeColumnsToContents();
    layout->addWidget(table);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, &dialog);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    layout->addWidget(buttons);
    dialog.resize(520, 480);
    dialog.exec();
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
