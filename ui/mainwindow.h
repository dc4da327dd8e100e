#pragma once
// nic-studio's main window: slides as tabs, opened by dialog, drag and drop, command line or the
// recent-files menu (QSettings "recentFiles"); navigation, magnification presets and drawing tools act
// on the current tab; the status bar shows the cursor position and the magnification.
#include <QMainWindow>
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

Q_SIGNALS:
    /// A figure was written (`error` empty) or could not be (`error` names the file and cause).
    void viewExported(const QString& path, const QString& error);

protected:
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

private:
    void openDialog();
    void exportDialog();
    void addRecent(const QString& path);
    void rebuildRecentMenu();
    void onCurrentTabChanged();
    void updateMagnification();
    QTabWidget* tabs_;
    QMenu* recentMenu_;
    QList<QAction*> magActions_;
    QActionGroup* toolGroup_;
    QLabel* cursorLabel_;
    QLabel* magLabel_;
};

} // namespace nic
