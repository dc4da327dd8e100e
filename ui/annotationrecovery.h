#pragma once
// Crash recovery for annotation work (issue 19). A SlideTab's annotations, plus the polygon still being
// drawn, are written to a recovery file (ASAP XML) about a second after each change, atomically; a
// normal save with nothing in progress, or closing the tab, removes it. So after a crash or a kill the
// file holds every vertex the user had placed, and opening the slide again offers to restore them.
//
// Where: `<slide stem>.xml.recovery` beside the slide (next to where its annotations are saved), or, when
// that folder is not writable, `<AppDataLocation>/recovery/<hash of the slide path>.xml.recovery`.
// GUI thread only.
#include <QObject>
#include <QString>
#include <QTimer>

#include <functional>
#include <optional>

namespace nic {

class AnnotationSet;

class AnnotationRecovery : public QObject {
    Q_OBJECT
public:
    /// `snapshot` returns what to write (called when the debounce interval has passed).
    AnnotationRecovery(const QString& slidePath, std::function<AnnotationSet()> snapshot, QObject* parent = nullptr);

    /// Name of the annotation that holds an unfinished polygon in the recovery file.
    static QString unfinishedName();
    /// Where the recovery file of `slidePath` is written: beside the slide when its folder is writable,
    /// else in the settings folder.
    static QString recoveryPathFor(const QString& slidePath);
    /// The existing recovery file of `slidePath` (beside it or in the settings folder), or an empty string.
    static QString existingRecoveryFile(const QString& slidePath);

    /// Debounce interval (default 1000 ms).
    void setDelay(int ms) { timer_.setInterval(ms); }
    /// Something changed: write a snapshot once the interval has passed without further changes.
    void schedule();
    /// Writes a snapshot now (atomically). Returns false and emits failed() when it cannot be written.
    bool writeNow();
    /// Cancels a pending write and removes the recovery file (both locations).
    void remove();
    /// The file written by the last writeNow(), or where the next one goes.
    QString path() const { return path_; }

Q_SIGNALS:
    void written(const QString& path);
    void failed(const QString& message);

private:
    QString slidePath_;
    QString path_;
    std::function<AnnotationSet()> snapshot_;
    QTimer timer_;
};

} // namespace nic
