#pragma once
// nic-studio's main window: slides as tabs, opened by dialog, drag and drop, command line or the
// recent-files menu (QSettings "recentFiles"); navigation, magnification presets and drawing tools act
// on the current tab; the status bar shows the cursor position and the magnification.
// Focus mode (F11, and back) hides every dock, toolbar, the status bar, the tab bar and the tabs' side
// panels so the slide takes the window. The window's geometry and dock layout (QSettings "window/…") and
// the last folders used in file dialogs ("paths/…") are remembered between runs.
#include <QMainWindow>
#include <QByteArray>
#include <QStringList>

class QAction;
class QActionGroup;
class QLabel;
class QMenu;
class QTabWidget;

namespace nic {

class SlideTab;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);

    /// Opens `path` in a new tab (the slide loads in the background) and makes it current.
    SlideTab* openSlide(const QString& path);
    SlideTab* currentTab() const;
    QTabWidget* tabs() const { return tabs_; }
    QStringList recentFiles() const;
    QList<QAction*> magnificationActions() const { return magActions_; }
    QLabel* cursorLabel() const { return cursorLabel_; }
    QLabel* magnificationLabel() const { return magLabel_; }
    /// Exports the current view with its layers, legend and scale bar as a figure `widthPx` wide
    /// (0 = the view's width) in the format of the extension (PNG, SVG, PDF; see figureexport.h).
    /// Waits in the background for the tiles at full detail, then writes atomically and emits
    /// viewExported(). Returns false (and emits nothing) when there is no slide or the extension is unknown.
    bool exportView(const QString& path, int widthPx = 0);

    void setFocusMode(bool on);
    bool focusMode() const { return focus_; }
    QAction* focusAction() const { return focusAction_; }
    /// Saves geometry and dock/toolbar layout to QSettings (also done on close).
    void saveLayout() const;
    /// Restores what saveLayout() saved; call after every dock exists (after Workflow::install).
    /// Returns false when nothing was saved or it did not apply.
    bool restoreLayout();
    /// Imports annotations (ASAP XML or GeoJSON by extension) into the current tab; warnings go to the
    /// status bar. Returns false when there is no tab.
    bool importAnnotations(const QString& path);
    /// Exports the current tab's annotations (format by extension), atomically, in the background;
    /// annotationsExported() follows.
    bool exportAnnotations(const QString& path);
    /// Exports the current tab's heatmap as GeoJSON tiles for QuPath (cells at or above the view's
    /// threshold); heatmapExported() follows.
    bool exportHeatmapTiles(const QString& path);
    /// Text of Help ▸ Keyboard shortcuts: one "keys<TAB>what" line per shortcut.
    QString shortcutsText() const;

    /// After a closed tab has been destroyed, hands the memory the allocator freed but keeps back to the
    /// system (glibc malloc_trim; a slide's textures and tiles are hundreds of MB). On by default;
    /// process-wide; for benchmarks that measure what it does.
    static void setTrimHeapOnClose(bool on);

Q_SIGNALS:
    /// A figure was written (`error` empty) or could not be (`error` names the file and cause).
    void viewExported(const QString& path, const QString& error);
    /// Annotations were written (`error` empty; `warnings` lists what the format cannot hold) or not.
    void annotationsExported(const QString& path, const QString& error, const QStringList& warnings);
    /// Heatmap tiles were written (`tiles` squares) or not (`error`).
    void heatmapExported(const QString& path, const QString& error, qulonglong tiles);

protected:
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;
    void closeEvent(QCloseEvent* e) override;

private:
    void openDialog();
    void exportDialog();
    void addRecent(const QString& path);
    void rebuildRecentMenu();
    void onCurrentTabChanged();
    void updateMagnification();
    QString lastFolder(const char* key, const QString& fallback) const;
    void rememberFolder(const char* key, const QString& file);
    void showShortcuts();
    bool focus_ = false;
    QAction* focusAction_ = nullptr;
    QList<QWidget*> hiddenByFocus_;
    QByteArray stateBeforeFocus_; ///< dock sizes and places, restored on leaving focus mode
    QTabWidget* tabs_;
    QMenu* recentMenu_;
    QList<QAction*> magActions_;
    QActionGroup* toolGroup_;
    QLabel* cursorLabel_;
    QLabel* magLabel_;
};

} // namespace nic
