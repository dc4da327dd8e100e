#pragma once
// Error hierarchy of core/. Everything core/ throws derives from nic::Error; the message is complete
// and user-facing (it names the file and the cause), so the edges (CLI, GUI jobs) print what() as is.
#include <stdexcept>
#include <string>

namespace nic {

/// Base of all errors thrown by core/. what() is a one-line, user-facing message.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A file could not be read or written (missing, unreadable, disk full, ...).
class IoError : public Error {
public:
    using Error::Error;
};

/// A slide could not be opened or read (OpenSlide's own cause is included).
class SlideError : public Error {
public:
    using Error::Error;
};

/// Malformed or inconsistent annotation XML.
class AnnotationError : public Error {
public:
    using Error::Error;
};

/// A parameter is out of range or inconsistent (maps to the CLI's usage exit code 2).
class InvalidArgument : public Error {
public:
    using Error::Error;
};

/// A job was cancelled through its JobContext.
class Cancelled : public Error {
public:
    Cancelled() : Error("cancelled") {}
};

} // namespace nic
