//! The verbs `warren ctl` runs on the broker, with rabbitmqctl's names, arguments, messages
//! and exit codes (checked against RabbitMQ 3.10.8's `rabbitmqctl`).
//!
//! A verb runs on the hub, between rounds ([`Hub::admin`](warren_transports::Hub::admin)):
//! what it changes takes effect there, and it answers with a [`Reply`] the client prints.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warren_core::access::{Hashing, PasswordHash, SALT_BYTES};
use warren_core::broker::AdminError;
use warren_core::Broker;

/// What the client asks: the verb, its positional arguments, and `-p VHOST`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub verb: String,
    pub args: Vec<String>,
    pub vhost: String,
}

/// What the client prints: an info line ("Listing users ..."), a table, or an error, and the
/// exit code (sysexits, as rabbitmqctl uses them).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    pub info: Option<String>,
    pub columns: Vec<String>,
    /// Strings, numbers, booleans, and lists (tags), which a table shows as `[a, b]`.
    pub rows: Vec<Vec<Value>>,
    /// A line printed after the table ("Success").
    pub done: Option<String>,
    pub error: Option<String>,
    pub code: i32,
}

pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_NOUSER: i32 = 67;
pub const EX_UNAVAILABLE: i32 = 69;
pub const EX_SOFTWARE: i32 = 70;

/// Verbs, their arguments (for `help` and usage errors) and what they do.
pub const VERBS: &[(&str, &str, &str)] = &[
    ("status", "", "Shows the node: pid, version, data directory, listeners, counts, memory"),
    ("stop", "", "Stops the node cleanly and waits until it is gone"),
    ("add_user", "<username> <password>", "Creates a user without tags or permissions"),
    ("delete_user", "<username>", "Removes a user and closes their connections"),
    ("change_password", "<username> <password>", "Changes a user's password"),
    ("clear_password", "<username>", "Removes a user's password: they can no longer log in with one"),
    ("authenticate_user", "<username> <password>", "Checks a user's password"),
    ("set_user_tags", "<username> <tag> [...]", "Sets a user's tags (none clears them)"),
    ("list_users", "", "Lists users and their tags"),
    ("add_vhost", "<vhost>", "Creates a virtual host"),
    ("delete_vhost", "<vhost>", "Deletes a virtual host, its queues and exchanges"),
    ("list_vhosts", "[name]", "Lists virtual hosts"),
    ("set_permissions", "[-p <vhost>] <username> <conf> <write> <read>", "Sets a user's permissions in a vhost"),
    ("clear_permissions", "[-p <vhost>] <username>", "Revokes a user's permissions in a vhost"),
    ("list_permissions", "[-p <vhost>]", "Lists the permissions in a vhost"),
    ("list_user_permissions", "<username>", "Lists a user's permissions in every vhost"),
    ("list_queues", "[-p <vhost>] [<column> ...]", "Lists queues: name durable auto_delete exclusive arguments messages messages_ready messages_unacknowledged consumers"),
    ("list_exchanges", "[-p <vhost>] [<column> ...]", "Lists exchanges: name type durable auto_delete internal arguments"),
    ("list_bindings", "[-p <vhost>]", "Lists bindings"),
    ("purge_queue", "[-p <vhost>] <queue>", "Removes a queue's ready messages"),
    ("delete_queue", "[-p <vhost>] <queue>", "Deletes a queue"),
];

/// How many positional arguments a verb takes: (at least, at most).
pub fn arity(verb: &str) -> Option<(usize, usize)> {
    Some(match verb {
        "add_user" | "change_password" | "authenticate_user" => (2, 2),
        "delete_user"
        | "clear_password"
        | "add_vhost"
        | "delete_vhost"
        | "clear_permissions"
        | "list_user_permissions" => (1, 1),
        "set_user_tags" => (1, usize::MAX),
        "list_users" | "list_permissions" | "stop" | "status" => (0, 0),
        "list_vhosts" => (0, 1),
        "set_permissions" => (4, 4),
        "list_queues" | "list_exchanges" => (0, usize::MAX),
        "list_bindings" => (0, 0),
        "purge_queue" | "delete_queue" => (1, 1),
        _ => return None,
    })
}

/// Runs a request the client already checked against [`arity`].
pub fn run(b: &mut Broker, r: Request, salt: [u8; SALT_BYTES]) -> Reply {
    let a = &r.args;
    let v = r.vhost.as_str();
    let mut reply = Reply::default();
    let info = |s: String| Some(s);
    let outcome: Result<(), (i32, String)> = match r.verb.as_str() {
        "add_user" => {
            reply.info = info(format!("Adding user \"{}\" ...", a[0]));
            b.add_user(&a[0], hash(salt, &a[1])).map_err(admin)
        }
        "delete_user" => {
            reply.info = info(format!("Deleting user \"{}\" ...", a[0]));
            b.delete_user(&a[0]).map_err(admin)
        }
        "change_password" => {
            reply.info = info(format!("Changing password for user \"{}\" ...", a[0]));
            b.change_password(&a[0], hash(salt, &a[1])).map_err(admin)
        }
        "clear_password" => {
            reply.info = info(format!("Clearing password for user \"{}\" ...", a[0]));
            b.change_password(&a[0], PasswordHash::none())
                .map_err(admin)
        }
        "authenticate_user" => {
            reply.info = info(format!("Authenticating user \"{}\" ...", a[0]));
            if b.access().authenticate(&a[0], &a[1]).is_some() {
                reply.done = Some("Success".into());
                Ok(())
            } else {
                Err((
                    EX_DATAERR,
                    format!(
                        "Error: failed to authenticate user \"{}\"\nuser '{}' - invalid credentials",
                        a[0], a[0]
                    ),
                ))
            }
        }
        "set_user_tags" => {
            let tags = &a[1..];
            reply.info = info(format!(
                "Setting tags for user \"{}\" to [{}] ...",
                a[0],
                tags.join(", ")
            ));
            let tags = tags.iter().map(|t| t.as_str().into()).collect();
            b.set_user_tags(&a[0], tags).map_err(admin)
        }
        "list_users" => {
            reply.info = info("Listing users ...".into());
            reply.columns = cols(&["user", "tags"]);
            reply.rows = b
                .access()
                .users()
                .map(|u| {
                    let tags: Vec<&str> = u.tags.iter().map(|t| t.as_str()).collect();
                    vec![json!(u.name.as_str()), json!(tags)]
                })
                .collect();
            Ok(())
        }
        "add_vhost" => {
            reply.info = info(format!("Adding vhost \"{}\" ...", a[0]));
            b.create_vhost(&a[0]).map_err(admin)
        }
        "delete_vhost" => {
            reply.info = info(format!("Deleting vhost \"{}\" ...", a[0]));
            b.delete_vhost(&a[0]).map_err(|_| {
                (
                    EX_DATAERR,
                    format!("Virtual host '{}' does not exist", a[0]),
                )
            })
        }
        "list_vhosts" => {
            reply.info = info("Listing vhosts ...".into());
            reply.columns = cols(&["name"]);
            let mut names: Vec<String> = b.vhost_names().map(String::from).collect();
            names.sort();
            reply.rows = names.into_iter().map(|n| vec![json!(n)]).collect();
            Ok(())
        }
        "set_permissions" => {
            reply.info = info(format!(
                "Setting permissions for user \"{}\" in vhost \"{v}\" ...",
                a[0]
            ));
            b.set_permissions(&a[0], v, &a[1], &a[2], &a[3])
                .map_err(unquoted_user)
        }
        "clear_permissions" => {
            reply.info = info(format!(
                "Clearing permissions for user \"{}\" in vhost \"{v}\" ...",
                a[0]
            ));
            b.clear_permissions(&a[0], v).map_err(unquoted_user)
        }
        "list_permissions" => {
            reply.info = info(format!("Listing permissions for vhost \"{v}\" ..."));
            if b.vhost_names().any(|n| n == v) {
                reply.columns = cols(&["user", "configure", "write", "read"]);
                reply.rows = b
                    .access()
                    .all_permissions()
                    .filter(|(_, pv, _)| *pv == v)
                    .map(|(u, _, p)| permission_row(u, p))
                    .collect();
                Ok(())
            } else {
                Err((EX_DATAERR, format!("Virtual host '{v}' does not exist")))
            }
        }
        "list_user_permissions" => {
            reply.info = info(format!("Listing permissions for user \"{}\" ...", a[0]));
            if b.access().user(&a[0]).is_some() {
                reply.columns = cols(&["vhost", "configure", "write", "read"]);
                reply.rows = b
                    .access()
                    .all_permissions()
                    .filter(|(u, _, _)| *u == a[0])
                    .map(|(_, pv, p)| permission_row(pv, p))
                    .collect();
                Ok(())
            } else {
                Err((EX_UNAVAILABLE, format!("{{:no_such_user, \"{}\"}}", a[0])))
            }
        }
        "list_queues" => list_queues(b, v, a, &mut reply),
        "list_exchanges" => list_exchanges(b, v, a, &mut reply),
        "list_bindings" => list_bindings(b, v, &mut reply),
        "purge_queue" => {
            reply.info = info(format!("Purging queue '{}' in vhost '{v}' ...", a[0]));
            match b.purge_queue(v, &a[0]) {
                Some(_) => Ok(()),
                None => Err((EX_UNAVAILABLE, "not_found".into())),
            }
        }
        "delete_queue" => {
            reply.info = info(format!("Deleting queue '{}' on vhost '{v}' ...", a[0]));
            match b.delete_queue(v, &a[0]) {
                Some(n) => {
                    reply.done = Some(format!(
                        "Queue was successfully deleted with {n} ready messages"
                    ));
                    Ok(())
                }
                None => Err((EX_USAGE, "Queue not found".into())),
            }
        }
        other => Err((EX_USAGE, format!("Command '{other}' not found."))),
    };
    if let Err((code, text)) = outcome {
        reply.code = code;
        reply.error = Some(text);
        reply.columns.clear();
        reply.rows.clear();
    }
    reply
}

fn list_queues(
    b: &Broker,
    vhost: &str,
    items: &[String],
    reply: &mut Reply,
) -> Result<(), (i32, String)> {
    reply.info = Some(format!("Listing queues for vhost {vhost} ..."));
    const KNOWN: &[&str] = &[
        "name",
        "durable",
        "auto_delete",
        "exclusive",
        "arguments",
        "messages",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
    ];
    let items = info_items(b, vhost, items, &["name", "messages"], KNOWN)?;
    reply.columns = items.iter().map(|s| s.to_string()).collect();
    let mut queues: Vec<_> = b.queues().filter(|q| q.vhost.as_str() == vhost).collect();
    queues.sort_by(|x, y| x.name.cmp(&y.name));
    reply.rows = queues
        .into_iter()
        .map(|q| {
            items
                .iter()
                .map(|item| match *item {
                    "name" => json!(q.name.as_str()),
                    "durable" => json!(q.durable),
                    "auto_delete" => json!(q.auto_delete),
                    "exclusive" => json!(q.is_exclusive()),
                    "arguments" => json!(format!("{:?}", q.arguments)),
                    "messages" => json!(q.message_count() as usize + q.unacked()),
                    "messages_ready" => json!(q.message_count()),
                    "messages_unacknowledged" => json!(q.unacked()),
                    "consumers" => json!(q.consumers.len()),
                    _ => Value::Null,
                })
                .collect()
        })
        .collect();
    Ok(())
}

fn list_exchanges(
    b: &Broker,
    vhost: &str,
    items: &[String],
    reply: &mut Reply,
) -> Result<(), (i32, String)> {
    reply.info = Some(format!("Listing exchanges for vhost {vhost} ..."));
    const KNOWN: &[&str] = &[
        "name",
        "type",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
    ];
    let items = info_items(b, vhost, items, &["name", "type"], KNOWN)?;
    reply.columns = items.iter().map(|s| s.to_string()).collect();
    let mut exchanges: Vec<_> = b.exchanges(vhost).collect();
    exchanges.sort_by(|x, y| x.name.cmp(&y.name));
    reply.rows = exchanges
        .into_iter()
        .map(|x| {
            items
                .iter()
                .map(|item| match *item {
                    "name" => json!(x.name.as_str()),
                    "type" => json!(x.kind.as_str()),
                    "durable" => json!(x.durable),
                    "auto_delete" => json!(x.auto_delete),
                    "internal" => json!(x.internal),
                    "arguments" => json!(format!("{:?}", x.arguments)),
                    _ => Value::Null,
                })
                .collect()
        })
        .collect();
    Ok(())
}

/// Every binding, the default exchange's implicit ones first, as rabbitmqctl lists them.
fn list_bindings(b: &Broker, vhost: &str, reply: &mut Reply) -> Result<(), (i32, String)> {
    use warren_core::broker::Destination;
    reply.info = Some(format!("Listing bindings for vhost {vhost}..."));
    if !b.vhost_names().any(|n| n == vhost) {
        return Err((EX_DATAERR, format!("Virtual host '{vhost}' does not exist")));
    }
    reply.columns = cols(&[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ]);
    let mut queues: Vec<_> = b.queues().filter(|q| q.vhost.as_str() == vhost).collect();
    queues.sort_by(|x, y| x.name.cmp(&y.name));
    let names: std::collections::HashMap<_, _> =
        queues.iter().map(|q| (q.id, q.name.to_string())).collect();
    for q in &queues {
        reply.rows.push(vec![
            json!(""),
            json!("exchange"),
            json!(q.name.as_str()),
            json!("queue"),
            json!(q.name.as_str()),
            json!([]),
        ]);
    }
    let mut exchanges: Vec<_> = b.exchanges(vhost).collect();
    exchanges.sort_by(|x, y| x.name.cmp(&y.name));
    for x in exchanges {
        for binding in x.bindings() {
            let (dest, kind) = match &binding.destination {
                Destination::Queue(id) => (names.get(id).cloned().unwrap_or_default(), "queue"),
                Destination::Exchange(n) => (n.to_string(), "exchange"),
            };
            let args = if binding.arguments.is_empty() {
                json!([])
            } else {
                json!(format!("{:?}", binding.arguments))
            };
            reply.rows.push(vec![
                json!(x.name.as_str()),
                json!("exchange"),
                json!(dest),
                json!(kind),
                json!(binding.routing_key.as_str()),
                args,
            ]);
        }
    }
    Ok(())
}

/// The columns a list verb was asked for (its defaults when none), each one it knows, in a
/// vhost that exists.
fn info_items<'a>(
    b: &Broker,
    vhost: &str,
    asked: &'a [String],
    default: &[&'a str],
    known: &[&str],
) -> Result<Vec<&'a str>, (i32, String)> {
    let items: Vec<&str> = if asked.is_empty() {
        default.to_vec()
    } else {
        asked.iter().map(String::as_str).collect()
    };
    if let Some(bad) = items.iter().find(|i| !known.contains(i)) {
        return Err((
            EX_USAGE,
            format!("Info key(s) {bad} are not supported: {}", known.join(", ")),
        ));
    }
    if !b.vhost_names().any(|n| n == vhost) {
        return Err((EX_DATAERR, format!("Virtual host '{vhost}' does not exist")));
    }
    Ok(items)
}

/// A user's or a vhost's name, then the three patterns.
fn permission_row(who: &str, p: &warren_core::access::Permissions) -> Vec<Value> {
    vec![
        json!(who),
        json!(p.configure.as_str()),
        json!(p.write.as_str()),
        json!(p.read.as_str()),
    ]
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn hash(salt: [u8; SALT_BYTES], password: &str) -> PasswordHash {
    PasswordHash::new(Hashing::Sha256, salt, password)
}

/// rabbitmqctl's exit code and message for a refused change.
fn admin(e: AdminError) -> (i32, String) {
    let code = match &e {
        AdminError::NoSuchUser(_) => EX_NOUSER,
        AdminError::UserExists(_) => EX_SOFTWARE,
        AdminError::NoSuchVhost(_) | AdminError::BadPattern(_) => EX_UNAVAILABLE,
    };
    let text = match &e {
        // rabbitmqctl quotes the name here and not there; so does this.
        AdminError::NoSuchVhost(v) => format!("Virtual host {v} does not exist"),
        _ => e.to_string(),
    };
    (code, text)
}

/// The permission verbs name a missing user without quotes.
fn unquoted_user(e: AdminError) -> (i32, String) {
    match e {
        AdminError::NoSuchUser(u) => (EX_NOUSER, format!("User {u} does not exist")),
        e => admin(e),
    }
}
