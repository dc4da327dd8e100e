#include "ui/jobspanel.h"

#include <QAction>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMenu>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QToolButton>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace nic {

namespace {

constexpr int IdRole = Qt::UserRole + 1;

QColor stateColor(JobState state) {
    switch (state) {
    case JobState::Succeeded: return QColor(0x2e, 0x7d, 0x32);
    case JobState::Failed: return QColor(0xc6, 0x28, 0x28);
    case JobState::Cancelled: return QColor(0x75, 0x75, 0x75);
    default: return {};
    }
}

} // namespace

JobsPanel::JobsPanel(JobRunner& runner, QWidget* parent)
    : QWidget(parent), runner_(runner), list_(new QTreeWidget(this)), details_(new QLabel(this)),
      log_(new QPlainTextEdit(this)), cancel_(new QPushButton(tr("Cancel"), this)),
      clear_(new QPushButton(tr("Clear finished"), this)), open_(new QToolButton(this)) {
    setObjectName(QStringLiteral("jobsPanel"));
    list_->setColumnCount(ColumnCount);
    list_->setHeaderLabels({tr("Job"), tr("State"), tr("Progress"), tr("ETA"), tr("Step")});
    list_->setRootIsDecorated(false);
    list_->setUniformRowHeights(true);
    list_->setSelectionMode(QAbstractItemView::SingleSelection);
    list_->header()->setStretchLastSection(true);
    list_->setColumnWidth(NameColumn, 220);
    list_->setColumnWidth(StateColumn, 80);
    list_->setColumnWidth(ProgressColumn, 140);
    list_->setColumnWidth(EtaColumn, 80);

    details_->setWordWrap(true);
    details_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    log_->setReadOnly(true);
    log_->setMaximumBlockCount(JobRunner::maxLogLines);
    log_->setLineWrapMode(QPlainTextEdit::NoWrap);
    log_->setPlaceholderText(tr("The selected job's log appears here."));
    QFont mono(QStringLiteral("monospace"));
    mono.setStyleHint(QFont::TypeWriter);
    log_->setFont(mono);

    open_->setText(tr("Open result"));
    open_->setPopupMode(QToolButton::MenuButtonPopup);
    open_->setToolButtonStyle(Qt::ToolButtonTextOnly);

    auto* buttons = new QHBoxLayout;
    buttons->addWidget(cancel_);
    buttons->addWidget(open_);
    buttons->addStretch(1);
    buttons->addWidget(clear_);

    auto* bottom = new QWidget(this);
    auto* bottomLayout = new QVBoxLayout(bottom);
    bottomLayout->setContentsMargins(0, 0, 0, 0);
    bottomLayout->addWidget(details_);
    bottomLayout->addLayout(buttons);
    bottomLayout->addWidget(log_, 1);

    auto* split = new QSplitter(Qt::Vertical, this);
    split->addWidget(list_);
    split->addWidget(bottom);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 2);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(split);

    connect(&runner_, &JobRunner::jobAdded, this, &JobsPanel::addRow);
    connect(&runner_, &JobRunner::jobStateChanged, this, &JobsPanel::onStateChanged);
    connect(&runner_, &JobRunner::jobProgress, this, [this](JobId id, int, double, const QString&) { updateRow(id); });
    connect(&runner_, &JobRunner::jobLog, this, &JobsPanel::onLog);
    connect(&runner_, &JobRunner::jobRemoved, this, [this](JobId id) {
        delete itemFor(id);
        updateDetails();
    });
    connect(list_, &QTreeWidget::currentItemChanged, this, [this] { updateDetails(); });
    connect(list_, &QTreeWidget::itemDoubleClicked, this, [this] { openFirstResult(); });
    connect(cancel_, &QPushButton::clicked, this, [this] {
        if (const JobId id = selectedJob())
            runner_.cancel(id);
    });
    connect(clear_, &QPushButton::clicked, &runner_, &JobRunner::removeFinished);
    connect(open_, &QToolButton::clicked, this, &JobsPanel::openFirstResult);

    for (const JobId id : runner_.jobIds())
        addRow(id);
    updateDetails();
}

JobId JobsPanel::selectedJob() const {
    const QTreeWidgetItem* item = list_->currentItem();
    return item ? item->data(NameColumn, IdRole).value<JobId>() : 0;
}

void JobsPanel::selectJob(JobId id) {
    if (QTreeWidgetItem* item = itemFor(id))
        list_->setCurrentItem(item);
}

QTreeWidgetItem* JobsPanel::itemFor(JobId id) const {
    for (int i = 0; i < list_->topLevelItemCount(); ++i) {
        QTreeWidgetItem* item = list_->topLevelItem(i);
        if (item->data(NameColumn, IdRole).value<JobId>() == id)
            return item;
    }
    return nullptr;
}

void JobsPanel::addRow(JobId id) {
    if (itemFor(id))
        return;
    auto* item = new QTreeWidgetItem(list_);
    item->setData(NameColumn, IdRole, QVariant::fromValue(id));
    auto* bar = new QProgressBar(list_);
    bar->setRange(0, 100);
    bar->setTextVisible(true);
    bar->setMaximumHeight(18);
    list_->setItemWidget(item, ProgressColumn, bar);
    updateRow(id);
    if (!list_->currentItem())
        list_->setCurrentItem(item);
}

void JobsPanel::updateRow(JobId id) {
    QTreeWidgetItem* item = itemFor(id);
    if (!item)
        return;
    const JobInfo info = runner_.info(id);
    item->setText(NameColumn, info.name);
    item->setToolTip(NameColumn, info.resultPaths.join(QLatin1Char('\n')));
    item->setText(StateColumn, jobStateName(info.state));
    item->setForeground(StateColumn, stateColor(info.state));
    if (auto* bar = qobject_cast<QProgressBar*>(list_->itemWidget(item, ProgressColumn))) {
        if (info.state == JobState::Running && info.percent < 0) {
            bar->setRange(0, 0); // busy: total unknown
        } else {
            bar->setRange(0, 100);
            bar->setValue(info.state == JobState::Queued ? 0 : std::max(0, info.percent));
        }
    }
    item->setText(EtaColumn, info.state == JobState::Running ? formatDuration(info.etaSeconds) : QString());
    const QString step = info.state == JobState::Failed ? info.error : info.step;
    item->setText(StepColumn, step);
    item->setToolTip(StepColumn, step);
    item->setForeground(StepColumn, info.state == JobState::Failed ? stateColor(JobState::Failed) : QBrush());
    if (id == selectedJob())
        updateDetails();
}

void JobsPanel::onStateChanged(JobId id, JobState state) {
    updateRow(id);
    // Follow the job that starts unless the user is looking at another active one.
    if (state == JobState::Running) {
        const JobId selected = selectedJob();
        if (selected == 0 || isFinished(runner_.info(selected).state) || selected == id)
            selectJob(id);
    }
}

void JobsPanel::onLog(JobId id, const QString& line) {
    if (id == selectedJob())
        log_->appendPlainText(line);
}

void JobsPanel::updateDetails() {
    const JobId id = selectedJob();
    const JobInfo info = runner_.info(id);
    if (id == 0 || info.id == 0) {
        details_->setText(tr("No job selected."));
        log_->clear();
        log_->setProperty("jobId", QVariant());
        cancel_->setEnabled(false);
        open_->setEnabled(false);
        return;
    }
    QString text = QStringLiteral("<b>%1</b> — %2").arg(info.name.toHtmlEscaped(), jobStateName(info.state));
    if (info.state == JobState::Running) {
        text += info.percent >= 0 ? QStringLiteral(", %1 %").arg(info.percent) : QString();
        const QString eta = formatDuration(info.etaSeconds);
        if (!eta.isEmpty())
            text += tr(", %1 left").arg(eta).toHtmlEscaped();
        if (!info.step.isEmpty())
            text += QStringLiteral("<br>") + info.step.toHtmlEscaped();
    } else if (info.state == JobState::Failed) {
        text += QStringLiteral("<br><span style=\"color:#c62828\">%1</span>").arg(info.error.toHtmlEscaped());
    }
    details_->setText(text);
    if (log_->property("jobId").value<JobId>() != id) { // a different job: show its whole log
        log_->setPlainText(info.log.join(QLatin1Char('\n')));
        log_->setProperty("jobId", QVariant::fromValue(id));
    }
    cancel_->setEnabled(!isFinished(info.state));
    const bool canOpen = info.state == JobState::Succeeded && !info.resultPaths.isEmpty();
    open_->setEnabled(canOpen);
    if (canOpen && info.resultPaths.size() > 1) {
        auto* menu = new QMenu(open_);
        for (const QString& path : info.resultPaths)
            menu->addAction(QFileInfo(path).fileName(), this, [this, path] { Q_EMIT openResultRequested(path); });
        QMenu* old = open_->menu();
        open_->setMenu(menu);
        delete old;
    } else if (QMenu* old = open_->menu()) {
        open_->setMenu(nullptr);
        delete old;
    }
}

void JobsPanel::openFirstResult() {
    const JobInfo info = runner_.info(selectedJob());
    if (info.state == JobState::Succeeded && !info.resultPaths.isEmpty())
        Q_EMIT openResultRequested(info.resultPaths.front());
}

bool confirmCloseWithRunningJobs(QWidget* parent, JobRunner& runner) {
    const int active = runner.activeCount();
    if (active == 0)
        return true;
    const auto answer = QMessageBox::question(
        parent, QObject::tr("Jobs are running"),
        active == 1 ? QObject::tr("A job is still queued or running. Cancel it and quit?")
                    : QObject::tr("%1 jobs are still queued or running. Cancel them and quit?").arg(active),
        QMessageBox::Yes | QMessageBox::No, QMessageBox::No);
    if (answer != QMessageBox::Yes)
        return false;
    runner.shutdown(); // cancels and waits for the running body to stop at its next check
    return true;
}

} // namespace nic
