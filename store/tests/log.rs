//! The disk store on a real directory: what a reopened store gives back, group sync reports,
//! segments reclaimed once acked, torn tails repaired and damage reported.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use warren_core::access::Hashing;
use warren_core::codec::FieldTable;
use warren_core::exchange_kind::ExchangeKind;
use warren_core::storage::{
    BindingRecord, ExchangeRecord, MessageRecord, PermissionRecord, QueueRecord, Recovered,
    Storage, UserRecord,
};
use warren_store::{open, OpenError, Opened, Options, Report};

fn options(segment_bytes: u64) -> Options {
    Options {
        segment_bytes,
        ..Options::default()
    }
}

/// Opens `dir`; the returned counter follows the writer's sync reports.
fn opened(dir: &Path, options: &Options) -> (Opened, Arc<AtomicU64>) {
    let synced = Arc::new(AtomicU64::new(0));
    let seen = synced.clone();
    let opened = open(
        dir,
        options,
        Box::new(move |seq| {
            seen.fetch_max(seq, Ordering::SeqCst);
        }),
    )
    .expect("the store opens");
    (opened, synced)
}

/// Drops the store and waits until all it wrote is on disk.
fn close(o: Opened) {
    drop(o.storage);
    o.writer.join().expect("the writer ends cleanly");
}

/// Reopens and returns what the broker would recover, and the report.
fn reopen(dir: &Path) -> (Recovered, Report) {
    let (mut o, _) = opened(dir, &options(1 << 20));
    let recovered = o.storage.load();
    let report = o.report.clone();
    close(o);
    (recovered, report)
}

fn queue(name: &str) -> QueueRecord {
    QueueRecord {
        vhost: "/".into(),
        name: name.into(),
        auto_delete: false,
        arguments: FieldTable::default(),
    }
}

fn message(id: u64, body: &str) -> MessageRecord {
    MessageRecord {
        id,
        exchange: "".into(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0x10, 0, 2]),
        body: Bytes::copy_from_slice(body.as_bytes()),
        deliveries: 0,
        paged_only: false,
    }
}

fn bodies(r: &Recovered, queue: &str) -> Vec<String> {
    r.messages
        .iter()
        .filter(|(_, q, _)| q.as_str() == queue)
        .flat_map(|(_, _, m)| m.iter())
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_reopened_store_gives_back_what_was_written_and_nothing_acked() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, synced) = opened(dir.path(), &options(1 << 20));
    let s = &mut o.storage;
    s.save_exchange(
        "/",
        &ExchangeRecord {
            name: "logs".into(),
            kind: ExchangeKind::Topic,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::default(),
        },
    );
    s.save_queue(&queue("q"));
    s.save_queue(&queue("gone"));
    let binding = BindingRecord {
        source: "logs".into(),
        destination: "q".into(),
        destination_is_exchange: false,
        routing_key: "#".into(),
        arguments: FieldTable::default(),
    };
    s.save_binding("/", &binding);
    for (id, body) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        s.save_message("/", "q", &message(id, body));
    }
    s.save_message("/", "gone", &message(5, "x"));
    s.mark_delivered("/", "q", 2);
    s.mark_delivered("/", "q", 2);
    s.delete_message("/", "q", 3);
    s.delete_queue("/", "gone");
    let written = s.write_seq();
    assert_eq!(written, 13, "one write per call");
    s.flush();
    close(o);
    assert_eq!(
        synced.load(Ordering::SeqCst),
        written,
        "the writer reported the sync"
    );

    let (r, report) = reopen(dir.path());
    assert_eq!(bodies(&r, "q"), ["a", "b", "d"]);
    let deliveries: Vec<u32> = r.messages[0].2.iter().map(|m| m.deliveries).collect();
    assert_eq!(deliveries, [0, 2, 0], "each delivery counted");
    assert!(bodies(&r, "gone").is_empty());
    assert_eq!(r.queues, vec![queue("q")]);
    assert_eq!(r.exchanges.len(), 1);
    assert_eq!(r.bindings, vec![("/".into(), binding)]);
    assert_eq!(r.next_message_id, 6, "above every id the log mentions");
    assert_eq!(report.records, 13);
    assert_eq!(report.messages, 3);
    assert_eq!(report.torn_tail, None);
}

/// A message written only to page it out of memory (a transient one, or any message of a queue
/// that is not durable, spilled under memory pressure) never comes back, even when a durable
/// queue of that name is defined by the time the log is read.
#[test]
fn messages_stored_only_for_paging_are_never_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, _) = opened(dir.path(), &options(1 << 20));
    let s = &mut o.storage;
    s.save_message(
        "/",
        "q",
        &MessageRecord {
            paged_only: true,
            ..message(1, "spilled")
        },
    );
    s.save_message(
        "/",
        "q",
        &MessageRecord {
            properties: Bytes::from_static(&[0x10, 0, 1]),
            ..message(2, "transient")
        },
    );
    s.save_queue(&queue("q"));
    s.save_message("/", "q", &message(3, "kept"));
    s.flush();
    close(o);
    let (r, _) = reopen(dir.path());
    assert_eq!(bodies(&r, "q"), ["kept"]);
}

#[test]
fn segments_go_once_acked_and_definitions_outlive_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, _) = opened(dir.path(), &options(256));
    o.storage.save_queue(&queue("q"));
    for id in 1..=40 {
        o.storage
            .save_message("/", "q", &message(id, "0123456789abcdef"));
    }
    o.storage.flush();
    let many = o.storage.segment_count();
    assert!(many > 5, "small segments rotate: {many}");
    // Ack all but the last: every full segment but the newest ones can go.
    for id in 1..=39 {
        o.storage.delete_message("/", "q", id);
    }
    o.storage.flush();
    close(o);
    // Message 40 is in the last or second-to-last of the first `many` segments: every one
    // before it went (the acks themselves filled newer ones).
    let first_left: usize = segment_files(dir.path())[0][..16].parse().unwrap();
    assert!(first_left + 1 >= many, "first left {first_left} of {many}");
    let (r, _) = reopen(dir.path());
    assert_eq!(
        r.queues,
        vec![queue("q")],
        "the queue's record was written again"
    );
    assert_eq!(bodies(&r, "q"), ["0123456789abcdef"]);
    assert_eq!(r.messages[0].2[0].id, 40);
}

fn user(name: &str, tags: &[&str]) -> UserRecord {
    UserRecord {
        name: name.into(),
        hashing: Hashing::Sha256,
        password_hash: vec![7; 36],
        tags: tags.iter().map(|t| (*t).into()).collect(),
    }
}

fn permission(user: &str, vhost: &str, write: &str) -> PermissionRecord {
    PermissionRecord {
        user: user.into(),
        vhost: vhost.into(),
        configure: ".*".into(),
        write: write.into(),
        read: "^(a|b)$".into(),
    }
}

#[test]
fn vhosts_users_and_permissions_come_back_and_outlive_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, _) = opened(dir.path(), &options(256));
    o.storage.save_vhost("/");
    o.storage.save_vhost("v");
    o.storage.save_vhost("gone");
    o.storage.save_user(&user("u", &["management"]));
    o.storage.save_user(&user("old", &[]));
    o.storage.save_permission(&permission("u", "v", "^x$"));
    o.storage.save_permission(&permission("u", "gone", ".*"));
    o.storage.save_permission(&permission("old", "v", ".*"));
    // Changed, then deleted.
    o.storage
        .save_user(&user("u", &["administrator", "monitoring"]));
    o.storage.delete_permission("u", "gone");
    o.storage.delete_vhost("gone");
    o.storage.delete_permission("old", "v");
    o.storage.delete_user("old");
    // Enough messages, acked, that the segments holding all of the above go.
    o.storage.save_queue(&queue("q"));
    for id in 1..=40 {
        o.storage
            .save_message("/", "q", &message(id, "0123456789abcdef"));
    }
    o.storage.flush();
    for id in 1..=40 {
        o.storage.delete_message("/", "q", id);
    }
    o.storage.flush();
    close(o);
    assert!(
        segment_files(dir.path())[0][..16].parse::<u64>().unwrap() > 0,
        "the first segments went"
    );
    let (r, _) = reopen(dir.path());
    assert_eq!(r.vhosts, ["/", "v"]);
    assert_eq!(r.users, [user("u", &["administrator", "monitoring"])]);
    assert_eq!(r.permissions, [permission("u", "v", "^x$")]);
}

#[test]
fn an_unacked_message_keeps_its_segment_and_the_ones_after() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, _) = opened(dir.path(), &options(256));
    o.storage.save_queue(&queue("q"));
    for id in 1..=40 {
        o.storage
            .save_message("/", "q", &message(id, "0123456789abcdef"));
    }
    for id in 2..=40 {
        o.storage.delete_message("/", "q", id);
    }
    o.storage.flush();
    close(o);
    let (r, _) = reopen(dir.path());
    assert_eq!(r.messages[0].2.len(), 1);
    assert_eq!(r.messages[0].2[0].id, 1, "acks in later segments were kept");
}

/// Writes a queue and three messages and closes the store; returns the segment's path.
fn three_messages(dir: &Path) -> std::path::PathBuf {
    let (mut o, _) = opened(dir, &options(1 << 20));
    o.storage.save_queue(&queue("q"));
    for (id, body) in [(1, "first"), (2, "second"), (3, "third")] {
        o.storage.save_message("/", "q", &message(id, body));
    }
    o.storage.flush();
    close(o);
    let files = segment_files(dir);
    dir.join(files.last().unwrap())
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_rest_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = three_messages(dir.path());
    let whole = std::fs::read(&path).unwrap();
    // The crash cut the last write: keep all but 5 bytes of it.
    std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
    let (r, report) = reopen(dir.path());
    assert_eq!(bodies(&r, "q"), ["first", "second"]);
    let (torn_file, cut) = report.torn_tail.expect("the torn tail is reported");
    assert_eq!(torn_file, path);
    assert!(cut > 0);
    assert!(std::fs::metadata(&path).unwrap().len() < whole.len() as u64 - 5);
    // The repaired file opens cleanly again, and new writes went to a new segment.
    let (r, report) = reopen(dir.path());
    assert_eq!(bodies(&r, "q"), ["first", "second"]);
    assert_eq!(report.torn_tail, None);
}

#[test]
fn damage_in_the_middle_names_the_file_and_offset_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = three_messages(dir.path());
    let mut data = std::fs::read(&path).unwrap();
    // Find the second message's record and flip a byte of its body.
    let at = data
        .windows(6)
        .position(|w| w == b"second")
        .expect("the body is in the file");
    data[at] ^= 0x20;
    std::fs::write(&path, &data).unwrap();
    let refused = open(dir.path(), &options(1 << 20), Box::new(|_| {}));
    match refused {
        Err(OpenError::Damaged(file, offset)) => {
            assert_eq!(file, path);
            assert!(offset > 0 && (offset as usize) < at, "offset {offset}");
            let text = OpenError::Damaged(file, offset).to_string();
            assert!(text.contains("--skip-damaged-records"), "{text}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a damaged store opened"),
    }
    let skip = Options {
        skip_damaged: true,
        ..options(1 << 20)
    };
    let (mut o, _) = opened(dir.path(), &skip);
    assert_eq!(o.report.skipped, 1);
    assert_eq!(bodies(&o.storage.load(), "q"), ["first", "third"]);
    close(o);
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = opened(dir.path(), &options(1 << 20));
    match open(dir.path(), &options(1 << 20), Box::new(|_| {})) {
        Err(OpenError::Io(_, e)) => assert!(e.to_string().contains("locked"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("two stores opened one directory"),
    }
    close(first);
    // Once the first is gone, the directory opens again.
    let (second, _) = opened(dir.path(), &options(1 << 20));
    close(second);
}

#[test]
fn a_few_live_messages_written_again_free_the_old_segments_they_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut o, _) = opened(dir.path(), &options(256));
    o.storage.save_queue(&queue("q"));
    // Message 1 is delivered and never acked; everything after it is acked.
    o.storage.save_message("/", "q", &message(1, "stuck"));
    o.storage.mark_delivered("/", "q", 1);
    for id in 2..=60 {
        o.storage
            .save_message("/", "q", &message(id, "0123456789abcdef"));
        o.storage.delete_message("/", "q", id);
    }
    o.storage.flush();
    let before = o.storage.segment_count();
    assert!(before >= 4, "{before} segments");
    // The store asks for message 1 once; the broker writes it again (delivered), as
    // Broker::flush_storage does.
    assert_eq!(o.storage.rewrite_request(), vec![1]);
    assert!(
        o.storage.rewrite_request().is_empty(),
        "asked once per segment"
    );
    let mut again = message(1, "stuck");
    again.deliveries = 3;
    o.storage.save_message("/", "q", &again);
    o.storage.flush();
    assert!(
        o.storage.segment_count() < before,
        "the old segments went: {} of {before} left",
        o.storage.segment_count()
    );
    // An ack after the move finds the message where it went.
    o.storage.save_message("/", "q", &message(61, "last"));
    o.storage.flush();
    close(o);
    let (r, _) = reopen(dir.path());
    let got: Vec<(u64, u32)> = r.messages[0]
        .2
        .iter()
        .map(|m| (m.id, m.deliveries))
        .collect();
    assert_eq!(
        got,
        [(1, 3), (61, 0)],
        "once each, in order, its delivery count kept"
    );
}

/// A queue longer than the window recovers only its head into memory; the rest is counted and
/// read back in order from the files, delivery counts included, with the acks taken since.
#[test]
fn a_long_queue_recovers_its_head_and_the_rest_is_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let small = Options {
        segment_bytes: 4 << 10,
        queue_window: warren_core::broker::Window {
            messages: 10,
            bytes: 1 << 20,
        },
        ..Options::default()
    };
    let (mut o, _) = opened(dir.path(), &small);
    o.storage.save_queue(&queue("q"));
    o.storage.save_queue(&queue("other"));
    for id in 1..=200 {
        // Another queue's messages in between: the pager must skip them.
        let (q, body) = if id % 4 == 0 {
            ("other", format!("o{id}"))
        } else {
            ("q", format!("m{id}"))
        };
        o.storage.save_message("/", q, &message(id, &body));
    }
    o.storage.mark_delivered("/", "q", 150);
    o.storage.delete_message("/", "q", 151);
    o.storage.flush();
    close(o);

    let (mut o, _) = opened(dir.path(), &small);
    let r = o.storage.load();
    let expected: Vec<u64> = (1..=200).filter(|id| id % 4 != 0 && *id != 151).collect();
    let head: Vec<String> = bodies(&r, "q");
    let head_ids: Vec<String> = expected[..10].iter().map(|id| format!("m{id}")).collect();
    assert_eq!(head, head_ids, "the head, in order");
    let paged = r
        .paged
        .iter()
        .find(|p| p.queue.as_str() == "q")
        .expect("q left messages on disk");
    assert_eq!(paged.count as usize, expected.len() - 10);
    assert_eq!(paged.after_id, expected[9]);
    let body_bytes: usize = expected[10..].iter().map(|id| format!("m{id}").len()).sum();
    assert_eq!(paged.bytes as usize, body_bytes);
    // Read the rest back in pages of 7, as the broker would.
    let mut after = paged.after_id;
    let mut got = Vec::new();
    loop {
        let mut out = Vec::new();
        o.storage.page_in("/", "q", after, 7, &mut out);
        let Some(last) = out.last() else { break };
        after = last.id;
        got.extend(out.iter().map(|m| (m.id, m.deliveries)));
    }
    let want: Vec<(u64, u32)> = expected[10..]
        .iter()
        .map(|&id| (id, u32::from(id == 150)))
        .collect();
    assert_eq!(
        got, want,
        "the rest, in order, none acked, delivery counts kept"
    );
    close(o);
}
