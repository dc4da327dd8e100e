#pragma once
// Runs a function on QtConcurrent's pool and hands its result to a callback on `context`'s thread
// (the GUI thread). The callback is dropped if `context` dies first. The function must not throw:
// catch inside and return the error as part of the result (house style #3).
#include <QFutureWatcher>
#include <QObject>
#include <QtConcurrent/QtConcurrentRun>

#include <utility>

namespace nic {

template <class Result, class Fn, class Done>
void runAsync(QObject* context, Fn&& fn, Done&& done) {
    auto* watcher = new QFutureWatcher<Result>(context);
    QObject::connect(watcher, &QFutureWatcher<Result>::finished, context,
                     [watcher, done = std::forward<Done>(done)]() mutable {
                         done(watcher->result());
                         watcher->deleteLater();
                     });
    watcher->setFuture(QtConcurrent::run(std::forward<Fn>(fn)));
}

} // namespace nic
