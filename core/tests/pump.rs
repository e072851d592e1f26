//! The pump's contract with its host (`core::pump`): output is listed until taken, a closed
//! connection once; output taken counts as in flight until reported written, which is what
//! returns delivery credit; an observer sees each round's commands, then their events, then
//! the round's end.

use warren_core::codec::{
    BasicConsume, BasicProperties, ChannelOpen, ConnectionOpen, ConnectionTuneOk, Method,
    QueueDeclare,
};
use warren_core::connection::ConnectionConfig;
use warren_core::pump::Observer;
use warren_core::storage::MemoryStorage;
use warren_core::{Broker, BrokerConfig, Command, ConnId, Event, Pump};
use warren_testkit::{encode_publish, Client, Handshake, Received};

fn broker() -> Broker {
    Broker::new(BrokerConfig::default(), Box::new(MemoryStorage::new()))
}

/// Sends `frames` from a client and returns what the server answered (output taken, written).
fn exchange<O: Observer>(
    pump: &mut Pump<O>,
    id: ConnId,
    c: &mut Client,
    now: u64,
) -> Vec<Received> {
    let bytes = std::mem::take(&mut c.out);
    pump.handle_input(id, &bytes, now);
    for ready in pump.take_ready() {
        let out = pump.take_output(ready);
        if ready == id {
            c.feed(&out);
            pump.handle_written(id, out.len());
        }
    }
    c.take()
}

/// Runs the handshake (echoing tune) and opens channel 1.
fn open<O: Observer>(pump: &mut Pump<O>, c: &mut Client) -> ConnId {
    let id = pump.connect(0);
    c.out
        .extend_from_slice(&warren_core::codec::PROTOCOL_HEADER);
    exchange(pump, id, c, 0);
    c.queue_method(0, Handshake::default().start_ok());
    let r = exchange(pump, id, c, 0);
    let Some(Method::ConnectionTune(t)) = r.first().and_then(Received::method) else {
        panic!("no tune: {r:?}");
    };
    let (channel_max, frame_max) = (t.channel_max, t.frame_max);
    c.queue_method(
        0,
        ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat: 0,
        },
    );
    c.queue_method(
        0,
        ConnectionOpen {
            virtual_host: "/".into(),
            ..Default::default()
        },
    );
    c.queue_method(1, ChannelOpen::default());
    let r = exchange(pump, id, c, 0);
    assert_eq!(r.len(), 2, "open-ok and channel.open-ok: {r:?}");
    id
}

#[test]
fn a_closed_connection_is_listed_once_and_forgotten() {
    let mut pump = Pump::new(broker(), ConnectionConfig::default());
    let id = pump.connect(0);
    pump.handle_input(id, b"HTTP/1.1", 0);
    assert_eq!(
        pump.take_ready(),
        vec![id],
        "our header goes back, then the socket closes"
    );
    assert!(pump.is_closed(id));
    assert_eq!(pump.take_output(id), b"AMQP\x00\x00\x09\x01");
    pump.handle_written(id, 8);
    assert!(pump.take_ready().is_empty(), "closed is said once");
    pump.forget(id);
    assert_eq!(pump.connection_count(), 0);
    assert!(pump.is_closed(id), "a forgotten id counts as closed");
}

#[test]
fn delivery_credit_comes_back_only_as_output_is_reported_written() {
    let window_msgs = 4u64;
    let body = [b'x'; 1000];
    let cost = warren_core::Message::new(
        "".into(),
        "q".into(),
        BasicProperties::default().to_bytes(),
        bytes::Bytes::copy_from_slice(&body),
    )
    .delivery_cost();
    let config = ConnectionConfig {
        delivery_window: Some(window_msgs * cost),
        ..ConnectionConfig::default()
    };
    let mut pump = Pump::new(broker(), config);
    let mut publisher = Client::new();
    let p = open(&mut pump, &mut publisher);
    publisher.queue_method(
        1,
        QueueDeclare {
            queue: "q".into(),
            ..Default::default()
        },
    );
    for _ in 0..10 {
        let publish = warren_core::codec::BasicPublish {
            routing_key: "q".into(),
            ..Default::default()
        };
        encode_publish(
            &mut publisher.out,
            1,
            publish,
            &BasicProperties::default(),
            &body,
            131_072,
        );
    }
    exchange(&mut pump, p, &mut publisher, 0);

    let mut consumer = Client::new();
    let c = open(&mut pump, &mut consumer);
    let consume = BasicConsume {
        queue: "q".into(),
        no_ack: true,
        ..Default::default()
    };
    consumer.queue_method(1, consume);
    let bytes = std::mem::take(&mut consumer.out);
    pump.handle_input(c, &bytes, 0);
    // Taken but not reported written: the window stays used up.
    let first = pump.take_output(c);
    consumer.feed(&first);
    assert_eq!(deliveries(&consumer.take()), window_msgs as usize);
    assert!(
        pump.take_output(c).is_empty(),
        "nothing more without credit"
    );
    // Written: the credit returns, and the next window comes.
    pump.handle_written(c, first.len());
    let second = pump.take_output(c);
    consumer.feed(&second);
    assert_eq!(deliveries(&consumer.take()), window_msgs as usize);
}

fn deliveries(r: &[Received]) -> usize {
    r.iter().filter(|x| x.delivery().is_some()).count()
}

/// Writes down what the pump shows it.
#[derive(Default)]
struct Log(Vec<String>);

impl Observer for Log {
    fn on_command(&mut self, conn: ConnId, command: &Command) {
        let what = match command {
            Command::Method { method, .. } => method.name().to_string(),
            Command::Publish { .. } => "publish".into(),
            other => format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("")
                .into(),
        };
        self.0.push(format!("cmd {} {what}", conn.0));
    }
    fn on_event(&mut self, conn: ConnId, event: &Event) {
        let what = match event {
            Event::Method { method, .. } => method.name().to_string(),
            Event::Deliver { .. } => "deliver".into(),
            other => format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("")
                .into(),
        };
        self.0.push(format!("ev {} {what}", conn.0));
    }
    fn on_round(&mut self, _: &Broker) {
        self.0.push("end".into());
    }
}

#[test]
fn the_observer_sees_commands_then_their_events_then_the_round_end() {
    let mut pump = Pump::with_observer(broker(), ConnectionConfig::default(), Log::default());
    let mut c = Client::new();
    let id = open(&mut pump, &mut c);
    pump.observer_mut().0.clear();
    c.queue_method(
        1,
        QueueDeclare {
            queue: "q".into(),
            ..Default::default()
        },
    );
    c.queue_method(
        1,
        BasicConsume {
            queue: "q".into(),
            no_ack: true,
            ..Default::default()
        },
    );
    let publish = warren_core::codec::BasicPublish {
        routing_key: "q".into(),
        ..Default::default()
    };
    encode_publish(
        &mut c.out,
        1,
        publish,
        &BasicProperties::default(),
        b"m",
        131_072,
    );
    let r = exchange(&mut pump, id, &mut c, 0);
    assert_eq!(r.len(), 3, "declare-ok, consume-ok, the delivery: {r:?}");
    let n = id.0;
    assert_eq!(
        pump.observer().0,
        [
            format!("cmd {n} queue.declare"),
            format!("cmd {n} basic.consume"),
            format!("cmd {n} publish"),
            format!("ev {n} queue.declare-ok"),
            format!("ev {n} basic.consume-ok"),
            format!("ev {n} deliver"),
            "end".to_string(),
        ]
    );
}
