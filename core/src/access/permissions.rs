//! A user's permissions in one vhost: three regular expressions, matched against the name of
//! the resource an operation touches (RabbitMQ's `configure`, `write`, `read`).
//!
//! As in RabbitMQ: a pattern matches anywhere in the name unless anchored (`^…$`), and the empty
//! pattern means `^$` (it matches only the empty name, so it allows nothing in practice). The
//! default exchange is checked under the name `amq.default`. The common `.*` is known to match
//! everything and never runs the regex: publishing checks `write` on every message.

use alloc::string::String;

#[cfg(feature = "regex")]
use regex_automata::nfa::thompson::pikevm::{Cache, PikeVM};
#[cfg(feature = "regex")]
use regex_automata::util::syntax;

/// What an operation needs on a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Configure,
    Write,
    Read,
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Permission::Configure => "configure",
            Permission::Write => "write",
            Permission::Read => "read",
        }
    }
}

/// One permission's pattern, compiled.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    matcher: Matcher,
}

#[derive(Clone, Debug)]
enum Matcher {
    Everything,
    /// The empty pattern, `^$`: only the empty name.
    Nothing,
    #[cfg(feature = "regex")]
    Regex(PikeVM),
}

/// Compiles a pattern as PCRE reads it without Unicode mode (as RabbitMQ's `re` does):
/// `\w`, `\d`, `.` and case folding are ASCII.
#[cfg(feature = "regex")]
fn compile(source: &str) -> Result<Matcher, BadPattern> {
    PikeVM::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .build(source)
        .map(Matcher::Regex)
        .map_err(|e| BadPattern(alloc::format!("{e}")))
}

#[cfg(not(feature = "regex"))]
fn compile(source: &str) -> Result<Matcher, BadPattern> {
    Err(BadPattern(alloc::format!(
        "'{source}': this build matches only '.*' and '' (no regex engine)"
    )))
}

/// A pattern that does not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPattern(pub String);

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, BadPattern> {
        let matcher = match source {
            ".*" | "^.*" | "^.*$" | ".*$" => Matcher::Everything,
            "" | "^$" => Matcher::Nothing,
            _ => compile(source)?,
        };
        Ok(Pattern {
            source: source.into(),
            matcher,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Everything => true,
            Matcher::Nothing => name.is_empty(),
            // A cache per check: checks are per declare, or per publish only for a user whose
            // `write` is not `.*`.
            #[cfg(feature = "regex")]
            Matcher::Regex(vm) => vm.is_match(&mut Cache::new(vm), name.as_bytes()),
        }
    }

    pub fn matches_everything(&self) -> bool {
        matches!(self.matcher, Matcher::Everything)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A user's three patterns in one vhost.
#[derive(Clone, Debug, PartialEq)]
pub struct Permissions {
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

impl Permissions {
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Permissions, BadPattern> {
        Ok(Permissions {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    /// `.*` for all three: what `guest` has on `/`.
    pub fn all() -> Permissions {
        Permissions::new(".*", ".*", ".*").expect("valid")
    }

    pub fn pattern(&self, p: Permission) -> &Pattern {
        match p {
            Permission::Configure => &self.configure,
            Permission::Write => &self.write,
            Permission::Read => &self.read,
        }
    }

    /// Whether `p` on the resource called `name` is allowed (the default exchange is named
    /// `amq.default` here, as RabbitMQ checks it).
    pub fn allows(&self, p: Permission, name: &str) -> bool {
        let name = if name.is_empty() { "amq.default" } else { name };
        self.pattern(p).matches(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "regex")]
    #[test]
    fn patterns_match_as_rabbitmq_matches_them() {
        let p = Permissions::new("^app-", "^(amq\\.default|app-in)$", "").unwrap();
        assert!(p.allows(Permission::Configure, "app-q"));
        assert!(p.allows(Permission::Configure, "app-"));
        assert!(!p.allows(Permission::Configure, "my-app-q"));
        // The default exchange is checked as amq.default.
        assert!(p.allows(Permission::Write, ""));
        assert!(p.allows(Permission::Write, "app-in"));
        assert!(!p.allows(Permission::Write, "app-in2"));
        // Unanchored: matches anywhere.
        let q = Permissions::new("q", "q", "q").unwrap();
        assert!(q.allows(Permission::Read, "aqa"));
        // Empty: nothing (only an empty name, which no checked resource has).
        assert!(!p.allows(Permission::Read, "x"));
        assert!(!p.allows(Permission::Read, ""));
        assert!(Permissions::all().allows(Permission::Read, "anything"));
        assert!(Permissions::new("(", ".*", ".*").is_err());
    }
}
