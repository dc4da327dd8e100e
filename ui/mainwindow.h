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
    /// Saves the current view as an image (PNG, JPEG, ... by extension). Returns false on failure.
    bool exportView(const QString& path);

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
