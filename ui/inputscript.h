#pragma once
// Scripted input for nic-studio (a hidden --input-script FILE option): drives the current tab's view with
// the same mouse events a user's hand would send, so that tests can exercise the real program — e.g.
// draw annotations in nic-studio, SIGKILL it and check what a new process recovers (issue 19).
// Not a user feature: it is hidden from --help and only reads the file it is given.
//
// One command per line, run in order on the GUI thread (waits are timers, never busy loops):
//   wait-loaded                   until the current tab's slide is open and every visible tile is cached
//   tool navigate|polygon|rectangle|dot|measure
//   press X Y | move X Y | release X Y | click X Y   left-button mouse events at view pixel (X, Y)
//   wait MS                        pause
//   wait-file PATH                 until PATH exists
//   report PATH                    writes the view's annotations and the outline in progress, one
//                                  "x y" line per vertex (%.17g, level-0 pixels), "--" after each
//                                  shape, atomically
// Blank lines and lines starting with '#' are ignored. An unknown command or a wait that times out
// (60 s) stops the script with a message on stderr; the program keeps running.
#include <QObject>
#include <QStringList>

class QTimer;

namespace nic {

class MainWindow;

class InputScript : public QObject {
    Q_OBJECT
public:
    /// Runs `lines` against `window`'s current tab; the script is a child of `window`.
    InputScript(QStringList lines, MainWindow* window);
    /// Reads `path` and starts it on `window`. Returns false (with `error` set) when unreadable.
    static bool start(const QString& path, MainWindow* window, QString* error);

Q_SIGNALS:
    /// The last line ran (`error` empty) or the script stopped at a line (`error` says why).
    void finished(const QString& error);

private:
    void step();
    void stop(const QString& error);
    QStringList lines_;
    int next_ = 0;
    qint64 waitStartedMs_ = -1;
    bool leftDown_ = false;
    MainWindow* window_;
    QTimer* timer_;
};

} // namespace nic
