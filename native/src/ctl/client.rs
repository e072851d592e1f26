//! The `warren ctl` command: parses rabbitmqctl's command line, sends the request to the
//! running node's control socket, and prints the reply as rabbitmqctl 3.10 does — the info
//! line ("Listing users ...", dropped by `-q`), a tab-separated table with a header line
//! (dropped by `--no-table-headers`) or JSON (`--formatter json`), errors on stderr after
//! "Error:", and its exit codes (64 usage, 65 data, 67 no such user, 69 unavailable, 70).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use super::verbs::{self, Reply, Request, EX_UNAVAILABLE, EX_USAGE, VERBS};

struct Options {
    data_dir: PathBuf,
    quiet: bool,
    json: bool,
    headers: bool,
}

/// Runs `warren ctl ARGS…`; returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    let mut opts = Options {
        data_dir: std::env::var_os("WARREN_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("warren-data")),
        quiet: false,
        json: false,
        headers: true,
    };
    let mut vhost = String::from("/");
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return help(0),
            "-q" | "--quiet" => opts.quiet = true,
            "--no-table-headers" => opts.headers = false,
            "--data-dir" | "-p" | "--vhost" | "--formatter" => {
                let Some(value) = it.next() else {
                    return usage(&format!("{a} needs a value"));
                };
                match a.as_str() {
                    "--data-dir" => opts.data_dir = PathBuf::from(value),
                    "--formatter" => match value.as_str() {
                        "json" => opts.json = true,
                        "table" => opts.json = false,
                        other => return usage(&format!("unknown formatter '{other}'")),
                    },
                    _ => vhost = value,
                }
            }
            _ => positional.push(a),
        }
    }
    let Some(verb) = positional.first().cloned() else {
        return help(0);
    };
    if verb == "help" {
        return help(0);
    }
    let args = positional[1..].to_vec();
    let Some((least, most)) = verbs::arity(&verb) else {
        return usage(&format!("Command '{verb}' not found."));
    };
    if args.len() < least {
        return usage_for(&verb, "not enough arguments.");
    }
    if args.len() > most {
        return usage_for(&verb, "too many arguments.");
    }
    let stopping = verb == "stop";
    let request = Request { verb, args, vhost };
    match send(&opts, &request) {
        Ok(reply) if stopping => {
            if let (false, Some(info)) = (opts.quiet, &reply.info) {
                println!("{info}");
            }
            let pid = reply
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(|v| v.as_u64());
            wait_gone(pid)
        }
        Ok(reply) => print(&opts, &reply),
        Err(e) => {
            eprintln!(
                "Error: unable to perform an operation on the node at {}: {e}\nIs warren running there (`warren server --data-dir {}`)?",
                super::socket_path(&opts.data_dir).display(),
                opts.data_dir.display()
            );
            EX_UNAVAILABLE
        }
    }
}

/// Waits until process `pid` has exited (its store synced and closed), as `rabbitmqctl stop`
/// waits for the node.
fn wait_gone(pid: Option<u64>) -> i32 {
    let Some(pid) = pid else {
        return 0;
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while proc_dir.exists() {
        // A process that has exited but is not reaped yet is gone for our purposes.
        let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        if state.split_whitespace().nth(2) == Some("Z") {
            break;
        }
        if std::time::Instant::now() > deadline {
            eprintln!(
                "Error:
the node (pid {pid}) did not stop within 120 s"
            );
            return verbs::EX_SOFTWARE;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    0
}

fn send(opts: &Options, request: &Request) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(super::socket_path(&opts.data_dir))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

fn print(opts: &Options, reply: &Reply) -> i32 {
    let mut out = std::io::stdout().lock();
    if let (false, Some(info)) = (opts.quiet, &reply.info) {
        let _ = writeln!(out, "{info}");
    }
    if let Some(error) = &reply.error {
        eprintln!("Error:\n{error}");
        return reply.code;
    }
    if !reply.columns.is_empty() {
        if opts.json {
            let rows: Vec<serde_json::Value> = reply
                .rows
                .iter()
                .map(|row| {
                    let fields = reply.columns.iter().cloned().zip(row.iter().cloned());
                    serde_json::Value::Object(fields.collect())
                })
                .collect();
            let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
        } else {
            if opts.headers {
                let _ = writeln!(out, "{}", reply.columns.join("\t"));
            }
            for row in &reply.rows {
                let cells: Vec<String> = row.iter().map(cell).collect();
                let _ = writeln!(out, "{}", cells.join("\t"));
            }
        }
    }
    if let Some(done) = &reply.done {
        let _ = writeln!(out, "{done}");
    }
    reply.code
}

fn usage(problem: &str) -> i32 {
    eprintln!("{problem}\n");
    help(EX_USAGE)
}

fn usage_for(verb: &str, problem: &str) -> i32 {
    let args = VERBS
        .iter()
        .find(|(v, _, _)| *v == verb)
        .map_or("", |(_, a, _)| a);
    eprintln!("Error (argument validation): {problem}\nUsage:\n\nwarren ctl [--data-dir <dir>] {verb} {args}");
    EX_USAGE
}

/// The verbs; to stdout when asked for, to stderr after a usage error.
fn help(code: i32) -> i32 {
    let mut text = String::from(
        "Usage:\n\nwarren ctl [--data-dir <dir>] [-q] [--formatter json] [--no-table-headers] <command> [<command options>]\n\nCommands:\n\n",
    );
    for (verb, args, what) in VERBS {
        text.push_str(&format!("   {verb:<24} {what}\n{:<28}{args}\n", ""));
    }
    text.push_str("\nThe node is found by its data directory (--data-dir, WARREN_DATA_DIR, default ./warren-data).\n");
    if code == 0 {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
    code
}

/// A value as a table shows it: lists as `[a, b]`, as rabbitmqctl shows tags.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(cell).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}
