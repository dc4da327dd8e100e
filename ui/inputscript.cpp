#include "ui/inputscript.h"

#include "core/base/atomicfile.h"
#include "ui/mainwindow.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QFile>
#include <QFileInfo>
#include <QMouseEvent>
#include <QTimer>

#include <cstdio>
#include <map>

namespace nic {

namespace {

constexpr int kPollMs = 20;
constexpr qint64 kWaitLimitMs = 60000;

std::string describeShapes(const SlideView& view) {
    std::vector<std::vector<Point>> shapes;
    if (const auto set = view.annotations())
        for (const auto& a : set->annotations)
            shapes.push_back(a.coordinates);
    shapes.push_back(view.polygonInProgress());
    std::string out;
    for (const auto& shape : shapes) {
        for (const auto& p : shape) {
            char line[96];
            std::snprintf(line, sizeof line, "%.17g %.17g\n", p.x, p.y);
            out += line;
        }
        out += "--\n";
    }
    return out;
}

// `held`: the buttons down after the event (a move between press and release drags).
void sendMouse(QWidget* target, QEvent::Type type, const QPointF& pos, Qt::MouseButtons held) {
    const Qt::MouseButton button = type == QEvent::MouseMove ? Qt::NoButton : Qt::LeftButton;
    QMouseEvent e(type, pos, target->mapToGlobal(pos), button, held, Qt::NoModifier);
    QCoreApplication::sendEvent(target, &e);
}

} // namespace

InputScript::InputScript(QStringList lines, MainWindow* window)
    : QObject(window), lines_(std::move(lines)), window_(window), timer_(new QTimer(this)) {
    timer_->setSingleShot(true);
    connect(timer_, &QTimer::timeout, this, &InputScript::step);
    timer_->start(0);
}

bool InputScript::start(const QString& path, MainWindow* window, QString* error) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly | QIODevice::Text)) {
        if (error)
            *error = path + QStringLiteral(": cannot read the input script: ") + f.errorString();
        return false;
    }
    auto* script = new InputScript(QString::fromUtf8(f.readAll()).split(QLatin1Char('\n')), window);
    connect(script, &InputScript::finished, script, [path](const QString& e) {
        if (!e.isEmpty())
            std::fprintf(stderr, "nic-studio: input script %s: %s\n", qPrintable(path), qPrintable(e));
    });
    return true;
}

void InputScript::stop(const QString& error) {
    next_ = static_cast<int>(lines_.size());
    Q_EMIT finished(error);
}

void InputScript::step() {
    while (next_ < lines_.size()) {
        const QString line = lines_[next_].trimmed();
        const QStringList w = line.split(QLatin1Char(' '), Qt::SkipEmptyParts);
        if (w.isEmpty() || w[0].startsWith(QLatin1Char('#'))) {
            ++next_;
            continue;
        }
        const QString where = QStringLiteral("line %1 (%2)").arg(next_ + 1).arg(line);
        SlideTab* tab = window_->currentTab();
        SlideView* view = tab ? tab->view() : nullptr;
        // A command that waits returns here with the timer running and comes back to the same line.
        auto waitUntil = [&](bool done) {
            if (done) {
                waitStartedMs_ = -1;
                ++next_;
                return false;
            }
            const qint64 now = QDateTime::currentMSecsSinceEpoch();
            if (waitStartedMs_ < 0)
                waitStartedMs_ = now;
            if (now - waitStartedMs_ > kWaitLimitMs) {
                stop(where + QStringLiteral(": still waiting after 60 s"));
                return true;
            }
            timer_->start(kPollMs);
            return true;
        };
        const QString cmd = w[0];
        if (cmd == QLatin1String("wait-loaded")) {
            if (waitUntil(view && view->hasSlide() && view->isFullyLoaded()))
                return;
            continue;
        }
        if (cmd == QLatin1String("wait-file") && w.size() == 2) {
            if (waitUntil(QFileInfo::exists(w[1])))
                return;
            continue;
        }
        if (cmd == QLatin1String("wait") && w.size() == 2) {
            ++next_;
            timer_->start(w[1].toInt());
            return;
        }
        if (!view) {
            stop(where + QStringLiteral(": no slide is open"));
            return;
        }
        if (cmd == QLatin1String("tool") && w.size() == 2) {
            static const std::map<QString, ViewTool> tools{{QStringLiteral("navigate"), ViewTool::Navigate},
                                                           {QStringLiteral("polygon"), ViewTool::Polygon},
                                                           {QStringLiteral("rectangle"), ViewTool::Rectangle},
                                                           {QStringLiteral("dot"), ViewTool::Dot},
                                                           {QStringLiteral("measure"), ViewTool::Measure}};
            const auto it = tools.find(w[1]);
            if (it == tools.end()) {
                stop(where + QStringLiteral(": unknown tool"));
                return;
            }
            view->setTool(it->second);
        } else if ((cmd == QLatin1String("press") || cmd == QLatin1String("move") || cmd == QLatin1String("release") ||
                    cmd == QLatin1String("click")) &&
                   w.size() == 3) {
            bool okX = false, okY = false;
            const QPointF p(w[1].toDouble(&okX), w[2].toDouble(&okY));
            if (!okX || !okY) {
                stop(where + QStringLiteral(": expected X Y"));
                return;
            }
            if (cmd == QLatin1String("press") || cmd == QLatin1String("click")) {
                leftDown_ = true;
                sendMouse(view, QEvent::MouseButtonPress, p, Qt::LeftButton);
            }
            if (cmd == QLatin1String("move"))
                sendMouse(view, QEvent::MouseMove, p, leftDown_ ? Qt::LeftButton : Qt::NoButton);
            if (cmd == QLatin1String("release") || cmd == QLatin1String("click")) {
                leftDown_ = false;
                sendMouse(view, QEvent::MouseButtonRelease, p, Qt::NoButton);
            }
        } else if (cmd == QLatin1String("report") && w.size() == 2) {
            try {
                writeFileAtomically(w[1].toStdString(), describeShapes(*view));
            } catch (const std::exception& e) {
                stop(where + QStringLiteral(": ") + QString::fromStdString(e.what()));
                return;
            }
        } else {
            stop(where + QStringLiteral(": unknown command or wrong number of arguments"));
            return;
        }
        ++next_;
    }
    Q_EMIT finished({});
}

} // namespace nic
