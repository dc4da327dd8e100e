#pragma once
// The Jobs panel: every job of a JobRunner with its state, progress bar, ETA and current step; the log
// of the selected job; cancel; "Open result" for finished jobs. A plain QWidget: the main window puts
// it in a QDockWidget.
#include "ui/jobrunner.h"

#include <QWidget>

class QLabel;
class QPlainTextEdit;
class QPushButton;
class QToolButton;
class QTreeWidget;
class QTreeWidgetItem;

namespace nic {

class JobsPanel : public QWidget {
    Q_OBJECT
public:
    enum Column { NameColumn, StateColumn, ProgressColumn, EtaColumn, StepColumn, ColumnCount };

    /// `runner` must outlive the panel.
    explicit JobsPanel(JobRunner& runner, QWidget* parent = nullptr);

    /// The job whose details (log, buttons) are shown; 0 when none.
    JobId selectedJob() const;
    void selectJob(JobId id);

    // For tests and screenshots.
    QTreeWidget* jobList() const { return list_; }
    QPlainTextEdit* logView() const { return log_; }
    QLabel* detailsLabel() const { return details_; }
    QPushButton* cancelButton() const { return cancel_; }
    QToolButton* openResultButton() const { return open_; }
    /// The row of a job, or nullptr.
    QTreeWidgetItem* itemFor(JobId id) const;

Q_SIGNALS:
    /// The user asked to open a finished job's result (a path from Job::resultPaths).
    void openResultRequested(const QString& path);

private:
    void addRow(JobId id);
    void updateRow(JobId id);
    void updateDetails();
    void openFirstResult();
    void onLog(JobId id, const QString& line);
    void onStateChanged(JobId id, JobState state);

    JobRunner& runner_;
    QTreeWidget* list_;
    QLabel* details_;
    QPlainTextEdit* log_;
    QPushButton* cancel_;
    QPushButton* clear_;
    QToolButton* open_;
};

/// For a main window's closeEvent: returns true when the window may close. With no queued or running
/// job that is at once; otherwise the user is asked ("Cancel them and quit?") and on Yes the runner is
/// shut down (jobs cancelled, worker thread stopped) before returning true; No returns false.
bool confirmCloseWithRunningJobs(QWidget* parent, JobRunner& runner);

} // namespace nic
