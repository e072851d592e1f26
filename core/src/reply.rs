//! Reply codes and the protocol faults that carry them (AMQP 0-9-1 §1.2 "constants").
//!
//! A fault is either a channel error (closes one channel: `channel.close`) or a connection
//! error (closes everything: `connection.close`), as h2 splits stream resets from go-aways.
//! Reply text follows RabbitMQ's shape: `NOT_FOUND - no queue 'x' in vhost '/'`.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// An AMQP reply code. Unknown codes round-trip unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

impl ReplyCode {
    pub const SUCCESS: Self = Self(200);
    pub const CONTENT_TOO_LARGE: Self = Self(311);
    pub const NO_ROUTE: Self = Self(312);
    pub const NO_CONSUMERS: Self = Self(313);
    pub const CONNECTION_FORCED: Self = Self(320);
    pub const INVALID_PATH: Self = Self(402);
    pub const ACCESS_REFUSED: Self = Self(403);
    pub const NOT_FOUND: Self = Self(404);
    pub const RESOURCE_LOCKED: Self = Self(405);
    pub const PRECONDITION_FAILED: Self = Self(406);
    pub const FRAME_ERROR: Self = Self(501);
    pub const SYNTAX_ERROR: Self = Self(502);
    pub const COMMAND_INVALID: Self = Self(503);
    pub const CHANNEL_ERROR: Self = Self(504);
    pub const UNEXPECTED_FRAME: Self = Self(505);
    pub const RESOURCE_ERROR: Self = Self(506);
    pub const NOT_ALLOWED: Self = Self(530);
    pub const NOT_IMPLEMENTED: Self = Self(540);
    pub const INTERNAL_ERROR: Self = Self(541);

    /// The spec's name for the code, as RabbitMQ prints it at the start of reply texts.
    pub fn name(self) -> &'static str {
        match self.0 {
            200 => "OK",
            311 => "CONTENT_TOO_LARGE",
            312 => "NO_ROUTE",
            313 => "NO_CONSUMERS",
            320 => "CONNECTION_FORCED",
            402 => "INVALID_PATH",
            403 => "ACCESS_REFUSED",
            404 => "NOT_FOUND",
            405 => "RESOURCE_LOCKED",
            406 => "PRECONDITION_FAILED",
            501 => "FRAME_ERROR",
            502 => "SYNTAX_ERROR",
            503 => "COMMAND_INVALID",
            504 => "CHANNEL_ERROR",
            505 => "UNEXPECTED_FRAME",
            506 => "RESOURCE_ERROR",
            530 => "NOT_ALLOWED",
            540 => "NOT_IMPLEMENTED",
            541 => "INTERNAL_ERROR",
            _ => "UNKNOWN",
        }
    }
}

impl fmt::Debug for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.name())
    }
}

/// Which scope a fault closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `channel.close`: the channel ends, the connection lives on.
    Channel,
    /// `connection.close`: the whole connection ends.
    Connection,
}

/// A protocol fault: the reply code, the full reply text, and the method that caused it.
#[derive(Clone, PartialEq, Eq)]
pub struct Fault {
    pub scope: Scope,
    pub code: ReplyCode,
    /// Full reply text, `"<NAME> - <detail>"`.
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl Fault {
    fn new(scope: Scope, code: ReplyCode, detail: fmt::Arguments<'_>) -> Self {
        Fault {
            scope,
            code,
            text: format!("{} - {}", code.name(), detail),
            class_id: 0,
            method_id: 0,
        }
    }

    /// A fault that closes the channel.
    pub fn channel(code: ReplyCode, detail: fmt::Arguments<'_>) -> Self {
        Self::new(Scope::Channel, code, detail)
    }

    /// A fault that closes the connection.
    pub fn connection(code: ReplyCode, detail: fmt::Arguments<'_>) -> Self {
        Self::new(Scope::Connection, code, detail)
    }

    /// Records the method that caused the fault (the `class-id`/`method-id` of the close).
    pub fn caused_by(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// Sets the cause only if none is recorded yet.
    pub fn or_caused_by(self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.caused_by(class_id, method_id)
        } else {
            self
        }
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} fault {} ({}.{}): {}",
            self.scope, self.code.0, self.class_id, self.method_id, self.text
        )
    }
}

/// `Fault::channel(ReplyCode::NOT_FOUND, format_args!(..))` in one short line.
#[macro_export]
macro_rules! channel_fault {
    ($code:ident, $($arg:tt)*) => {
        $crate::reply::Fault::channel($crate::reply::ReplyCode::$code, format_args!($($arg)*))
    };
}

/// `Fault::connection(ReplyCode::FRAME_ERROR, format_args!(..))` in one short line.
#[macro_export]
macro_rules! connection_fault {
    ($code:ident, $($arg:tt)*) => {
        $crate::reply::Fault::connection($crate::reply::ReplyCode::$code, format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_has_rabbitmq_shape() {
        let f = channel_fault!(NOT_FOUND, "no queue '{}' in vhost '{}'", "x", "/");
        assert_eq!(f.text, "NOT_FOUND - no queue 'x' in vhost '/'");
        assert_eq!(f.scope, Scope::Channel);
        assert_eq!(f.code, ReplyCode::NOT_FOUND);
    }

    #[test]
    fn unknown_codes_round_trip() {
        assert_eq!(ReplyCode(999).0, 999);
        assert_eq!(ReplyCode(999).name(), "UNKNOWN");
    }
}
