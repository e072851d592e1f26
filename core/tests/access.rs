//! Users, vhosts and permissions with RabbitMQ's rules: which permission each operation needs,
//! the refusal texts (403 ACCESS_REFUSED on the channel, 530 NOT_ALLOWED for a vhost), and what
//! an operator's changes do to open connections.

mod support;

use support::*;
use warren_core::access::{Hashing, PasswordHash};
use warren_core::broker::AdminError;
use warren_core::codec::{ConnectionClose, Method, QueueDeclare};

/// A world with user `u` (password `pw`) holding `conf write read` on `/`.
fn world_with_user(conf: &str, write: &str, read: &str) -> World {
    let mut w = World::new();
    w.conn_config.heartbeat = 0;
    let (conf, write, read) = (conf.to_string(), write.to_string(), read.to_string());
    w.admin(|b| {
        b.add_user("u", PasswordHash::new(Hashing::Sha256, [1, 2, 3, 4], "pw"))
            .unwrap();
        b.set_permissions("u", "/", &conf, &write, &read).unwrap();
    });
    w
}

fn login(
    w: &mut World,
    user: &'static str,
    password: &'static str,
    vhost: &'static str,
) -> (Cid, Vec<Received>) {
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        username: user,
        password,
        vhost,
        ..Handshake::default()
    });
    (c, r)
}

/// Logs in as `u` and opens channel 1.
fn user_channel(w: &mut World) -> Cid {
    let (c, r) = login(w, "u", "pw", "/");
    assert!(
        matches!(
            r.last().and_then(Received::method),
            Some(Method::ConnectionOpenOk(_))
        ),
        "{r:?}"
    );
    w.client(c).open_channel(1);
    c
}

/// The channel.close the broker answered with: (code, text).
fn channel_close(r: &[Received]) -> (u16, String) {
    r.iter()
        .find_map(|x| match x.method() {
            Some(Method::ChannelClose(c)) => Some((c.reply_code, c.reply_text.to_string())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no channel.close in {r:?}"))
}

fn connection_close(r: &[Received]) -> ConnectionClose {
    r.iter()
        .find_map(|x| match x.method() {
            Some(Method::ConnectionClose(c)) => Some(c.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no connection.close in {r:?}"))
}

fn refused(kind: &str, name: &str) -> (u16, String) {
    (
        403,
        format!("ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'u'"),
    )
}

#[test]
fn guest_exists_with_every_permission_and_a_wrong_password_is_refused() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    let (_, r) = login(&mut w, "guest", "nope", "/");
    assert!(
        !r.iter()
            .any(|x| matches!(x.method(), Some(Method::ConnectionOpenOk(_)))),
        "{r:?}"
    );
    let (_, r) = login(&mut w, "nobody", "guest", "/");
    assert!(!r
        .iter()
        .any(|x| matches!(x.method(), Some(Method::ConnectionOpenOk(_)))));
}

#[test]
fn a_vhost_without_permissions_or_that_does_not_exist_is_530() {
    let mut w = world_with_user(".*", ".*", ".*");
    w.admin(|b| b.create_vhost("other").unwrap());
    let (_, r) = login(&mut w, "u", "pw", "other");
    let close = connection_close(&r);
    assert_eq!(close.reply_code, 530);
    assert_eq!(
        close.reply_text.as_str(),
        "NOT_ALLOWED - access to vhost 'other' refused for user 'u'"
    );
    let (_, r) = login(&mut w, "u", "pw", "missing");
    let close = connection_close(&r);
    assert_eq!(close.reply_code, 530);
    assert_eq!(
        close.reply_text.as_str(),
        "NOT_ALLOWED - vhost missing not found"
    );
}

#[test]
fn declaring_and_deleting_need_configure() {
    let mut w = world_with_user("^app-", ".*", ".*");
    let c = user_channel(&mut w);
    w.client(c).declare_queue(1, "app-q");
    let r = w.client(c).queue_declare(
        1,
        QueueDeclare {
            queue: "other".into(),
            ..Default::default()
        },
    );
    assert_eq!(channel_close(&r), refused("queue", "other"));
    w.client(c).open_channel(2);
    let r = w.client(c).delete_queue(2, "other");
    assert_eq!(channel_close(&r), refused("queue", "other"));
    w.client(c).open_channel(3);
    let r = w.client(c).send(
        3,
        warren_core::codec::ExchangeDeclare {
            exchange: "x".into(),
            kind: "direct".into(),
            ..Default::default()
        },
    );
    assert_eq!(channel_close(&r), refused("exchange", "x"));
    // A passive declare needs any permission: read is enough.
    w.admin(|b| b.set_permissions("u", "/", "^$", "^$", "^app-").unwrap());
    w.client(c).open_channel(4);
    let ok = w.client(c).declare_queue_with(
        4,
        QueueDeclare {
            queue: "app-q".into(),
            passive: true,
            ..Default::default()
        },
    );
    assert_eq!(ok.queue.as_str(), "app-q");
}

#[test]
fn publishing_needs_write_on_the_exchange_and_the_default_one_is_amq_default() {
    let mut w = world_with_user(".*", "^amq\\.default$", ".*");
    let c = user_channel(&mut w);
    w.client(c).declare_queue(1, "q");
    w.client(c).declare_exchange(1, "x", "fanout");
    assert!(w
        .client(c)
        .publish(1, "", "q", &transient(), b"m")
        .is_empty());
    let r = w.client(c).publish(1, "x", "", &transient(), b"m");
    assert_eq!(channel_close(&r), refused("exchange", "x"));
    // Nothing to the default exchange either once write is empty.
    w.admin(|b| b.set_permissions("u", "/", ".*", "", ".*").unwrap());
    w.client(c).open_channel(2);
    let r = w.client(c).publish(2, "", "q", &transient(), b"m");
    assert_eq!(channel_close(&r), refused("exchange", "amq.default"));
}

#[test]
fn consuming_getting_and_purging_need_read() {
    let mut w = world_with_user(".*", ".*", "^mine$");
    let c = user_channel(&mut w);
    w.client(c).declare_queue(1, "q");
    let r = w.client(c).consume(1, "q", "t");
    assert_eq!(channel_close(&r), refused("queue", "q"));
    w.client(c).open_channel(2);
    let r = w.client(c).get(2, "q", true);
    assert_eq!(channel_close(&r), refused("queue", "q"));
    w.client(c).open_channel(3);
    let r = w.client(c).send(
        3,
        warren_core::codec::QueuePurge {
            queue: "q".into(),
            ..Default::default()
        },
    );
    assert_eq!(channel_close(&r), refused("queue", "q"));
}

#[test]
fn binding_needs_write_on_the_destination_and_read_on_the_source() {
    let mut w = world_with_user(".*", "^q$", "^src$");
    let c = user_channel(&mut w);
    w.client(c).declare_queue(1, "q");
    w.client(c).declare_queue(1, "other");
    w.client(c).declare_exchange(1, "src", "direct");
    w.client(c).declare_exchange(1, "x2", "direct");
    w.client(c).bind_queue(1, "q", "src", "k");
    let r = w.client(c).send(
        1,
        warren_core::codec::QueueBind {
            queue: "other".into(),
            exchange: "src".into(),
            ..Default::default()
        },
    );
    assert_eq!(channel_close(&r), refused("queue", "other"));
    w.client(c).open_channel(2);
    let r = w.client(c).send(
        2,
        warren_core::codec::QueueBind {
            queue: "q".into(),
            exchange: "x2".into(),
            ..Default::default()
        },
    );
    assert_eq!(channel_close(&r), refused("exchange", "x2"));
    w.client(c).open_channel(3);
    let r = w.client(c).send(
        3,
        warren_core::codec::ExchangeBind {
            destination: "x2".into(),
            source: "src".into(),
            ..Default::default()
        },
    );
    assert_eq!(channel_close(&r), refused("exchange", "x2"));
}

#[test]
fn changed_permissions_apply_to_channels_opened_afterwards() {
    let mut w = world_with_user(".*", ".*", ".*");
    let c = user_channel(&mut w);
    w.client(c).declare_queue(1, "q");
    w.admin(|b| b.set_permissions("u", "/", ".*", "", ".*").unwrap());
    // Channel 1 keeps what it had.
    assert!(w
        .client(c)
        .publish(1, "", "q", &transient(), b"m")
        .is_empty());
    w.client(c).open_channel(2);
    let r = w.client(c).publish(2, "", "q", &transient(), b"m");
    assert_eq!(channel_close(&r), refused("exchange", "amq.default"));
    // Cleared permissions: new connections may not open the vhost.
    w.admin(|b| b.clear_permissions("u", "/").unwrap());
    let (_, r) = login(&mut w, "u", "pw", "/");
    assert_eq!(connection_close(&r).reply_code, 530);
}

#[test]
fn deleting_a_user_or_a_vhost_closes_its_connections() {
    let mut w = world_with_user(".*", ".*", ".*");
    let c = user_channel(&mut w);
    let g = w.connect_channel();
    w.admin(|b| b.delete_user("u").unwrap());
    let r = w.client(c).take();
    let close = connection_close(&r);
    assert_eq!(close.reply_code, 320);
    assert_eq!(
        close.reply_text.as_str(),
        "CONNECTION_FORCED - broker forced connection closure with reason 'user deleted'"
    );
    assert!(w.client(g).take().is_empty(), "guest's connection stays");
    assert_eq!(
        w.admin(|b| b.delete_user("u")),
        Err(AdminError::NoSuchUser("u".into()))
    );
    assert_eq!(
        AdminError::NoSuchUser("u".into()).to_string(),
        "User \"u\" does not exist"
    );

    w.admin(|b| {
        b.create_vhost("v").unwrap();
        b.set_permissions("guest", "v", ".*", ".*", ".*").unwrap();
    });
    let (v, r) = login(&mut w, "guest", "guest", "v");
    assert!(matches!(
        r.last().and_then(Received::method),
        Some(Method::ConnectionOpenOk(_))
    ));
    w.client(v).open_channel(1);
    w.client(v).declare_queue(1, "vq");
    assert!(w.broker().queue("v", "vq").is_some());
    w.admin(|b| b.delete_vhost("v").unwrap());
    assert_eq!(connection_close(&w.client(v).take()).reply_code, 320);
    assert!(w.broker().queue("v", "vq").is_none());
    assert!(!w.broker().vhost_names().any(|n| n == "v"));
    assert!(w.broker().access().permissions("guest", "v").is_none());
    assert!(w.client(g).take().is_empty(), "a connection to / stays");
}

#[test]
fn users_vhosts_and_permissions_outlive_a_restart_and_guest_is_made_only_once() {
    let storage = SharedStorage::new(warren_core::storage::MemoryStorage::default());
    let mut w = World::with_storage(storage.clone());
    w.admin(|b| {
        b.add_user("u", PasswordHash::new(Hashing::Sha256, [9, 9, 9, 9], "pw"))
            .unwrap();
        b.set_user_tags("u", vec!["monitoring".into()]).unwrap();
        b.create_vhost("v").unwrap();
        b.set_permissions("u", "v", "^a", ".*", ".*").unwrap();
        b.delete_user("guest").unwrap();
    });
    let mut w = World::with_storage(storage.clone());
    let (_, r) = login(&mut w, "u", "pw", "v");
    assert!(
        matches!(
            r.last().and_then(Received::method),
            Some(Method::ConnectionOpenOk(_))
        ),
        "{r:?}"
    );
    let access = w.broker().access();
    assert_eq!(access.user("u").unwrap().tags, ["monitoring"]);
    assert_eq!(
        access.permissions("u", "v").unwrap().configure.as_str(),
        "^a"
    );
    assert!(
        access.user("guest").is_none(),
        "a deleted guest stays deleted"
    );
    let (_, r) = login(&mut w, "guest", "guest", "/");
    assert!(!r
        .iter()
        .any(|x| matches!(x.method(), Some(Method::ConnectionOpenOk(_)))));
    // Deleting the vhost and the user: nothing of them comes back.
    w.admin(|b| {
        b.delete_vhost("v").unwrap();
        b.delete_user("u").unwrap();
    });
    let w = World::with_storage(storage);
    assert!(!w.broker().vhost_names().any(|v| v == "v"));
    assert!(w.broker().access().user("u").is_none());
    assert_eq!(w.broker().access().all_permissions().count(), 0);
}

#[test]
fn guest_logs_in_only_from_this_machine_unless_loopback_users_are_lifted() {
    let mut w = world_with_user(".*", ".*", ".*");
    w.conn_config.from_loopback = false;
    let (_, r) = login(&mut w, "guest", "guest", "/");
    assert!(
        !r.iter()
            .any(|x| matches!(x.method(), Some(Method::ConnectionOpenOk(_)))),
        "guest from elsewhere: {r:?}"
    );
    let (_, r) = login(&mut w, "u", "pw", "/");
    assert!(matches!(
        r.last().and_then(Received::method),
        Some(Method::ConnectionOpenOk(_))
    ));
    w.admin(|b| b.set_loopback_users(Vec::new()));
    let (_, r) = login(&mut w, "guest", "guest", "/");
    assert!(matches!(
        r.last().and_then(Received::method),
        Some(Method::ConnectionOpenOk(_))
    ));
    w.admin(|b| b.set_loopback_users(vec!["u".into()]));
    let (_, r) = login(&mut w, "u", "pw", "/");
    assert!(!r
        .iter()
        .any(|x| matches!(x.method(), Some(Method::ConnectionOpenOk(_)))));
}
